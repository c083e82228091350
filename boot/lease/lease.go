// Package lease is the status that each protocol client (dhcp4, ra, dhcp6,
// static) reports to the bring-up engine: what it has configured on one
// link, right now. A client owns its part of the kernel configuration and
// reports it after every change; the engine merges the reports of all
// clients into the node's state (spec and status kept apart, as in Talos'
// networkd: the clients act, the engine observes and decides).
package lease

import (
	"net/netip"
	"slices"
	"time"
)

// Source says where an address came from: the client that configured
// it, or, in the state, what else put it there.
type Source string

const (
	SourceDHCP4     Source = "dhcp4"
	SourceSLAAC     Source = "slaac"
	SourceDHCP6     Source = "dhcp6"
	SourceStatic    Source = "static"
	SourceLinkLocal Source = "link-local"
	SourceYggdrasil Source = "yggdrasil"
	SourceWireGuard Source = "wireguard"
	SourceKernel    Source = "kernel" // present on the link, not configured by netinit
)

// Report is the configuration one source has applied on one link (a DHCP
// lease, what an RA gave, a static ip=): what the client reports. A zero
// Addresses/Routes list with Status "lost" or "failed" means the source
// has withdrawn everything it had configured.
type Report struct {
	Link   string
	Source Source // dhcp4, slaac (for RA), dhcp6, static
	// Status is the client's state in words: "selecting", "bound",
	// "renewing", "rebinding", "expired", "nak", "failed", "received"...
	Status string

	Addresses []Addr
	Routes    []Route

	DNS      []netip.Addr
	Search   []string
	NTP      []netip.Addr
	Hostname string // validated (RFC 1123) by the client; "" if none
	MTU      int    // applied to the link by the client; 0 if none

	// Managed and Other are the RA's M and O flags (RFC 4861 section 4.2):
	// the engine starts DHCPv6 when either is set.
	Managed, Other bool

	// Server is the DHCP server or the router (link-local) that gave this.
	Server netip.Addr
	// Routers are all the routers the source offered (DHCP option 3 may
	// list several; the first is used).
	Routers []netip.Addr

	// V6OnlyWait is set by DHCPv4 when the server answered that the link
	// prefers IPv6-only (RFC 8925 option 108, V6ONLY_WAIT): the client
	// took no address and asks again after this long.
	V6OnlyWait time.Duration
	// PREF64 is the NAT64 prefix the router advertised (RFC 8781); the
	// zero Prefix when none.
	PREF64 netip.Prefix

	// Updated is when the client applied this.
	Updated time.Time
}

// Addr is an address with its lifetimes (zero = infinite).
type Addr struct {
	Prefix    netip.Prefix
	Valid     time.Duration
	Preferred time.Duration
}

// Route is a route the client installed. A zero Via is an on-link route.
type Route struct {
	Dst      netip.Prefix
	Via      netip.Addr
	Lifetime time.Duration // 0 = no expiry
}

// Usable reports whether the report gives the link at least one address.
func (l *Report) Usable() bool { return l != nil && len(l.Addresses) > 0 }

// HasDefault reports whether the source installed a default route, or
// both halves of one (0.0.0.0/1 + 128.0.0.0/1, ::/1 + 8000::/1: DHCP
// option 121 and VPNs give it so, to win over a plain default route).
func (l *Report) HasDefault() bool {
	if l == nil {
		return false
	}
	var halves [len(defaultHalves)]bool
	for _, r := range l.Routes {
		if r.Dst.Bits() == 0 {
			return true
		}
		if r.Dst.Bits() == 1 {
			for i, h := range defaultHalves {
				if r.Dst.Masked() == h {
					halves[i] = true
				}
			}
		}
	}
	return halves[0] && halves[1] || halves[2] && halves[3]
}

// defaultHalves are the two halves of the IPv4 and of the IPv6 default
// route, in pairs.
var defaultHalves = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"),
	netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1"),
}

// Yggdrasil is Yggdrasil's address space: 200::/7 holds the node
// addresses and, inside it, 300::/8 the routed /64 subnets. ygg0 routes
// 200::/7; an address or a more specific route learnt from a neighbour on
// an Ethernet would send overlay traffic there in clear (issue 13), and
// the local route of such an address blackholes that overlay destination.
var Yggdrasil = []netip.Prefix{netip.MustParsePrefix("200::/7"), netip.MustParsePrefix("300::/8")}

// InOverlay returns the overlay prefix that p lies in: Yggdrasil's
// (always) or one of tunnels (the WireGuard tunnel subnets,
// netinit.wg.address=). No address and no route a client learnt from the
// wire (an RA, a DHCPv6 lease) may lie in one. A prefix that only covers
// an overlay (::/1 around 200::/7) is not in it: the overlay's own,
// longer, route still wins for its part. An address is its /32 or /128.
func InOverlay(p netip.Prefix, tunnels []netip.Prefix) (netip.Prefix, bool) {
	for _, q := range slices.Concat(Yggdrasil, tunnels) {
		q = q.Masked()
		if p.Bits() >= q.Bits() && q.Contains(p.Addr()) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// Reporter receives a client's report after every change. It must not
// block for long; the engine copies what it needs.
type Reporter func(Report)
