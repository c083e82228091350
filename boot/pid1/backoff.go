package pid1

import "time"

// MaxRestartDelay bounds RestartDelay.
const MaxRestartDelay = 30 * time.Second

// RestartDelay is the wait before the nth restart (n ≥ 1) of something
// that keeps dying: 1 s, 2 s, 4 s … 30 s. The Supervisor waits it before
// starting a dead child again, the daemon before running a crashed
// engine again: a crash loop costs a node little, and a single crash is
// over in a second.
func RestartDelay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	return min(time.Second<<min(n-1, 5), MaxRestartDelay)
}
