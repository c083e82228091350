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

// Backoff is the nth wait (n ≥ 1; less counts as 1) of a delay that
// doubles from base with each attempt and stops at ceil: base, 2·base,
// 4·base … ceil. The daemon restart delay and the clock's retry after
// failed rounds use it.
func Backoff(n int, base, ceil time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < ceil; i++ {
		if d > ceil-d { // d·2 passes ceil (and might overflow)
			return ceil
		}
		d *= 2
	}
	return min(d, ceil)
}
