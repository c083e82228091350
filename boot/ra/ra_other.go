//go:build !linux

package ra

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("ra: only implemented on Linux")

// Run is only implemented on Linux.
func Run(ctx context.Context, o Options) error { return errNotLinux }
