package engine

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/addr"
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
	// Permanent, and without DAD: a configured address is usable at once.
	al := addr.Link{Index: nl.Attrs().Index, Name: l.name}
	if err := al.Replace(addr.Addr{Prefix: p, Valid: addr.Forever, Preferred: addr.Forever, NoDAD: true}); err != nil {
		return err
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
			r := &netlink.Route{LinkIndex: nl.Attrs().Index, Dst: addr.Net(host), Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteReplace(r); err != nil {
				return fmt.Errorf("on-link route to gateway %s: %w", gw, err)
			}
			ls.Routes = append(ls.Routes, lease.Route{Dst: host})
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if gw.Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		r := &netlink.Route{LinkIndex: nl.Attrs().Index, Dst: addr.Net(def), Gw: gw.AsSlice()}
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
