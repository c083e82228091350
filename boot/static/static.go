// Package static is the client of a static ip= (dracut.cmdline(7)
// "ip=<client-IP>:[<peer>]:<gateway-IP>:<netmask>:..."): it configures the
// address and, on the uplink, the gateway, and reports them to the engine
// as a lease.Report with source "static", the way dhcp4, ra and dhcp6
// report theirs. Its Options have the same shape as theirs: Routes
// (boot/route) installs the gateway's routes on the uplink alone, and
// Reapply has it judge them again when the uplink changes.
package static

import (
	"net/netip"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
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

	// Routes installs the default route via Gateway (and the host route
	// to it) on the uplink alone. nil: an installer of its own, for which
	// no link is the uplink.
	Routes *route.Installer
	// Reapply, when it receives, has Routes judge the routes again and
	// install or withdraw them: the engine's uplink changed.
	Reapply <-chan struct{}

	Report lease.Reporter
	Logf   console.Logf
}

// routes is what goes into the kernel for the gateway: an on-link host
// route to it when it is outside the subnet, then the default route via
// it (boot/route installs both on the uplink alone). None without a
// gateway.
func (o *Options) routes() []route.Route {
	gw := o.Gateway
	if !gw.IsValid() {
		return nil
	}
	var rs []route.Route
	if !o.Address.Contains(gw) {
		rs = append(rs, route.Route{Dst: netip.PrefixFrom(gw, gw.BitLen())})
	}
	def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return append(rs, route.Route{Dst: def, Via: gw})
}

// report is what the client reports with routes in place.
func (o *Options) report(routes []route.Route, now time.Time) lease.Report {
	r := lease.Report{
		Link: o.Link, Source: lease.SourceStatic, Status: "bound",
		Addresses: []lease.Addr{{Prefix: o.Address}},
		DNS:       o.DNS, Hostname: o.Hostname, MTU: o.MTU,
		Updated: now,
	}
	for _, rt := range routes {
		r.Routes = append(r.Routes, lease.Route{Dst: rt.Dst, Via: rt.Via})
	}
	if len(routes) > 0 {
		r.Routers = []netip.Addr{o.Gateway}
	}
	return r
}
