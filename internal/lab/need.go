package lab

import (
	"testing"

	"github.com/vishvananda/netlink"
)

// Missing skips the test because a prerequisite is missing, or fails it
// under NETINIT_LAB=1, where make test has provided every prerequisite.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("NETINIT_LAB=1 but "+format, args...)
	}
	t.Skipf(format, args...)
}

// Need skips the test when err says a prerequisite is missing (a kernel
// not fetched: `make kernel`), or fails it under NETINIT_LAB=1.
func Need(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		Missing(t, "%v", err)
	}
}

// Addrs is the addresses of family (netlink.FAMILY_V4, _V6, _ALL) on link,
// as the kernel behind h (NS.Handle) has them.
func Addrs(t testing.TB, h *netlink.Handle, link string, family int) []netlink.Addr {
	t.Helper()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	as, err := h.AddrList(l, family)
	if err != nil {
		t.Fatal(err)
	}
	return as
}
