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
	ula            = netip.MustParsePrefix("fc00::/7")      // RFC 4193
	yggdrasil      = netip.MustParsePrefix("200::/7")       // Yggdrasil overlay
	siteLocal      = netip.MustParsePrefix("fec0::/10")     // RFC 3879, deprecated
	documentation6 = netip.MustParsePrefix("2001:db8::/32") // RFC 3849
	cgnat          = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598
	global6        = netip.MustParsePrefix("2000::/3")
)

// PublicIPv6 reports whether addr is a global-scope unicast IPv6 address
// that can be public: not ULA (fc00::/7), not link-local, not Yggdrasil
// (200::/7), not site-local (fec0::/10), not loopback or multicast.
// Documentation addresses (2001:db8::/32) count as public so that labs
// built on them behave like the internet.
func PublicIPv6(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is6() || a.Is4In6() {
		return false
	}
	if !a.IsGlobalUnicast() || ula.Contains(a) || yggdrasil.Contains(a) || siteLocal.Contains(a) {
		return false
	}
	return global6.Contains(a) || documentation6.Contains(a)
}

// PublicIPv4 reports whether a is a public IPv4 address: not RFC 1918, not
// CGNAT 100.64.0.0/10, not loopback, link-local or multicast.
func PublicIPv4(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}

// Public reports whether a is public in its family.
func Public(a netip.Addr) bool {
	if a.Unmap().Is4() {
		return PublicIPv4(a)
	}
	return PublicIPv6(a)
}

// IPv6Verdict is the address-based answer to "does this node have public
// IPv6?": true when some managed link has a public IPv6 address (see
// PublicIPv6) and an IPv6 default route. The reason says why, in words.
func IPv6Verdict(addrs []netip.Addr, hasDefault6 bool) (bool, string) {
	var pub netip.Addr
	for _, a := range addrs {
		if PublicIPv6(a) {
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
