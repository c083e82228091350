package dhcp4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// installed is what this client put in the kernel, so that it removes only
// that.
type installed struct {
	addr    netip.Prefix // invalid when none
	routes  []route
	mtu     int // the MTU we set; 0 when we did not touch it
	origMTU int // the link's MTU before we set it
	// applied is the MTU the lease (or the override) asks for when the
	// link has it, set by us or already so (reported in the Lease).
	applied int
}

// apply installs b on the link: the address with the lease's remaining
// lifetime (so the kernel removes it by itself if we die), the MTU and the
// routes. Re-applying the same lease (a renewal) replaces lifetimes and
// routes in place; nothing is removed and re-added.
func (c *client) apply(b *binding, t0 time.Time) error {
	link, err := netlink.LinkByIndex(c.idx)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if c.inst.addr.IsValid() && c.inst.addr != b.Addr {
		// A different address (or prefix length: a different
		// kernel address): drop the old one and its routes.
		c.unapply()
	}

	lft := addr.Forever
	if b.Lease > 0 {
		left := time.Until(t0.Add(b.Lease)) / time.Second * time.Second
		if left <= 0 {
			return errors.New("lease already expired")
		}
		lft = min(left, addr.Forever-time.Second)
	}
	al := addr.Link{Index: c.idx, Name: c.o.Link}
	if err := al.Replace(addr.Addr{Prefix: b.Addr, Valid: lft, Preferred: lft, Broadcast: b.Broadcast}); err != nil {
		return err
	}
	c.inst.addr = b.Addr

	c.applyMTU(link, b)

	// DefaultRoute is only asked when the lease has a default route to
	// install: the engine makes the first link that asks its uplink.
	want := plan(b, hasDefault(b) && c.o.DefaultRoute())
	var done []route
	for _, r := range want {
		if err := c.addRoute(r, b.Addr.Addr()); err != nil {
			c.logf("route %s: %v", r, err)
			continue
		}
		done = append(done, r)
	}
	// Withdraw routes of the previous application that are gone now
	// (a changed option 121, DefaultRoute turned false...), last
	// first so a host route outlives the route through it.
	for i := len(c.inst.routes) - 1; i >= 0; i-- {
		if r := c.inst.routes[i]; !slices.Contains(done, r) {
			c.delRoute(r)
		}
	}
	c.inst.routes = done
	return nil
}

// applyMTU sets the MTU: Options.MTU > option 26 > leave the link alone.
func (c *client) applyMTU(link netlink.Link, b *binding) {
	want := c.o.MTU
	if want == 0 {
		want = b.MTU
		if c.o.IPv6 && want > 0 && want < minMTUIPv6 {
			// The link MTU is IPv6's too: below 1280 IPv6 stops working
			// on the link (RFC 8200 section 5).
			c.logDrop("ignoring MTU %d from option 26: the link runs IPv6, which needs %d", want, minMTUIPv6)
			want = 0
		}
	}
	cur := link.Attrs().MTU
	c.inst.applied = 0
	switch {
	case want > 0 && cur != want:
		if err := netlink.LinkSetMTU(link, want); err != nil {
			c.logDrop("setting MTU %d: %v", want, err)
			return
		}
		if c.inst.mtu == 0 {
			c.inst.origMTU = cur
		}
		c.inst.mtu, c.inst.applied = want, want
	case want > 0:
		c.inst.applied = want
	case c.inst.mtu != 0:
		c.restoreMTU()
	}
}

func (c *client) restoreMTU() {
	if c.inst.mtu == 0 {
		return
	}
	if link, err := netlink.LinkByIndex(c.idx); err == nil && link.Attrs().MTU == c.inst.mtu {
		if err := netlink.LinkSetMTU(link, c.inst.origMTU); err != nil {
			c.logf("restoring MTU %d: %v", c.inst.origMTU, err)
		}
	}
	c.inst.mtu, c.inst.applied = 0, 0
}

// nlRoute is r as a kernel route of ours: protocol dhcp, preferred source
// the leased address. With that source, the kernel also flushes the route
// when the address expires (fib_sync_down_addr), so nothing is left
// pointing nowhere if netinit dies.
func (c *client) nlRoute(r route, src netip.Addr) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: c.idx,
		Protocol:  unix.RTPROT_DHCP,
		Family:    netlink.FAMILY_V4,
		Src:       src.AsSlice(),
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.Dst.Bits() > 0 {
		nr.Dst = addr.Net(r.Dst)
	} else {
		nr.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr
}

// addRoute installs r. A route we installed before is replaced in place
// (no bounce at renewal); a new one is added, and an equal route that is
// somebody else's (another link, a static config) is left alone, except a
// dhcp route on this very link: that is ours from before a handoff.
func (c *client) addRoute(r route, src netip.Addr) error {
	nr := c.nlRoute(r, src)
	if slices.Contains(c.inst.routes, r) {
		return netlink.RouteReplace(nr)
	}
	err := netlink.RouteAdd(nr)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	existing, lerr := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: nr.Dst},
		netlink.RT_FILTER_DST)
	if lerr != nil {
		return err
	}
	for _, e := range existing {
		if e.LinkIndex == c.idx && e.Protocol == unix.RTPROT_DHCP && e.Priority == 0 {
			return netlink.RouteReplace(nr)
		}
	}
	return fmt.Errorf("an equal route that is not ours exists: %w", err)
}

func (c *client) delRoute(r route) {
	nr := c.nlRoute(r, netip.Addr{})
	nr.Src = nil
	if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) {
		c.logf("removing route %s: %v", r, err)
	}
}

// unapply removes everything we installed.
func (c *client) unapply() {
	for i := len(c.inst.routes) - 1; i >= 0; i-- {
		c.delRoute(c.inst.routes[i])
	}
	c.inst.routes = nil
	if c.inst.addr.IsValid() {
		al := addr.Link{Index: c.idx, Name: c.o.Link}
		if err := al.Remove(c.inst.addr); err != nil {
			c.logf("%v", err)
		}
	}
	c.restoreMTU()
	c.inst = installed{}
}
