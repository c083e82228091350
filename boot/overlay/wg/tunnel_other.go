//go:build !linux

package wg

import (
	"context"
	"errors"

	"github.com/threefoldtech/netinit/boot/state"
)

// Tunnel is a running WireGuard interface (Linux only).
type Tunnel struct{}

// Start is only implemented on Linux.
func Start(ctx context.Context, o Options) (*Tunnel, error) {
	return nil, errors.New("wireguard: only supported on linux")
}

// State is nil off Linux.
func (t *Tunnel) State() *state.WireGuard { return nil }

// Problems is nil off Linux.
func (t *Tunnel) Problems() []string { return nil }

// Close does nothing off Linux.
func (t *Tunnel) Close() error { return nil }
