package addr

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link installs addresses on one link. It remembers whether the kernel
// refused an optimistic address, so that it asks only once.
type Link struct {
	Index int
	Name  string
	// Logf, if not nil, is told once when the kernel refuses optimistic
	// addresses and NODAD is used instead.
	Logf console.Logf

	noOptimistic bool
}

// Replace adds a, or refreshes its lifetimes and flags if the link has it
// (RTM_NEWADDR with NLM_F_REPLACE: a renewal does not bounce the address).
func (l *Link) Replace(a Addr) error { return l.install(a, netlink.AddrReplace) }

// Add adds a; an address the link has already is left as it is (the
// kernel's own link-local address, say).
func (l *Link) Add(a Addr) error {
	err := l.install(a, netlink.AddrAdd)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func (l *Link) install(a Addr, op func(netlink.Link, *netlink.Addr) error) error {
	na := &netlink.Addr{
		IPNet:       Net(a.Prefix),
		ValidLft:    Seconds(a.Valid, 1),
		PreferedLft: Seconds(a.Preferred, 0),
	}
	if a.Broadcast.IsValid() {
		na.Broadcast = a.Broadcast.AsSlice()
	}
	var base int
	if a.NoPrefixRoute {
		base = unix.IFA_F_NOPREFIXROUTE
	}
	optimistic := a.Prefix.Addr().Is6() && !a.NoDAD && !l.noOptimistic
	switch {
	case optimistic:
		na.Flags = base | unix.IFA_F_OPTIMISTIC
	case a.Prefix.Addr().Is6():
		na.Flags = base | unix.IFA_F_NODAD
	default:
		na.Flags = base
	}
	err := op(l.link(), na)
	// Kernels before 5.x refuse IFA_F_OPTIMISTIC from user space (EINVAL;
	// EPERM or EOPNOTSUPP from some): NODAD is the closest they take, an
	// address usable at once.
	if err != nil && optimistic && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP)) {
		l.noOptimistic = true
		if l.Logf != nil {
			l.Logf("%s: kernel refused an optimistic address (%v), using nodad", l.Name, err)
		}
		na.Flags = base | unix.IFA_F_NODAD
		err = op(l.link(), na)
	}
	if err != nil {
		return fmt.Errorf("address %s on %s: %w", a.Prefix, l.Name, err)
	}
	return nil
}

// Remove deletes the address p; one that is already gone (expired, or
// removed by someone else) is no error.
func (l *Link) Remove(p netip.Prefix) error {
	err := netlink.AddrDel(l.link(), &netlink.Addr{IPNet: Net(p)})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing address %s from %s: %w", p, l.Name, err)
	}
	return nil
}

func (l *Link) link() netlink.Link {
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}
}
