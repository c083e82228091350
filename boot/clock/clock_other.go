//go:build !linux

package clock

import (
	"errors"
	"time"
)

// SetSystemClock is only implemented on Linux.
func SetSystemClock(time.Time) error {
	return errors.New("setting the clock is only supported on linux")
}

// SlewSystemClock is only implemented on Linux.
func SlewSystemClock(time.Duration) error {
	return errors.New("slewing the clock is only supported on linux")
}

// NTPD finds no other clock owner off Linux.
func NTPD() (string, bool) { return "", false }
