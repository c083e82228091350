package route

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/threefoldtech/netinit/boot/lease"
)

// The shortest prefixes into public address space a link that is not the
// uplink may route (issue 29 item 2): an IPv6 site gets a /48 (RFC 6177),
// an IPv4 network one /16 at the most; anything shorter than that from a
// LAN is a claim on the Internet, which is the uplink's to route.
const (
	minBits6 = 48
	minBits4 = 16
)

// maxDHCP4 bounds the routes one DHCPv4 lease installs: RFC 3442 puts no
// bound on option 121 (a 255-byte option holds 51 /8 routes, and options
// may be concatenated, RFC 3396).
const maxDHCP4 = 16

// private are the destinations any link may route at any length: they are
// no claim on the Internet. A prefix must lie inside one.
var private = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // RFC 6598, CGNAT
	netip.MustParsePrefix("169.254.0.0/16"), // RFC 3927, link-local
	netip.MustParsePrefix("fc00::/7"),       // RFC 4193, ULA
	netip.MustParsePrefix("fe80::/10"),      // RFC 4291, link-local
}

// inside reports whether p lies within one of ps (a prefix that only
// covers one, as ::/1 covers 200::/7, is not in it).
func inside(p netip.Prefix, ps []netip.Prefix) (netip.Prefix, bool) {
	for _, q := range ps {
		if p.Bits() >= q.Bits() && q.Contains(p.Addr()) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// wide reports whether p is a default route or less specific than /8
// (0.0.0.0/1 + 128.0.0.0/1 is a default route too): a set with one makes
// its link a candidate for the uplink.
func wide(p netip.Prefix) bool { return p.Bits() < 8 }

// competes reports whether r may go only through the uplink: a default
// route, one the client marks so, or one into public address space
// shorter than minBits6/minBits4.
func competes(r Route) bool {
	if r.Uplink || r.Dst.Bits() == 0 {
		return true
	}
	if _, ok := inside(r.Dst, private); ok {
		return false
	}
	if r.Dst.Addr().Is4() {
		return r.Dst.Bits() < minBits4
	}
	return r.Dst.Bits() < minBits6
}

// learnt reports whether src's routes come from the wire (a DHCP server,
// a router), as opposed to configured ones (a static ip=, the overlays).
func learnt(src lease.Source) bool {
	return src == lease.SourceDHCP4 || src == lease.SourceSLAAC || src == lease.SourceDHCP6
}

// judge returns the routes of want that may be installed now, in order,
// and says each refusal (once). uplink: link is the uplink. The caller
// holds in.mu.
func (in *Installer) judge(link string, src lease.Source, want []Route, uplink bool) []Route {
	if src == lease.SourceWireGuard || src == lease.SourceYggdrasil {
		return want // the overlay's own, configured
	}
	var ok []Route
	installed := 0
	shown := map[string]int{} // refusals said per rule, line by line or counted
	defer in.summarize(link, src, shown)
	for _, r := range want {
		switch q, overlay := lease.InOverlay(r.Dst, in.cfg.Protected); {
		case learnt(src) && overlay:
			in.refuse(shown, link, src, r, fmt.Sprintf("inside the overlay's %s", q), "overlay")
			continue
		case !uplink && competes(r):
			why, rule := "held back until "+link+" is the uplink", ""
			switch {
			case r.Dst.Bits() == 0 || r.Uplink || wide(r.Dst):
			case r.Dst.Addr().Is4():
				why, rule = fmt.Sprintf("refused: public address space shorter than /%d, and %s is not the uplink", minBits4, link), "public"
			default:
				why, rule = fmt.Sprintf("refused: public address space shorter than /%d, and %s is not the uplink", minBits6, link), "public"
			}
			in.say(shown, link, src, r, why, rule)
			continue
		}
		if src == lease.SourceDHCP4 && !gatewayRoute(r, want) {
			if installed == maxDHCP4 {
				in.refuse(shown, link, src, r, fmt.Sprintf("more than %d routes from one lease", maxDHCP4), "cap")
				continue
			}
			installed++
		}
		ok = append(ok, r)
	}
	// A host route to a router goes in only with a route through it.
	return slices.DeleteFunc(ok, func(r Route) bool {
		return gatewayRoute(r, want) && !slices.ContainsFunc(ok, func(o Route) bool { return o.Via == r.Dst.Addr() })
	})
}

// gatewayRoute reports whether r is an on-link host route to a router of
// another route of want (RFC 3442's routers outside the subnet).
func gatewayRoute(r Route, want []Route) bool {
	return !r.Via.IsValid() && r.Dst.IsSingleIP() &&
		slices.ContainsFunc(want, func(o Route) bool { return o.Via == r.Dst.Addr() })
}

// refuse says that r is refused for why; rule names the rule, for the
// problem raised once per link, source and rule.
func (in *Installer) refuse(shown map[string]int, link string, src lease.Source, r Route, why, rule string) {
	in.say(shown, link, src, r, "refused: "+why, rule)
}

// maxSaid bounds the refusals remembered as said: a server that changes
// its routes at every renewal must not grow the set without bound.
const maxSaid = 256

// maxShown is how many refusals of one rule one set of routes puts on the
// console line by line; the rest are counted in one line (a hostile lease
// with twenty public /8 routes is three lines and a count, not twenty).
const maxShown = 3

// say logs what happened to r once; with a rule, it raises a problem,
// once per link, source and rule, and counts it in shown (by rule): past
// maxShown of one rule in one judge, the line is not logged but counted
// (summarize). The caller holds in.mu.
func (in *Installer) say(shown map[string]int, link string, src lease.Source, r Route, what, rule string) {
	line := fmt.Sprintf("%s: %s: route %q %s", link, sourceName(src), r.String(), what)
	if in.said[line] {
		return
	}
	switch {
	case rule != "" && shown[rule] >= maxShown && len(in.said) < maxSaid:
		in.said[line] = true
		shown[rule]++
	case len(in.said) < maxSaid:
		in.said[line] = true
		in.lines = append(in.lines, line)
		if rule != "" {
			shown[rule]++
		}
	case len(in.said) == maxSaid:
		in.said[line] = true
		in.lines = append(in.lines, "route: further refused routes are not logged")
	}
	if rule == "" || in.cfg.Problem == nil {
		return
	}
	if k := link + "\x00" + string(src) + "\x00" + rule; !in.raised[k] {
		in.raised[k] = true
		in.problems = append(in.problems, line+" (and any more like it)")
	}
}

// summarize counts in one line, per rule, the refusals of one judge that
// say did not log line by line. The caller holds in.mu.
func (in *Installer) summarize(link string, src lease.Source, shown map[string]int) {
	for _, rule := range slices.Sorted(maps.Keys(shown)) {
		if n := shown[rule] - maxShown; n > 0 {
			in.lines = append(in.lines, fmt.Sprintf("%s: %s: %d more routes refused for the same reason (%s)", link, sourceName(src), n, rule))
		}
	}
}

// sourceName is how the log names a source: "ra" for SLAAC, as the RA
// client's own lines do.
func sourceName(src lease.Source) string {
	if src == lease.SourceSLAAC {
		return "ra"
	}
	return string(src)
}
