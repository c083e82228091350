package addr

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestReplace installs addresses on a veth link in a namespace and reads
// back what the kernel holds: flags (optimistic, nodad, no prefix route),
// lifetimes, broadcast; a second Replace refreshes in place; Remove of a
// gone address is no error; Add leaves an address the link has alone.
func TestReplace(t *testing.T) {
	lab.Require(t, "ip")
	ns := lab.NewNS(t, "addr")
	ns.MustExec("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ns.MustExec("ip", "link", "set", "d1", "up")
	// As kernel.PrepareIPv6 does: the kernel takes IFA_F_OPTIMISTIC only where
	// optimistic DAD is on.
	ns.MustExec("sysctl", "-qw", "net.ipv6.conf.d0.optimistic_dad=1")
	ns.MustExec("ip", "link", "set", "d0", "up")
	h := ns.Handle()
	nl, err := h.LinkByName("d0")
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	l := &Link{Index: nl.Attrs().Index, Name: "d0", Logf: func(f string, a ...any) { logged = append(logged, f) }}
	in := func(fn func() error) {
		t.Helper()
		if err := lab.In(ns.Name, fn); err != nil {
			t.Fatal(err)
		}
	}
	get := func(p string) *netlink.Addr {
		t.Helper()
		as, err := h.AddrList(nl, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.IPNet.String() == p {
				return &a
			}
		}
		return nil
	}

	slaac := Addr{Prefix: netip.MustParsePrefix("2001:db8:1::42/64"), Valid: 600 * time.Second, Preferred: 300 * time.Second, NoPrefixRoute: true}
	static6 := Addr{Prefix: netip.MustParsePrefix("2001:db8:2::1/64"), Valid: Forever, Preferred: Forever, NoDAD: true}
	dhcp4 := Addr{Prefix: netip.MustParsePrefix("192.0.2.10/24"), Valid: 90 * time.Second, Preferred: 90 * time.Second,
		Broadcast: netip.MustParseAddr("192.0.2.255")}
	in(func() error {
		for _, a := range []Addr{slaac, static6, dhcp4} {
			if err := l.Replace(a); err != nil {
				return err
			}
		}
		return nil
	})

	a := get("2001:db8:1::42/64")
	if a == nil {
		t.Fatal("SLAAC address not in the kernel")
	}
	// Optimistic, unless the kernel refused it (then nodad, and said so).
	if l.noOptimistic {
		if a.Flags&unix.IFA_F_NODAD == 0 || len(logged) != 1 {
			t.Errorf("fallback: flags %#x, logged %q", a.Flags, logged)
		}
	} else if a.Flags&unix.IFA_F_OPTIMISTIC == 0 {
		t.Errorf("SLAAC address flags %#x: not optimistic", a.Flags)
	}
	if a.Flags&unix.IFA_F_NOPREFIXROUTE == 0 {
		t.Errorf("SLAAC address flags %#x: a prefix route", a.Flags)
	}
	if a.ValidLft > 600 || a.ValidLft < 590 || a.PreferedLft > 300 || a.PreferedLft < 290 {
		t.Errorf("SLAAC lifetimes valid %d preferred %d, want 600/300", a.ValidLft, a.PreferedLft)
	}
	if a := get("2001:db8:2::1/64"); a == nil || a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&unix.IFA_F_PERMANENT == 0 {
		t.Errorf("static address %+v: want nodad and permanent", a)
	}
	if a := get("192.0.2.10/24"); a == nil || a.Broadcast.String() != "192.0.2.255" || a.ValidLft > 90 || a.ValidLft < 80 {
		t.Errorf("DHCPv4 address %+v: want broadcast 192.0.2.255, valid 90 s", a)
	}
	routes, err := h.RouteList(nl, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "2001:db8:1::/64" {
			t.Errorf("prefix route %s for a NoPrefixRoute address", r.Dst)
		}
	}

	// A renewal refreshes the lifetimes in place.
	slaac.Valid, slaac.Preferred = 7200*time.Second, 0
	in(func() error { return l.Replace(slaac) })
	if a := get("2001:db8:1::42/64"); a == nil || a.ValidLft < 7190 || a.PreferedLft != 0 {
		t.Errorf("after renewal %+v: want valid 7200, preferred 0 (deprecated)", a)
	}

	in(func() error {
		if err := l.Remove(dhcp4.Prefix); err != nil {
			return err
		}
		if err := l.Remove(dhcp4.Prefix); err != nil { // gone already: no error
			return err
		}
		// Add leaves an address that is there alone (lifetimes too).
		return l.Add(Addr{Prefix: static6.Prefix, Valid: time.Minute, Preferred: time.Minute})
	})
	if a := get("2001:db8:2::1/64"); a == nil || a.Flags&unix.IFA_F_PERMANENT == 0 {
		t.Errorf("Add changed an address the link had: %+v", a)
	}
	if get("192.0.2.10/24") != nil {
		t.Error("removed address still in the kernel")
	}
	in(func() error {
		err := l.Replace(Addr{Prefix: netip.MustParsePrefix("192.0.2.11/24"), Valid: time.Second})
		if err == nil {
			ns.MustExec("ip", "link", "del", "d0")
			err = l.Replace(Addr{Prefix: netip.MustParsePrefix("192.0.2.12/24"), Valid: time.Second})
			if err == nil || !strings.Contains(err.Error(), "address 192.0.2.12/24 on d0") {
				t.Errorf("error on a gone link: %v", err)
			}
		}
		return nil
	})
}
