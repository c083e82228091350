//go:build !linux

package engine

import "context"

// probeVia is only implemented on Linux.
func probeVia(ctx context.Context, c candidate, targets []string) (bool, []string) {
	return false, []string{"reachability probes need Linux"}
}
