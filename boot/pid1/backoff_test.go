package pid1

import (
	"testing"
	"time"
)

func TestRestartDelay(t *testing.T) {
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second}
	for n := 0; n < len(want); n++ {
		if got := RestartDelay(n); got != want[n] {
			t.Errorf("RestartDelay(%d) = %v, want %v", n, got, want[n])
		}
	}
	if got := RestartDelay(1 << 20); got != MaxRestartDelay {
		t.Errorf("RestartDelay(1<<20) = %v", got)
	}
}
