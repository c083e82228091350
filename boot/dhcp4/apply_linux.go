package dhcp4

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/vishvananda/netlink"
)

// installed is what this client put in the kernel, so that it removes only
// that.
type installed struct {
	addr    netip.Prefix  // invalid when none
	routes  []route.Route // in the kernel (boot/route judged them)
	mtu     int           // the MTU we set; 0 when we did not touch it
	origMTU int           // the link's MTU before we set it
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

	// boot/route installs what the link may have now (the uplink: the
	// default routes too) and withdraws what it no longer may.
	routes, err := c.o.Routes.Apply(c.o.Link, c.idx, lease.SourceDHCP4, plan(b))
	if err != nil {
		c.logf("%v", err)
	}
	c.inst.routes = routes
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

// unapply removes everything we installed.
func (c *client) unapply() {
	if err := c.o.Routes.Withdraw(c.o.Link, lease.SourceDHCP4); err != nil {
		c.logf("%v", err)
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
