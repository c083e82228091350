package kernel

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// dumpTries bounds how often a dump is read again.
const dumpTries = 5

// Dump runs list, a netlink dump (links, addresses, routes, neighbours),
// again when the kernel interrupted it: a table that changed while it was
// read sets NLM_F_DUMP_INTR on the reply (netlink(7); the kernel's
// nl_dump_check_consistent), and vishvananda/netlink returns what it read
// with ErrDumpInterrupted. At boot the tables change all the time (an RA's
// address, a lease, the bridge taking the port's), so an interrupted dump
// is common and must not fail the step that read it. After dumpTries
// interrupted reads the last one is returned with the error.
func Dump[T any](list func() ([]T, error)) ([]T, error) {
	var (
		got []T
		err error
	)
	for range dumpTries {
		if got, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return got, err
		}
	}
	return got, err
}
