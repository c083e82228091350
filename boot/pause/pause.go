// Package pause is netinit's one context-aware sleep: a retransmission
// back-off, a poll interval, a wait for a lease timer or a restart delay,
// each cut short when the caller's context ends. (netprobe keeps its own:
// it depends on nothing under boot/.)
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx ends, and returns ctx's error in that case.
// A d of zero or less returns at once (ctx's error if it has ended), so a
// deadline already in the past does not race ctx in a select.
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
