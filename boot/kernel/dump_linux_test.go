package kernel

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestDump: an interrupted dump is read again, and what the last read
// said is what counts; another error is not retried; a table that never
// holds still ends, with the error.
func TestDump(t *testing.T) {
	reads := 0
	interruptedTwice := func() ([]int, error) {
		reads++
		if reads <= 2 {
			return []int{reads}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2, 3}, nil
	}
	if got, err := Dump(interruptedTwice); err != nil || len(got) != 3 || reads != 3 {
		t.Errorf("interrupted twice: %v, %v after %d reads, want [1 2 3] after 3", got, err, reads)
	}

	reads = 0
	other := errors.New("no such device")
	if _, err := Dump(func() ([]int, error) { reads++; return nil, other }); !errors.Is(err, other) || reads != 1 {
		t.Errorf("another error: %v after %d reads, want it after 1", err, reads)
	}

	reads = 0
	if got, err := Dump(func() ([]int, error) { reads++; return []int{reads}, netlink.ErrDumpInterrupted }); !errors.Is(err, netlink.ErrDumpInterrupted) ||
		reads != dumpTries || len(got) != 1 || got[0] != dumpTries {
		t.Errorf("always interrupted: %v, %v after %d reads, want the last read's with the error after %d", got, err, reads, dumpTries)
	}
}
