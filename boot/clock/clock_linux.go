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

// SlewSystemClock has the kernel slew CLOCK_REALTIME by d, as adjtime(3)
// does (adjtimex ADJ_OFFSET_SINGLESHOT, offset in microseconds): the
// clock runs up to 500 ppm faster or slower until d is absorbed. It
// replaces any slew still in progress; d = 0 cancels it. Needs
// CAP_SYS_TIME.
func SlewSystemClock(d time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}
