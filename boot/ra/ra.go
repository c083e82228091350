// Package ra is IPv6 router discovery (RFC 4861) and stateless address
// autoconfiguration (RFC 4862) for one link, done in user space: the
// kernel's own RA processing is switched off (accept_ra=0) on links that
// netinit manages, so that what is configured, and when, is decided here
// and reported to the engine as a lease.Report (source "slaac").
//
// The work is split in two: Table (pure logic, no kernel calls: validation,
// lifetimes, caps) decides; the Linux side sends Router Solicitations,
// reads RAs and applies the Table's View with netlink.
package ra

import (
	"errors"
	"net/netip"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
)

// Options configure Run.
type Options struct {
	Link string
	// Routes installs the view's routes (at every change, and Reapply)
	// by its rules: only the uplink installs the default routes via the
	// advertising routers, on-link prefixes that compete with them and
	// RFC 4191 routes (they speak for the node). nil: an installer of its
	// own, for which no link is the uplink.
	Routes *route.Installer
	// Protected are prefixes (the WireGuard tunnel subnets) inside which
	// no RA may install a route or an address; Yggdrasil's 200::/7 is
	// always protected.
	Protected []netip.Prefix
	// MTU overrides the RA's MTU option when not 0.
	MTU int
	// Report receives a lease after every change of what is applied.
	Report lease.Reporter
	// Logf gets one readable event per line.
	Logf console.Logf
	// Kick, when it receives, makes the client act now (the control
	// socket's "renew"): it sends a Router Solicitation, and the answer
	// refreshes the lifetimes. Same name and meaning in dhcp4 and dhcp6.
	Kick <-chan struct{}
	// Reapply, when it receives, applies the current view again (Routes
	// judges its routes again): the engine's uplink changed.
	Reapply <-chan struct{}
	// Oneshot returns after the first RA has been applied, or when the
	// Router Solicitations are exhausted, or when ctx ends.
	Oneshot bool
}

// ErrNoRouter is returned in Oneshot mode when no RA came in answer to
// the Router Solicitations.
var ErrNoRouter = errors.New("no router advertisement")

// Router solicitation timing, RFC 4861 section 10.
const (
	maxRtrSolicitations     = 3
	rtrSolicitationInterval = 4 * time.Second
)

// Report converts a View into the report to the engine. Lifetimes follow the lease
// convention (0 = infinite); a deprecated address (preferred lifetime 0 in
// RFC 4862 terms) is reported with Preferred = -1ns.
func (v View) Report(link string, applied []route.Route, now time.Time) lease.Report {
	l := lease.Report{
		Link:    link,
		Source:  lease.SourceSLAAC,
		Status:  "received",
		MTU:     v.MTU,
		Managed: v.Managed,
		Other:   v.Other,
		Server:  v.Router,
		PREF64:  v.PREF64,
		Updated: now,
	}
	if !v.Received {
		l.Status = "soliciting"
	}
	for _, a := range v.Addrs {
		la := lease.Addr{Prefix: a.Prefix, Valid: addr.Finite(a.Valid), Preferred: addr.Finite(a.Preferred)}
		if a.Preferred == 0 {
			la.Preferred = -1
		}
		l.Addresses = append(l.Addresses, la)
	}
	for _, r := range applied {
		l.Routes = append(l.Routes, lease.Route{Dst: r.Dst, Via: r.Via, Lifetime: addr.Finite(r.Lifetime)})
	}
	for _, r := range v.Defaults {
		l.Routers = append(l.Routers, r.Via)
	}
	l.DNS = append(l.DNS, v.DNS...)
	l.Search = append(l.Search, v.Search...)
	return l
}

// want is every route of the view, for boot/route to judge: the on-link
// prefixes, the default routes via each router, and the RFC 4191 routes,
// which only the uplink installs whatever their length.
func (v View) want() []route.Route {
	var rs []route.Route
	for _, set := range [][]Route{v.OnLink, v.Defaults, v.Routes} {
		for _, r := range set {
			rs = append(rs, route.Route{Dst: r.Dst, Via: r.Via, Metric: r.Metric, Lifetime: r.Lifetime})
		}
	}
	for i := len(v.OnLink) + len(v.Defaults); i < len(rs); i++ {
		rs[i].Uplink = true
	}
	return rs
}

// logBurst is how many RA log lines a second get through; a flood of RAs
// must not flood the console.
const logBurst = 5

// limiter lets logBurst log lines a second through and counts the rest.
type limiter struct {
	window     time.Time
	n, dropped int
}

// allow reports whether a line may be logged now and, if so, how many were
// dropped since the last one that was.
func (l *limiter) allow(now time.Time) (bool, int) {
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n++; l.n > logBurst {
		l.dropped++
		return false, 0
	}
	d := l.dropped
	l.dropped = 0
	return true, d
}
