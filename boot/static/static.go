// Package static is the client of a static ip= (dracut.cmdline(7)
// "ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:..."): it configures the
// address and, on the uplink, the gateway, and reports them to the engine
// as a lease.Report with source "static", the way dhcp4, ra and dhcp6
// report theirs. Its Options have the same shape as theirs: DefaultRoute
// (nil means no) is asked before the default route goes in, and Reapply
// asks it again when the uplink changes.
package static

import (
	"net/netip"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
)

// Options configure Run. The cmdline parser has validated every field.
type Options struct {
	Link    string
	Address netip.Prefix
	// Gateway is the default router; the zero Addr for none. One outside
	// Address's subnet gets an on-link host route first.
	Gateway  netip.Addr
	DNS      []netip.Addr
	Hostname string
	MTU      int // reported only: the engine sets the link's MTU

	// DefaultRoute is asked before the default route via Gateway is
	// installed, and again at every Reapply: only the uplink installs
	// one. nil means no, as in dhcp4 and ra.
	DefaultRoute func() bool
	// Reapply, when it receives, asks DefaultRoute again and installs or
	// withdraws the default route: the engine's uplink changed.
	Reapply <-chan struct{}

	Report lease.Reporter
	Logf   func(format string, args ...any)
}

// routes is what goes into the kernel for the gateway: an on-link host
// route to it when it is outside the subnet, then the default route via
// it. None without a gateway or when the link may not have the default.
func (o *Options) routes(withDefault bool) []lease.Route {
	gw := o.Gateway
	if !gw.IsValid() || !withDefault {
		return nil
	}
	var rs []lease.Route
	if !o.Address.Contains(gw) {
		rs = append(rs, lease.Route{Dst: netip.PrefixFrom(gw, gw.BitLen())})
	}
	def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return append(rs, lease.Route{Dst: def, Via: gw})
}

// report is what the client reports with routes in place.
func (o *Options) report(routes []lease.Route, now time.Time) lease.Report {
	r := lease.Report{
		Link: o.Link, Source: lease.SourceStatic, Status: "bound",
		Addresses: []lease.Addr{{Prefix: o.Address}},
		DNS:       o.DNS, Hostname: o.Hostname, MTU: o.MTU,
		Routes:  routes,
		Updated: now,
	}
	if len(routes) > 0 {
		r.Routers = []netip.Addr{o.Gateway}
	}
	return r
}
