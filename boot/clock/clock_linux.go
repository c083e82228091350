package clock

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// SetSystemClock steps CLOCK_REALTIME to t (needs CAP_SYS_TIME). It does
// not touch the RTC: 0-OS nodes are not trusted to have one.
func SetSystemClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("clock_settime: %w", err)
	}
	return nil
}
