//go:build !linux

package dhcp6

import (
	"context"
	"errors"
)

// Run is only implemented on Linux.
func Run(ctx context.Context, o Options) error { return errors.New("dhcp6: only implemented on Linux") }
