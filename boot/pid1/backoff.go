package pid1

import (
	"time"

	"github.com/threefoldtech/netinit/boot/pause"
)

// MaxRestartDelay bounds RestartDelay.
const MaxRestartDelay = 30 * time.Second

// RestartDelay is the wait before the nth restart (n ≥ 1) of something
// that keeps dying: 1 s, 2 s, 4 s … 30 s. The Supervisor waits it before
// starting a dead child again, the daemon before running a crashed
// engine again: a crash loop costs a node little, and a single crash is
// over in a second.
func RestartDelay(n int) time.Duration {
	return pause.Backoff(n, time.Second, MaxRestartDelay)
}
