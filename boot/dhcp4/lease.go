package dhcp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/route"
)

// binding is a DHCPACK (or DHCPOFFER) that passed validation, converted to
// what the client installs and reports. Everything in it is sane: the
// parser refuses the whole message when the address, mask, server, lease
// time or routing options are garbage, and drops (with a log line)
// individual informational items (DNS, NTP, names, MTU) that are.
type binding struct {
	Addr      netip.Prefix // leased address with the subnet's prefix length
	Broadcast netip.Addr   // invalid for /31 and /32
	Server    netip.Addr   // option 54
	Routers   []netip.Addr // option 3, all of them, in order
	// Static are the option 121 routes (RFC 3442); when present they
	// replace the router option for routing.
	Static   []route.Route
	DNS      []netip.Addr
	NTP      []netip.Addr
	Search   []string
	Hostname string
	MTU      int // option 26, 0 if absent or invalid

	// Lease is the lease time (option 51); 0 means infinite.
	Lease, T1, T2 time.Duration
}

const infinite = 0xffffffff // RFC 2131 section 3.3: lease time 0xffffffff is infinity

// MTU floors for option 26: IPv4's minimum datagram size every host must
// accept (RFC 791, RFC 1122 section 3.3.3), and IPv6's minimum link MTU
// (RFC 8200 section 5) on a link that also runs IPv6.
const (
	minMTU     = 576
	minMTUIPv6 = 1280
)

// parseLease validates m (an OFFER or an ACK) and converts it. It returns
// an error naming what is wrong when the lease must be refused; logf gets a
// line for every informational item it drops.
func parseLease(m *dhcpv4.DHCPv4, logf console.Logf) (*binding, error) {
	if m == nil {
		return nil, errors.New("no message")
	}
	b := &binding{}

	ip, ok := netip.AddrFromSlice(m.YourIPAddr.To4())
	if !ok {
		return nil, fmt.Errorf("offered address %v is not IPv4", m.YourIPAddr)
	}
	if err := checkUnicast(ip); err != nil {
		return nil, fmt.Errorf("offered address %s %w", ip, err)
	}
	if ip.IsLinkLocalUnicast() {
		// RFC 3927 section 1.9: 169.254/16 is for link-local
		// autoconfiguration, never to be handed out by DHCP.
		return nil, fmt.Errorf("offered address %s is link-local", ip)
	}

	bitsLen, err := parseMask(m.Options.Get(dhcpv4.OptionSubnetMask), ip, logf)
	if err != nil {
		return nil, err
	}
	b.Addr = netip.PrefixFrom(ip, bitsLen)
	subnet := b.Addr.Masked()
	if bitsLen <= 30 {
		// An address equal to the network or broadcast address of
		// its own subnet is unusable (RFC 1122 section 3.2.1.3);
		// /31 (RFC 3021) and /32 have neither.
		if ip == subnet.Addr() {
			return nil, fmt.Errorf("offered address %s is the network address of %s", ip, subnet)
		}
		bcast := lastAddr(subnet)
		if ip == bcast {
			return nil, fmt.Errorf("offered address %s is the broadcast address of %s", ip, subnet)
		}
		b.Broadcast = bcast
		if v := m.Options.Get(dhcpv4.OptionBroadcastAddress); v != nil {
			if a, ok := addr4(v); ok && subnet.Contains(a) && a != ip {
				b.Broadcast = a
			} else {
				logf("ignoring broadcast address option %x", v)
			}
		}
	}

	// Server identifier: RFC 2131 section 4.3.1 table 3 makes it a MUST
	// in OFFER and ACK; renewals are unicast to it.
	srv, err := oneAddr(m.Options.Get(dhcpv4.OptionServerIdentifier), "server identifier (option 54)")
	if err != nil {
		return nil, err
	}
	if err := checkUnicast(srv); err != nil {
		return nil, fmt.Errorf("server identifier %s %w", srv, err)
	}
	b.Server = srv

	if err := parseTimes(m, b, logf); err != nil {
		return nil, err
	}

	// Routers (option 3, RFC 2132 section 3.5). A router we cannot use
	// is a refusal, not a silent drop: the server is broken and half a
	// routing table is worse than none.
	if m.Options.Has(dhcpv4.OptionRouter) {
		rs, err := addrList(m.Options.Get(dhcpv4.OptionRouter), "router option 3")
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if err := checkRouter(r, b.Addr); err != nil {
				return nil, fmt.Errorf("router %s %w", r, err)
			}
		}
		b.Routers = rs
	}
	// Classless static routes (option 121, RFC 3442).
	if m.Options.Has(dhcpv4.OptionClasslessStaticRoute) {
		rs, err := parseStatic(m.Options.Get(dhcpv4.OptionClasslessStaticRoute), b.Addr)
		if err != nil {
			return nil, err
		}
		b.Static = rs
	}

	b.DNS = usableAddrs(m.Options.Get(dhcpv4.OptionDomainNameServer), "DNS server (option 6)", logf)
	b.NTP = usableAddrs(m.Options.Get(dhcpv4.OptionNTPServers), "NTP server (option 42)", logf)

	if v := m.Options.Get(dhcpv4.OptionInterfaceMTU); v != nil {
		// RFC 2132 section 5.1 allows down to 68, but every IPv4 host
		// must take 576-octet datagrams (RFC 791, RFC 1122 section
		// 3.3.3): a smaller MTU from an unauthenticated server only
		// fragments or blackholes the node's traffic. IPv6's 1280 floor
		// is applied where the link is known to run IPv6 (applyMTU).
		if len(v) != 2 {
			logf("ignoring MTU option 26 of %d bytes", len(v))
		} else if mtu := int(binary.BigEndian.Uint16(v)); mtu < minMTU {
			logf("ignoring MTU %d (below the minimum of %d)", mtu, minMTU)
		} else {
			b.MTU = mtu
		}
	}

	if v := m.Options.Get(dhcpv4.OptionHostName); v != nil {
		h := strings.TrimRight(string(v), "\x00")
		if err := dnsname.CheckHost(h); err != nil {
			logf("ignoring hostname %q: %v", h, err)
		} else {
			b.Hostname = strings.TrimSuffix(h, ".")
		}
	}

	b.Search = searchList(m, logf)
	return b, nil
}

// parseMask returns the prefix length from option 1. Without the option
// it falls back to the classful mask of ip (RFC 2131 leaves the client to
// pick a default; classful is what dhclient and systemd-networkd use).
func parseMask(v []byte, ip netip.Addr, logf console.Logf) (int, error) {
	if v == nil {
		n := 8
		switch a := ip.As4(); {
		case a[0] >= 192:
			n = 24
		case a[0] >= 128:
			n = 16
		}
		logf("no subnet mask offered, using the classful /%d", n)
		return n, nil
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("subnet mask option 1 has %d bytes, want 4", len(v))
	}
	m := binary.BigEndian.Uint32(v)
	ones := bits.LeadingZeros32(^m)
	if m<<ones != 0 {
		return 0, fmt.Errorf("subnet mask %d.%d.%d.%d is not contiguous", v[0], v[1], v[2], v[3])
	}
	if ones == 0 {
		return 0, errors.New("subnet mask is /0")
	}
	// /31 (RFC 3021) and /32 are accepted: point-to-point and cloud
	// networks hand out /32 with a router outside the subnet, reached
	// through an on-link host route (see plan).
	return ones, nil
}

func parseTimes(m *dhcpv4.DHCPv4, b *binding, logf console.Logf) error {
	secs := func(code dhcpv4.OptionCode, name string) (uint32, bool, error) {
		v := m.Options.Get(code)
		if v == nil {
			return 0, false, nil
		}
		if len(v) != 4 {
			return 0, false, fmt.Errorf("%s has %d bytes, want 4", name, len(v))
		}
		return binary.BigEndian.Uint32(v), true, nil
	}
	// RFC 2131 section 4.3.1 table 3: lease time is a MUST in OFFER/ACK.
	lt, ok, err := secs(dhcpv4.OptionIPAddressLeaseTime, "lease time option 51")
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("no lease time (option 51)")
	}
	if lt == 0 {
		return errors.New("lease time is 0")
	}
	if lt == infinite {
		return nil // b.Lease, T1, T2 zero: never renew
	}
	b.Lease = time.Duration(lt) * time.Second
	// RFC 2131 section 4.4.5: T1 defaults to 0.5 and T2 to 0.875 times
	// the lease; values that are not 0 < T1 < T2 < lease are ignored.
	t1, ok1, err1 := secs(dhcpv4.OptionRenewTimeValue, "renewal time option 58")
	t2, ok2, err2 := secs(dhcpv4.OptionRebindingTimeValue, "rebinding time option 59")
	if err1 != nil || err2 != nil {
		logf("ignoring T1/T2: %v", errors.Join(err1, err2))
		ok1, ok2 = false, false
	}
	// T2 as lease - lease/8: lease*7 overflows a Duration for leases
	// above about 42 years (the fuzzer sent one of 46 years).
	defaults := func() { b.T1, b.T2 = b.Lease/2, b.Lease-b.Lease/8 }
	defaults()
	if ok2 {
		b.T2 = time.Duration(t2) * time.Second
	}
	if ok1 {
		b.T1 = time.Duration(t1) * time.Second
	}
	if b.T1 <= 0 || b.T1 >= b.T2 || b.T2 >= b.Lease {
		if ok1 || ok2 {
			logf("ignoring T1 %v / T2 %v for a lease of %v", b.T1, b.T2, b.Lease)
		}
		defaults()
	}
	if b.T1 <= 0 { // a 1 s lease
		defaults()
	}
	return nil
}

// parseStatic decodes option 121 (RFC 3442 section 3): a list of
// <width><significant destination octets><router> entries.
func parseStatic(v []byte, leased netip.Prefix) ([]route.Route, error) {
	// RFC 3442 section 3: the minimum length is 5 (a default route).
	if len(v) < 5 {
		return nil, fmt.Errorf("classless static routes option 121 has %d bytes, want at least 5", len(v))
	}
	var rs []route.Route
	for len(v) > 0 {
		w := int(v[0])
		if w > 32 {
			return nil, fmt.Errorf("option 121: destination width %d", w)
		}
		n := (w + 7) / 8
		if len(v) < 1+n+4 {
			return nil, fmt.Errorf("option 121: truncated entry (%d bytes left)", len(v))
		}
		var d [4]byte
		copy(d[:], v[1:1+n])
		gw := netip.AddrFrom4([4]byte(v[1+n : 1+n+4]))
		v = v[1+n+4:]
		// Bits beyond the width must be zero; be lenient and mask.
		dst := netip.PrefixFrom(netip.AddrFrom4(d), w).Masked()
		if dst.Bits() >= 8 && dst.Addr().IsLoopback() {
			return nil, fmt.Errorf("option 121: route to %s is loopback", dst)
		}
		r := route.Route{Dst: dst}
		// A router of 0.0.0.0 means the destination is on-link (the
		// reading dhclient, systemd-networkd and dhcpcd share).
		if !gw.IsUnspecified() {
			if err := checkRouter(gw, leased); err != nil {
				return nil, fmt.Errorf("option 121: router %s for %s %w", gw, dst, err)
			}
			r.Via = gw
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// plan is the list of routes to install for b, in installation order
// (boot/route decides which of them go into the kernel: only the uplink's
// default routes, say). RFC 3442 section 3.5: when option 121 is present
// the router option is ignored for routing. Otherwise the first router
// (option 3) is the default gateway; the others are only reported. A
// router outside the leased subnet gets an on-link host route first, or
// the kernel would refuse the route as unreachable. Every route has the
// leased address as its preferred source: the kernel removes it with the
// address.
func plan(b *binding) []route.Route {
	var rs []route.Route
	if b.Static != nil {
		rs = append(rs, b.Static...)
	} else if len(b.Routers) > 0 {
		rs = append(rs, route.Route{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: b.Routers[0]})
	}
	subnet := b.Addr.Masked()
	var out []route.Route
	add := func(r route.Route) {
		r.Src = b.Addr.Addr()
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	for _, r := range rs {
		if r.Dst == subnet && !r.Via.IsValid() {
			continue // the kernel's prefix route already covers it
		}
		if r.Via.IsValid() && !subnet.Contains(r.Via) {
			add(route.Route{Dst: netip.PrefixFrom(r.Via, 32)})
		}
		add(r)
	}
	return out
}

// checkUnicast reports why a is not a usable IPv4 unicast address for a
// host, server or router.
func checkUnicast(a netip.Addr) error {
	if !a.Is4() {
		return errors.New("is not IPv4")
	}
	a4 := a.As4()
	switch {
	case a.IsUnspecified():
		return errors.New("is unspecified")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("is the limited broadcast address")
	case a.IsMulticast():
		return errors.New("is multicast")
	case a.IsLoopback():
		return errors.New("is loopback")
	case a4[0] == 0:
		return errors.New(`is in 0.0.0.0/8 ("this network", RFC 1122 section 3.2.1.3)`)
	case a4[0] >= 240:
		return errors.New("is in the reserved 240.0.0.0/4")
	}
	return nil
}

// checkRouter is checkUnicast plus the things a router of our subnet can't
// be: our own address or the subnet's broadcast address.
func checkRouter(r netip.Addr, leased netip.Prefix) error {
	if err := checkUnicast(r); err != nil {
		return err
	}
	if r == leased.Addr() {
		return errors.New("is our own address")
	}
	if leased.Bits() <= 30 && r == lastAddr(leased.Masked()) {
		return errors.New("is the subnet broadcast address")
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

func addr4(v []byte) (netip.Addr, bool) {
	if len(v) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(v)), true
}

func oneAddr(v []byte, name string) (netip.Addr, error) {
	if v == nil {
		return netip.Addr{}, fmt.Errorf("no %s", name)
	}
	a, ok := addr4(v)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%s has %d bytes, want 4", name, len(v))
	}
	return a, nil
}

// addrList decodes a list of IPv4 addresses (RFC 2132: length a non-zero
// multiple of 4).
func addrList(v []byte, name string) ([]netip.Addr, error) {
	if len(v) == 0 || len(v)%4 != 0 {
		return nil, fmt.Errorf("%s has %d bytes, not a multiple of 4", name, len(v))
	}
	as := make([]netip.Addr, 0, len(v)/4)
	for i := 0; i < len(v); i += 4 {
		as = append(as, netip.AddrFrom4([4]byte(v[i:i+4])))
	}
	return as, nil
}

// usableAddrs is addrList for informational options: garbage is dropped
// with a log line, the rest kept.
func usableAddrs(v []byte, name string, logf console.Logf) []netip.Addr {
	if v == nil {
		return nil
	}
	as, err := addrList(v, name)
	if err != nil {
		logf("ignoring %v", err)
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if err := checkUnicast(a); err != nil {
			logf("ignoring %s %s %v", name, a, err)
			continue
		}
		out = append(out, a)
	}
	return out
}

// searchList is option 119 (RFC 3397), or option 15 when 119 is absent.
// Names that are not valid RFC 1123 names are dropped with a log line.
func searchList(m *dhcpv4.DHCPv4, logf console.Logf) []string {
	var names []string
	if v := m.Options.Get(dhcpv4.OptionDNSDomainSearchList); v != nil {
		l, err := rfc1035label.FromBytes(v)
		if err != nil {
			logf("ignoring domain search option 119: %v", err)
		} else {
			names = l.Labels
		}
	} else if v := m.Options.Get(dhcpv4.OptionDomainName); v != nil {
		// Some servers put several names, blank separated, in
		// option 15; accept that.
		names = strings.Fields(strings.TrimRight(string(v), "\x00"))
	}
	return dnsname.List(names, 0, func(n string, err error) {
		logf("ignoring search domain %q: %v", n, err)
	})
}

// minV6OnlyWait is MIN_V6ONLY_WAIT (RFC 8925 section 3.4).
const minV6OnlyWait = 300 * time.Second

// v6OnlyWait reads option 108 (RFC 8925 section 3.1) from an OFFER: the
// V6ONLY_WAIT, at least MIN_V6ONLY_WAIT (section 3.2), and whether the
// option is there. An option whose length is not 4 is ignored (logged).
func v6OnlyWait(m *dhcpv4.DHCPv4, logf console.Logf) (time.Duration, bool) {
	b := m.Options.Get(dhcpv4.OptionIPv6OnlyPreferred)
	if b == nil {
		return 0, false
	}
	if len(b) != 4 {
		logf("option 108 (IPv6-only preferred) of %d bytes ignored: %q", len(b), b)
		return 0, false
	}
	return max(time.Duration(binary.BigEndian.Uint32(b))*time.Second, minV6OnlyWait), true
}
