package ra

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/lease"
)

// Caps on what is taken from Router Advertisements. An RA is unauthenticated
// (no SEND here), so a neighbour flooding RAs with thousands of prefixes,
// servers or router addresses must not grow memory or the kernel's tables
// without bound. maxAddrs matches the kernel's own default for SLAAC
// (net.ipv6.conf.*.max_addresses = 16).
const (
	maxAddrs   = 16 // SLAAC addresses per link, in total
	maxOnLink  = 16 // on-link prefixes (PIO with L) per link
	maxRouters = 4  // default routers per link
	maxRoutes  = 16 // RFC 4191 route information entries per link
	maxDNS     = 8  // RFC 8106 servers per link (the RFC asks for at least 3)
	maxSearch  = 8  // RFC 8106 search domains per link

	// Per-RA caps: options past these in a single RA are ignored.
	perRAPrefixes = 16
	perRARoutes   = 16
	perRADNS      = 8
	perRASearch   = 8

	// maxNotes bounds the prefixes and routes named in one log line.
	maxNotes = 4

	// A full table prefers what keeps being heard (issue 29): the caps
	// above are filled first come, and lifetimes may be infinite, so a
	// flood at boot would otherwise keep the real router out until the
	// next boot. An entry that no RA refreshed within its router's
	// announced interval (or defaultAdvInterval) is stale: a new router,
	// prefix, address or route takes its place when the table is full.
	// defaultAdvInterval is RFC 4861 section 6.2.1's default
	// MaxRtrAdvInterval (600 s): a router that says nothing sends an
	// unsolicited RA at least that often. maxAdvInterval is that
	// section's largest MaxRtrAdvInterval: an announced interval above it
	// (a flood announcing days) is taken as this.
	defaultAdvInterval = 10 * time.Minute
	maxAdvInterval     = 1800 * time.Second
	// optAdvInterval is the Advertisement Interval option (RFC 6275
	// section 7.3; radvd's AdvIntervalOpt): the router's
	// MaxRtrAdvInterval in milliseconds.
	optAdvInterval = 7

	// rioMinBits: no RFC 4191 route less specific than a /48 is taken.
	// A Route Information option is unauthenticated; the kernel keeps
	// such routes off by default (accept_ra_rt_info_max_plen = 0), and a
	// short prefix (::/1, 2000::/3) from any neighbour would outrank the
	// uplink's default route for most of the Internet.
	rioMinBits = 48
)

// Infinite is the "infinity" lifetime of RFC 4861 section 4.6.2 (all ones in
// a 32-bit field), as ndp decodes it: addr.Forever.
const Infinite = addr.Forever

// twoHours is the floor of RFC 4862 section 5.5.3 (e).
const twoHours = 2 * time.Hour

// minMTU is the IPv6 minimum link MTU (RFC 8200 section 5); an RA MTU option
// below it is ignored (RFC 4861 section 6.3.4).
const minMTU = 1280

// InterfaceID returns the modified EUI-64 interface identifier of a MAC
// address (RFC 4291 appendix A): stable across boots, so the SLAAC address
// of a node never changes while its NIC does not.
func InterfaceID(mac net.HardwareAddr) ([8]byte, error) {
	var id [8]byte
	switch len(mac) {
	case 6:
		copy(id[0:3], mac[0:3])
		id[3], id[4] = 0xff, 0xfe
		copy(id[5:8], mac[3:6])
	case 8:
		copy(id[:], mac)
	default:
		return id, fmt.Errorf("no EUI-64 for a %d-byte link-layer address", len(mac))
	}
	// Invert the universal/local bit (RFC 4291 section 2.5.1).
	id[0] ^= 0x02
	return id, nil
}

// SLAACAddr is the address formed from a /64 prefix and an interface id
// (RFC 4862 section 5.5.3 (d)).
func SLAACAddr(prefix netip.Prefix, id [8]byte) netip.Addr {
	b := prefix.Masked().Addr().As16()
	copy(b[8:], id[:])
	return netip.AddrFrom16(b)
}

// deadline turns a lifetime received at now into an absolute time; the zero
// time stands for infinity.
func deadline(now time.Time, d time.Duration) time.Time {
	if d >= Infinite {
		return time.Time{}
	}
	return now.Add(d)
}

// remaining is the inverse of deadline: Infinite for the zero time, never
// negative.
func remaining(now, until time.Time) time.Duration {
	if until.IsZero() {
		return Infinite
	}
	if d := until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// ValidLifetime applies RFC 4862 section 5.5.3 (e) to an address that
// already exists: the valid lifetime advertised by an unauthenticated RA
// may lengthen it, but may shorten it only down to two hours, so that a
// forged RA cannot kill a node's addresses.
//
//  1. advertised > 2 hours or > remaining: take the advertised lifetime;
//  2. remaining <= 2 hours: ignore the advertised lifetime;
//  3. otherwise: two hours.
func ValidLifetime(remaining, advertised time.Duration) time.Duration {
	switch {
	case advertised > twoHours || advertised > remaining:
		return advertised
	case remaining <= twoHours:
		return remaining
	default:
		return twoHours
	}
}

// ErrInvalid marks an RA that fails the checks of RFC 4861 section 6.1.2.
var ErrInvalid = errors.New("invalid router advertisement")

// Validate applies RFC 4861 section 6.1.2 to a received ICMPv6 message b
// (starting at the ICMPv6 header) from src, received with IPv6 hop limit
// hopLimit (-1 if unknown), and parses it. The ICMPv6 checksum is verified
// by the kernel for raw ICMPv6 sockets (RFC 3542 section 3.1).
func Validate(b []byte, src netip.Addr, hopLimit int) (*ndp.RouterAdvertisement, error) {
	switch {
	case hopLimit != ndp.HopLimit:
		// A router on the link always sends with 255; anything else was
		// forwarded from off-link.
		return nil, fmt.Errorf("%w: hop limit %d, want 255", ErrInvalid, hopLimit)
	case !src.WithZone("").IsLinkLocalUnicast():
		return nil, fmt.Errorf("%w: source %s is not link-local", ErrInvalid, src)
	case len(b) < 16:
		// ICMP length (derived from the IP length) is 16 or more octets.
		return nil, fmt.Errorf("%w: %d octets", ErrInvalid, len(b))
	case b[0] != 134:
		return nil, fmt.Errorf("%w: ICMPv6 type %d", ErrInvalid, b[0])
	case b[1] != 0:
		return nil, fmt.Errorf("%w: ICMPv6 code %d, want 0", ErrInvalid, b[1])
	}
	// ndp checks that every option has a length > 0 and fits the message.
	m, err := ndp.ParseMessage(dropBadPREF64(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ra, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		return nil, fmt.Errorf("%w: not a router advertisement", ErrInvalid)
	}
	fixRouteInfo(b[raHeaderLen:], ra)
	return ra, nil
}

// fixRouteInfo restores the prefix bits that ndp v1.1.0 loses in Route
// Information options (RFC 4191 section 2.3) whose prefix length is not a
// multiple of 8: it copies only PrefixLength/8 octets, so 8000::/1 comes
// out as ::/1 and 2001:db8:f000::/36 as 2001:db8::/36. The prefix is read
// again from the raw options (ndp has already checked their lengths), and
// the bits past the prefix length, reserved, are cleared.
func fixRouteInfo(opts []byte, ra *ndp.RouterAdvertisement) {
	var prefixes []netip.Addr
	eachOption(opts, func(_ int, o []byte) {
		if o[0] != 24 || len(o) < 8 { // 24: Route Information
			return
		}
		var a [16]byte
		copy(a[:], o[8:])
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom16(a), min(int(o[2]), 128)).Masked().Addr())
	})
	for _, o := range ra.Options {
		if ri, ok := o.(*ndp.RouteInformation); ok && len(prefixes) > 0 {
			ri.Prefix, prefixes = prefixes[0], prefixes[1:]
		}
	}
}

// Every capped entry carries fresh: until then an RA refreshed it within
// its router's interval (advInterval); after it, in a full table, the
// entry may give its place to a new one (evict).

type slaac struct {
	addr           netip.Prefix // address/64
	validUntil     time.Time    // zero: infinite
	preferredUntil time.Time    // zero: infinite
	fresh          time.Time
}

type router struct {
	addr   netip.Addr
	until  time.Time // never zero: router lifetime is 16 bits, no infinity
	pref   ndp.Preference
	metric int
	fresh  time.Time
}

type rio struct {
	via   netip.Addr
	until time.Time
	fresh time.Time
}

type onlink struct {
	until time.Time // zero: infinite
	fresh time.Time
}

// Table is the host's view of what routers on one link advertise
// (RFC 4861 section 5.1 conceptual data structures: prefix list, default
// router list, plus SLAAC addresses and RFC 8106 DNS). It is pure logic:
// no kernel calls, no clock of its own. Every entry is capped.
type Table struct {
	id      [8]byte
	linkMTU int // upper bound for the MTU option; 0 = no bound known

	addrs   map[netip.Prefix]*slaac // by /64 prefix
	onlink  map[netip.Prefix]*onlink
	routers map[netip.Addr]*router
	routes  map[netip.Prefix]*rio
	dns     map[netip.Addr]time.Time
	search  map[string]time.Time

	protected   []netip.Prefix // the tunnel subnets (Protect); Yggdrasil's always (lease.InOverlay)
	pref64      netip.Prefix   // RFC 8781 NAT64 prefix, the most recent one
	pref64Until time.Time

	mtu             int
	managed, other  bool
	last            netip.Addr // router of the last accepted RA
	seenRA          bool
	nextRouterIndex int
}

// NewTable returns an empty table for a link whose interface identifier is
// id and whose link MTU is linkMTU (0 if unknown).
func NewTable(id [8]byte, linkMTU int) *Table {
	return &Table{
		id:      id,
		linkMTU: linkMTU,
		addrs:   map[netip.Prefix]*slaac{},
		onlink:  map[netip.Prefix]*onlink{},
		routers: map[netip.Addr]*router{},
		routes:  map[netip.Prefix]*rio{},
		dns:     map[netip.Addr]time.Time{},
		search:  map[string]time.Time{},
	}
}

// Protect adds prefixes (the overlay's, such as the WireGuard tunnel
// subnets) inside which no RA may install a route or an address, besides
// Yggdrasil's, which are always protected.
func (t *Table) Protect(ps ...netip.Prefix) {
	for _, p := range ps {
		if p.IsValid() && p.Addr().Is6() && !p.Addr().Is4In6() {
			t.protected = append(t.protected, p.Masked())
		}
	}
}

// protectedBy returns the overlay prefix that p lies in, if any
// (lease.InOverlay: the check DHCPv6 applies to its addresses too).
func (t *Table) protectedBy(p netip.Prefix) (netip.Prefix, bool) {
	return lease.InOverlay(p, t.protected)
}

// Update processes one validated RA from src received at now. It returns
// whether anything to apply changed (a lifetime refresh counts) and one
// readable summary of the RA for the log.
func (t *Table) Update(now time.Time, src netip.Addr, ra *ndp.RouterAdvertisement) (changed bool, summary string) {
	src = src.WithZone("")
	var notes []string
	note := func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }

	t.seenRA = true
	t.last = src
	fresh := now.Add(advInterval(ra))
	if t.managed != ra.ManagedConfiguration || t.other != ra.OtherConfiguration {
		t.managed, t.other = ra.ManagedConfiguration, ra.OtherConfiguration
		changed = true
	}

	// Default router list (RFC 4861 section 6.3.4): lifetime 0 removes.
	if ra.RouterLifetime == 0 {
		if _, ok := t.routers[src]; ok {
			delete(t.routers, src)
			changed = true
		}
	} else if r, ok := t.routers[src]; ok {
		r.until, r.pref, r.fresh = now.Add(ra.RouterLifetime), ra.RouterSelectionPreference, fresh
		changed = true
	} else if room, why := evict(t.routers, maxRouters, now, func(r *router) time.Time { return r.fresh }, netip.Addr.Compare); room {
		t.routers[src] = &router{addr: src, until: now.Add(ra.RouterLifetime), pref: ra.RouterSelectionPreference, metric: t.routerMetric(ra.RouterSelectionPreference), fresh: fresh}
		changed = true
		if why != "" {
			note("router %s", why)
		}
	} else {
		note("router ignored (cap %d)", maxRouters)
	}

	var nPrefix, nRoute, nDNS, nSearch, capped int
	for _, o := range ra.Options {
		switch o := o.(type) {
		case *ndp.PrefixInformation:
			if nPrefix++; nPrefix > perRAPrefixes {
				capped++
				continue
			}
			c, n := t.prefix(now, fresh, o)
			changed = changed || c
			if nPrefix <= maxNotes {
				note("%s", n)
			}
		case *ndp.RouteInformation:
			if nRoute++; nRoute > perRARoutes {
				capped++
				continue
			}
			c, n := t.route(now, fresh, src, o)
			changed = changed || c
			if n != "" && nRoute <= maxNotes {
				note("%s", n)
			}
		case *ndp.RecursiveDNSServer:
			var good []netip.Addr
			for _, s := range o.Servers {
				if nDNS++; nDNS > perRADNS {
					capped++
					continue
				}
				c, err := t.dnsServer(now, s, o.Lifetime)
				if err != nil {
					note("rdnss %s ignored: %v", s, err)
					continue
				}
				good = append(good, s)
				changed = c || changed
			}
			if len(good) > 0 {
				note("rdnss %s (%s)", joinAddrs(good), lifetime(o.Lifetime))
			}
		case *ndp.DNSSearchList:
			var good []string
			for _, d := range o.DomainNames {
				if nSearch++; nSearch > perRASearch {
					capped++
					continue
				}
				// The name is from the wire: quoted in the log.
				c, err := t.searchDomain(now, d, o.Lifetime)
				if err != nil {
					note("dnssl %q ignored: %v", d, err)
					continue
				}
				good = append(good, d)
				changed = c || changed
			}
			if len(good) > 0 {
				note("dnssl %s (%s)", strings.Join(good, ","), lifetime(o.Lifetime))
			}
		case *ndp.PREF64:
			changed = t.nat64(now, o) || changed
			note("pref64 %s (%s)", o.Prefix, lifetime(o.Lifetime))
		case *ndp.MTU:
			m := int(o.MTU)
			if m < minMTU || (t.linkMTU > 0 && m > t.linkMTU) {
				note("mtu %d ignored", m)
				continue
			}
			if m != t.mtu {
				t.mtu = m
				changed = true
			}
			note("mtu %d", m)
		}
	}
	if nPrefix > maxNotes || nRoute > maxNotes {
		note("%d prefixes and %d routes in all", nPrefix, nRoute)
	}
	if capped > 0 {
		note("%d options over the per-RA caps ignored", capped)
	}
	summary = fmt.Sprintf("ra from %s: ", src)
	if len(notes) > 0 {
		summary += strings.Join(notes, ", ") + ", "
	}
	summary += fmt.Sprintf("router lifetime %ds, M=%d O=%d", int64(ra.RouterLifetime/time.Second), b2i(ra.ManagedConfiguration), b2i(ra.OtherConfiguration))
	return changed, summary
}

// routerMetric gives each default router its own route metric, so that
// each is a distinct kernel route (replaceable on its own), ordered by the
// RFC 4191 preference and then by discovery.
func (t *Table) routerMetric(p ndp.Preference) int {
	base := 1024
	switch p {
	case ndp.High:
		base = 512
	case ndp.Low:
		base = 2048
	}
	t.nextRouterIndex++
	return base + t.nextRouterIndex%256
}

// prefix handles one Prefix Information option: RFC 4861 section 6.3.4 for
// the on-link flag and RFC 4862 section 5.5.3 for autonomous addresses.
// fresh is when the entries it refreshes stop being fresh.
func (t *Table) prefix(now, fresh time.Time, o *ndp.PrefixInformation) (changed bool, note string) {
	p := netip.PrefixFrom(o.Prefix, int(o.PrefixLength)).Masked()
	flags := ""
	if o.OnLink {
		flags += "L"
	}
	if o.AutonomousAddressConfiguration {
		flags += "A"
	}
	note = fmt.Sprintf("prefix %s (%s) valid %s preferred %s", p, flags, lifetime(o.ValidLifetime), lifetime(o.PreferredLifetime))
	if !p.IsValid() || p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() {
		// Link-local prefixes are silently ignored (4861 6.3.4, 4862 5.5.3 (b)).
		return false, note + " ignored"
	}
	if q, ok := t.protectedBy(p); ok {
		return false, note + fmt.Sprintf(" ignored (inside the overlay's %s)", q)
	}
	if o.OnLink {
		_, known := t.onlink[p]
		switch {
		case o.ValidLifetime == 0:
			if known {
				delete(t.onlink, p)
				changed = true
			}
		case known:
			t.onlink[p] = &onlink{until: deadline(now, o.ValidLifetime), fresh: fresh}
			changed = true
		default:
			room, why := evict(t.onlink, maxOnLink, now, func(e *onlink) time.Time { return e.fresh }, comparePrefix)
			if !room {
				note += " on-link ignored (cap)"
				break
			}
			t.onlink[p] = &onlink{until: deadline(now, o.ValidLifetime), fresh: fresh}
			changed = true
			if why != "" {
				note += " on-link " + why
			}
		}
	}
	if !o.AutonomousAddressConfiguration {
		return changed, note
	}
	// RFC 4862 section 5.5.3 (c): preferred > valid is silently ignored;
	// (d): the prefix and the 64-bit interface id must make 128 bits.
	if o.PreferredLifetime > o.ValidLifetime {
		return changed, note + " ignored (preferred > valid)"
	}
	if p.Bits() != 64 {
		return changed, note + " not /64: no address"
	}
	a, known := t.addrs[p]
	switch {
	case !known && o.ValidLifetime == 0:
		return changed, note
	case !known:
		room, why := evict(t.addrs, maxAddrs, now, func(a *slaac) time.Time { return a.fresh }, comparePrefix)
		if !room {
			return changed, note + fmt.Sprintf(" address ignored (cap %d)", maxAddrs)
		}
		if why != "" {
			note += " address " + why
		}
		t.addrs[p] = &slaac{
			addr:           netip.PrefixFrom(SLAACAddr(p, t.id), 64),
			validUntil:     deadline(now, o.ValidLifetime),
			preferredUntil: deadline(now, o.PreferredLifetime),
			fresh:          fresh,
		}
		return true, note
	}
	// (e): an address we already have.
	a.fresh = fresh
	a.preferredUntil = deadline(now, o.PreferredLifetime)
	a.validUntil = deadline(now, ValidLifetime(remaining(now, a.validUntil), o.ValidLifetime))
	if a.preferredUntil.IsZero() && !a.validUntil.IsZero() || !a.validUntil.IsZero() && a.preferredUntil.After(a.validUntil) {
		a.preferredUntil = a.validUntil
	}
	return true, note
}

// route handles one RFC 4191 Route Information option.
func (t *Table) route(now, fresh time.Time, src netip.Addr, o *ndp.RouteInformation) (changed bool, note string) {
	p := netip.PrefixFrom(o.Prefix, int(o.PrefixLength)).Masked()
	if !p.IsValid() || p.Bits() == 0 || p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() {
		// ::/0 is the default route, which the router lifetime governs.
		return false, ""
	}
	note = fmt.Sprintf("route %s (%s)", p, lifetime(o.RouteLifetime))
	if p.Bits() < rioMinBits {
		return false, note + fmt.Sprintf(" ignored (less specific than /%d)", rioMinBits)
	}
	if q, ok := t.protectedBy(p); ok {
		return false, note + fmt.Sprintf(" ignored (inside the overlay's %s)", q)
	}
	r, known := t.routes[p]
	switch {
	case o.RouteLifetime == 0:
		if known && r.via == src {
			delete(t.routes, p)
			return true, note
		}
		return false, note
	case known:
		t.routes[p] = &rio{via: src, until: deadline(now, o.RouteLifetime), fresh: fresh}
		return true, note
	}
	room, why := evict(t.routes, maxRoutes, now, func(r *rio) time.Time { return r.fresh }, comparePrefix)
	if !room {
		return false, note + " ignored (cap)"
	}
	t.routes[p] = &rio{via: src, until: deadline(now, o.RouteLifetime), fresh: fresh}
	if why != "" {
		note += " " + why
	}
	return true, note
}

// advInterval is how long what ra gives stays fresh: the router's
// Advertisement Interval (RFC 6275 section 7.3) when it sends one, at
// most maxAdvInterval, else defaultAdvInterval. The option is 8 octets:
// type, length 1, 2 reserved, the interval in milliseconds.
func advInterval(ra *ndp.RouterAdvertisement) time.Duration {
	for _, o := range ra.Options {
		if r, ok := o.(*ndp.RawOption); ok && r.Type == optAdvInterval && len(r.Value) == 6 {
			ms := binary.BigEndian.Uint32(r.Value[2:])
			if ms == 0 {
				break
			}
			return min(time.Duration(ms)*time.Millisecond, maxAdvInterval)
		}
	}
	return defaultAdvInterval
}

// evict makes room for a new entry in m, which holds at most max: it
// reports whether there is room, and when it made some, says which entry
// gave its place. The entry that goes is the stale one (its fresh time
// passed: no RA refreshed it within its router's interval) that was
// refreshed longest ago; cmp orders entries stale since the same moment,
// so that the choice does not depend on map order.
func evict[K comparable, V any](m map[K]V, max int, now time.Time, fresh func(V) time.Time, cmp func(K, K) int) (room bool, why string) {
	if len(m) < max {
		return true, ""
	}
	var victim K
	var since time.Time
	found := false
	for k, v := range m {
		f := fresh(v)
		if f.After(now) {
			continue
		}
		if !found || f.Before(since) || f.Equal(since) && cmp(k, victim) < 0 {
			victim, since, found = k, f, true
		}
	}
	if !found {
		return false, ""
	}
	delete(m, victim)
	return true, fmt.Sprintf("replaces %v (not refreshed in its router's interval, stale for %s)", victim, now.Sub(since).Round(time.Second))
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// nat64 handles one RFC 8781 PREF64 option. The most recently received
// prefix is the one used (section 5); lifetime 0 withdraws it. ndp has
// checked the prefix length code; a prefix that cannot be a NAT64 one
// (link-local, multicast, IPv4-mapped) is ignored.
func (t *Table) nat64(now time.Time, o *ndp.PREF64) bool {
	p := o.Prefix.Masked()
	a := p.Addr()
	if !p.IsValid() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.Is4In6() || a.IsUnspecified() {
		return false
	}
	if o.Lifetime == 0 {
		if p == t.pref64 {
			t.pref64, t.pref64Until = netip.Prefix{}, time.Time{}
			return true
		}
		return false
	}
	t.pref64, t.pref64Until = p, now.Add(o.Lifetime)
	return true
}

// dnsServer handles one RFC 8106 RDNSS address: lifetime 0 removes it.
// Only global unicast addresses are taken: a link-local one would need a
// zone that resolv.conf cannot carry, and loopback, multicast, the
// unspecified and v4-mapped addresses are no server on this link.
func (t *Table) dnsServer(now time.Time, s netip.Addr, lt time.Duration) (bool, error) {
	if err := dnsname.CheckServer6(s); err != nil {
		return false, err
	}
	return refresh(t.dns, s, now, lt, maxDNS), nil
}

// searchDomain handles one RFC 8106 DNSSL domain: lifetime 0 removes it.
// ndp lets any ASCII through (newlines, tabs, escapes): the name must pass
// the shared RFC 1123 check before it can reach resolv.conf.
func (t *Table) searchDomain(now time.Time, d string, lt time.Duration) (bool, error) {
	d, err := dnsname.Normalize(d)
	if err != nil {
		return false, err
	}
	return refresh(t.search, d, now, lt, maxSearch), nil
}

// refresh sets k's deadline from lifetime lt in m (lifetime 0 removes k),
// taking no new key beyond max entries, and reports whether m changed.
func refresh[K comparable](m map[K]time.Time, k K, now time.Time, lt time.Duration, max int) bool {
	_, known := m[k]
	switch {
	case lt == 0:
		if known {
			delete(m, k)
			return true
		}
		return false
	case known || len(m) < max:
		m[k] = deadline(now, lt)
		return true
	}
	return false
}

// Expire drops everything whose lifetime ended by now and reports whether
// anything changed, including an address becoming deprecated.
func (t *Table) Expire(now time.Time) bool {
	changed := false
	gone := func(until time.Time) bool { return !until.IsZero() && !now.Before(until) }
	for p, a := range t.addrs {
		if gone(a.validUntil) {
			delete(t.addrs, p)
			changed = true
		}
	}
	for p, o := range t.onlink {
		if gone(o.until) {
			delete(t.onlink, p)
			changed = true
		}
	}
	for k, r := range t.routers {
		if gone(r.until) {
			delete(t.routers, k)
			changed = true
		}
	}
	for k, r := range t.routes {
		if gone(r.until) {
			delete(t.routes, k)
			changed = true
		}
	}
	for k, until := range t.dns {
		if gone(until) {
			delete(t.dns, k)
			changed = true
		}
	}
	for k, until := range t.search {
		if gone(until) {
			delete(t.search, k)
			changed = true
		}
	}
	if t.pref64.IsValid() && gone(t.pref64Until) {
		t.pref64, t.pref64Until = netip.Prefix{}, time.Time{}
		changed = true
	}
	return changed
}

// Next is the earliest time something in the table expires or becomes
// deprecated after now; the zero time if nothing ever does.
func (t *Table) Next(now time.Time) time.Time {
	var next time.Time
	consider := func(at time.Time) {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for _, a := range t.addrs {
		consider(a.validUntil)
		if a.preferredUntil.After(now) {
			consider(a.preferredUntil)
		}
	}
	for _, o := range t.onlink {
		consider(o.until)
	}
	for _, r := range t.routers {
		consider(r.until)
	}
	for _, r := range t.routes {
		consider(r.until)
	}
	for _, until := range t.dns {
		consider(until)
	}
	for _, until := range t.search {
		consider(until)
	}
	if t.pref64.IsValid() {
		consider(t.pref64Until)
	}
	return next
}

// Addr is a SLAAC address to configure. Lifetimes are remaining durations,
// Infinite for infinity; Preferred 0 means deprecated.
type Addr struct {
	Prefix           netip.Prefix // address/64
	Valid, Preferred time.Duration
}

// Route is a route to configure: on-link when Via is invalid.
type Route struct {
	Dst      netip.Prefix
	Via      netip.Addr
	Metric   int
	Lifetime time.Duration // Infinite for infinity
}

// View is what the table says should be configured at one instant. All
// lists are sorted, so two views compare equal when nothing changed.
type View struct {
	Addrs          []Addr
	OnLink         []Route
	Defaults       []Route // default routes via each router
	Routes         []Route // RFC 4191 routes
	DNS            []netip.Addr
	Search         []string
	MTU            int
	Managed, Other bool
	Router         netip.Addr // source of the last accepted RA
	Received       bool
	PREF64         netip.Prefix // RFC 8781 NAT64 prefix; zero when none
}

// View returns what should be configured at now.
func (t *Table) View(now time.Time) View {
	v := View{MTU: t.mtu, Managed: t.managed, Other: t.other, Router: t.last, Received: t.seenRA, PREF64: t.pref64}
	for _, a := range t.addrs {
		v.Addrs = append(v.Addrs, Addr{Prefix: a.addr, Valid: remaining(now, a.validUntil), Preferred: remaining(now, a.preferredUntil)})
	}
	slices.SortFunc(v.Addrs, func(a, b Addr) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	for p, o := range t.onlink {
		v.OnLink = append(v.OnLink, Route{Dst: p, Metric: 256, Lifetime: remaining(now, o.until)})
	}
	for _, r := range t.routers {
		v.Defaults = append(v.Defaults, Route{Dst: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Via: r.addr, Metric: r.metric, Lifetime: remaining(now, r.until)})
	}
	for p, r := range t.routes {
		v.Routes = append(v.Routes, Route{Dst: p, Via: r.via, Metric: 1024, Lifetime: remaining(now, r.until)})
	}
	sortRoutes(v.OnLink)
	sortRoutes(v.Defaults)
	sortRoutes(v.Routes)
	for s := range t.dns {
		v.DNS = append(v.DNS, s)
	}
	slices.SortFunc(v.DNS, netip.Addr.Compare)
	for d := range t.search {
		v.Search = append(v.Search, d)
	}
	slices.Sort(v.Search)
	return v
}

func sortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		if c := a.Metric - b.Metric; c != 0 {
			return c
		}
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		if c := a.Dst.Bits() - b.Dst.Bits(); c != 0 {
			return c
		}
		return a.Via.Compare(b.Via)
	})
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func lifetime(d time.Duration) string {
	if d >= Infinite {
		return "infinite"
	}
	return fmt.Sprintf("%ds", int64(d/time.Second))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
