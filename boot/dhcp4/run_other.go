//go:build !linux

package dhcp4

import (
	"context"
	"errors"
)

// Run is only implemented on Linux.
func Run(ctx context.Context, o Options) error {
	return errors.New("dhcp4: only supported on linux")
}
