//go:build !linux

package static

import (
	"context"
	"errors"
)

// Run is only implemented on Linux.
func Run(ctx context.Context, o Options) error {
	return errors.New("static: only implemented on Linux")
}
