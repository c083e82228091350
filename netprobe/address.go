// Package netprobe decides what kind of connectivity a node has. The
// address-based verdict lives here so that the whole product makes the
// "public IPv6?" decision in one place; the probes that refine it (outbound
// connects, inbound reflection) build on it.
package netprobe

import (
	"fmt"
	"net/netip"
)

var (
	ula       = netip.MustParsePrefix("fc00::/7")      // RFC 4193
	yggdrasil = netip.MustParsePrefix("200::/7")       // Yggdrasil overlay
	siteLocal = netip.MustParsePrefix("fec0::/10")     // RFC 3879, deprecated
	cgnat     = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598
	global6   = netip.MustParsePrefix("2000::/3")
)

// documentation holds the ranges reserved for examples, never routed on
// the internet: not public.
var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),    // RFC 5737 TEST-NET-1
	netip.MustParsePrefix("198.51.100.0/24"), // RFC 5737 TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // RFC 5737 TEST-NET-3
	netip.MustParsePrefix("2001:db8::/32"),   // RFC 3849
	netip.MustParsePrefix("3fff::/20"),       // RFC 9637
}

// Internet says which addresses count as public. The zero value is the
// Internet's own rules. The labs number their networks from the
// documentation ranges and stand them for the Internet: theirs has
// Documentation set (the tests pass it, and the netinit binary they build,
// tag netinit_lab, passes it to the engine and the overlays). A production
// binary never does.
type Internet struct {
	// Documentation counts the documentation ranges (RFC 5737, 3849,
	// 9637) as public.
	Documentation bool
}

func isDocumentation(a netip.Addr) bool {
	for _, p := range documentation {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PublicIPv6 reports whether addr is a global-scope unicast IPv6 address
// (2000::/3) that can be public: not ULA (fc00::/7), not link-local, not
// Yggdrasil (200::/7), not site-local (fec0::/10), not loopback or
// multicast, not documentation (2001:db8::/32, 3fff::/20) unless
// n.Documentation.
func (n Internet) PublicIPv6(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is6() || a.Is4In6() {
		return false
	}
	if !a.IsGlobalUnicast() || ula.Contains(a) || yggdrasil.Contains(a) || siteLocal.Contains(a) {
		return false
	}
	return global6.Contains(a) && (n.Documentation || !isDocumentation(a))
}

// PublicIPv4 reports whether a is a public IPv4 address: not RFC 1918, not
// CGNAT 100.64.0.0/10, not loopback, link-local or multicast, not
// documentation (RFC 5737) unless n.Documentation.
func (n Internet) PublicIPv4(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a) &&
		(n.Documentation || !isDocumentation(a))
}

// Public reports whether a is public in its family.
func (n Internet) Public(a netip.Addr) bool {
	if a.Unmap().Is4() {
		return n.PublicIPv4(a)
	}
	return n.PublicIPv6(a)
}

// IPv6Verdict is the address-based answer to "does this node have public
// IPv6?": true when some managed link has a public IPv6 address (see
// PublicIPv6) and an IPv6 default route. The reason says why, in words.
func (n Internet) IPv6Verdict(addrs []netip.Addr, hasDefault6 bool) (bool, string) {
	var pub netip.Addr
	for _, a := range addrs {
		if n.PublicIPv6(a) {
			pub = a
			break
		}
	}
	switch {
	case !pub.IsValid() && !hasDefault6:
		return false, "no global IPv6 address and no IPv6 default route"
	case !pub.IsValid():
		return false, "IPv6 default route but no global IPv6 address"
	case !hasDefault6:
		return false, fmt.Sprintf("global address %s but no IPv6 default route", pub)
	}
	return true, fmt.Sprintf("global address %s and an IPv6 default route (address-based; not probed)", pub)
}
