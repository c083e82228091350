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
	"slices"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/lease"
)

// Options configure Run.
type Options struct {
	Link string
	// DefaultRoute says whether to install the IPv6 default route(s) via
	// the advertising routers, and on-link or RFC 4191 routes less
	// specific than /8 (::/0 on-link, ::/1): only the uplink does. nil
	// means no, as in dhcp4.
	DefaultRoute func() bool
	// RouteInfo says whether RFC 4191 routes (Route Information options)
	// are installed on this link. Only the uplink should speak for the
	// node; nil means: only when default routes are (DefaultRoute).
	RouteInfo func() bool
	// Protected are prefixes (the WireGuard tunnel subnets) inside which
	// no RA may install a route or an address; Yggdrasil's 200::/7 is
	// always protected.
	Protected []netip.Prefix
	// MTU overrides the RA's MTU option when not 0.
	MTU int
	// Report receives a lease after every change of what is applied.
	Report lease.Reporter
	// Logf gets one readable event per line.
	Logf func(format string, args ...any)
	// Kick, when it receives, makes the client act now (the control
	// socket's "renew"): it sends a Router Solicitation, and the answer
	// refreshes the lifetimes. Same name and meaning in dhcp4 and dhcp6.
	Kick <-chan struct{}
	// Reapply, when it receives, applies the current view again (asking
	// DefaultRoute again): the engine's uplink changed.
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
func (v View) Report(link string, applied []Route, now time.Time) lease.Report {
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

// routes is every route of the view that should be in the kernel: RFC
// 4191 routes only if withRIO, defaults and routes less specific than /8
// only if withDefault.
func (v View) routes(withDefault, withRIO bool) []Route {
	sets := [][]Route{v.OnLink, v.Defaults}
	if withRIO {
		sets = append(sets, v.Routes)
	}
	var rs []Route
	for _, set := range sets {
		for _, r := range set {
			if withDefault || !r.wide() {
				rs = append(rs, r)
			}
		}
	}
	return rs
}

// wide reports whether a route is one only the uplink installs
// (lease.Wide).
func (r Route) wide() bool { return lease.Wide(r.Dst) }

// wantsDefault reports whether the view has a route only the uplink
// installs (then the client asks Options.DefaultRoute).
func (v View) wantsDefault() bool {
	return slices.ContainsFunc(v.OnLink, Route.wide) || len(v.Defaults) > 0 || slices.ContainsFunc(v.Routes, Route.wide)
}

// keyOf identifies a kernel route.
type routeKey struct {
	dst    netip.Prefix
	via    netip.Addr
	metric int
}

func (r Route) key() routeKey { return routeKey{r.Dst, r.Via, r.Metric} }

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
