package dhcp4

import (
	"math/rand/v2"
	"time"
)

// retransmit returns how long to wait for an answer after the n-th
// transmission (n counts from 0) of a DISCOVER or a REQUEST in the
// SELECTING/REQUESTING states.
//
// RFC 2131 section 4.1 asks for an exponential backoff (4 s, 8 s, 16 s, ...
// up to 64 s) randomized by ±1 s. We start at base (default 2 s, a booting
// node wants its address fast) and cap the growth at max (default 8 s)
// instead of 64 s: a switch port running classic spanning tree (IEEE
// 802.1D) passes no traffic for 30-50 s after link-up (listening and
// learning, 2 x 15 s forward delay, plus max age when the topology
// changes). With a 64 s cap the DISCOVER that finally gets through could be
// sent up to a minute after the port started forwarding; with an 8 s cap
// we are at most ~8 s late. The cost is one small broadcast every 8 s on a
// link with no server, which is harmless.
//
// The jitter is uniform in ±1 s as in the RFC, but never more than half of
// base, so shortened test timings stay positive and ordered.
func retransmit(n int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	j := time.Second
	if base/2 < j {
		j = base / 2
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	// rnd() is in [0, 1): map it to [-j, +j).
	return d + time.Duration((2*rnd()-1)*float64(j))
}

// renewWait returns how long to wait for an answer to a REQUEST in the
// RENEWING or REBINDING state when left is the time until T2 (renewing) or
// until the lease expires (rebinding). RFC 2131 section 4.4.5: wait one half
// of the remaining time, down to a minimum of 60 s (min here, shortened by
// tests), but never past the end of the state.
func renewWait(left, min time.Duration) time.Duration {
	d := left / 2
	if d < min {
		d = min
	}
	if d > left {
		d = left
	}
	return d
}
