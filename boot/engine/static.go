package engine

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
)

// applyStatic configures the address and gateway of a static ip= on its
// link and reports them as the "static" source. The parser has already
// validated every field, so nothing is half-applied for bad input; a
// kernel error here is reported with what was being done.
func (e *Engine) applyStatic(l *link) error {
	nl, err := netlink.LinkByName(l.name)
	if err != nil {
		return err
	}
	p := l.ipc.Address
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		addr.Flags = 0x02 // IFA_F_NODAD: a configured address is usable at once
	}
	if err := netlink.AddrReplace(nl, addr); err != nil {
		return fmt.Errorf("address %s: %w", p, err)
	}
	ls := lease.Report{
		Link: l.name, Source: state.SourceStatic, Status: "bound",
		Addresses: []lease.Addr{{Prefix: p}},
		DNS:       l.ipc.DNS, Hostname: l.ipc.Hostname, MTU: l.ipc.MTU,
		Updated: time.Now(),
	}
	if gw := l.ipc.Gateway; gw.IsValid() && e.mayDefault(l.name) {
		if !p.Contains(gw) {
			// A gateway outside the subnet needs an on-link host route first.
			host := netip.PrefixFrom(gw, gw.BitLen())
			r := &netlink.Route{LinkIndex: nl.Attrs().Index, Dst: ipnet(host), Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteReplace(r); err != nil {
				return fmt.Errorf("on-link route to gateway %s: %w", gw, err)
			}
			ls.Routes = append(ls.Routes, lease.Route{Dst: host})
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if gw.Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		r := &netlink.Route{LinkIndex: nl.Attrs().Index, Dst: ipnet(def), Gw: gw.AsSlice()}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
		ls.Routes = append(ls.Routes, lease.Route{Dst: def, Via: gw})
		ls.Routers = []netip.Addr{gw}
	}
	e.logf("%s: static %s gateway %s", l.name, p, l.ipc.Gateway)
	e.report(ls)
	return nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
