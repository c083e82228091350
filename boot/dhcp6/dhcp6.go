// Package dhcp6 is the DHCPv6 client (RFC 8415) that the engine starts on a
// link when a Router Advertisement sets the M flag (stateful: an IA_NA
// address, Solicit/Advertise/Request/Reply, then Renew at T1 and Rebind at
// T2) or only the O flag (stateless: Information-request for DNS servers
// and search domains). It reports a lease.Report with source "dhcp6".
//
// Messages are built with github.com/insomniacslk/dhcp/dhcpv6 and sent with
// its nclient6 transport; the retransmission timing of RFC 8415 section 15
// is done here, since nclient6 only knows a fixed timeout.
package dhcp6

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/lease"
)

// Options configure Run.
type Options struct {
	Link string
	// Managed (the RA's M flag) asks for an address; Other (O) only for
	// configuration (DNS, search). Managed wins when both are set.
	Managed, Other bool
	Report         lease.Reporter
	Logf           console.Logf
	// Kick, when it receives, makes the client act now instead of at its
	// next timer (the control socket's "renew"): a bound stateful client
	// sends its Renew (RFC 8415 section 18.2.4) before T1, a stateless
	// one its Information-request before the refresh time (section
	// 18.2.6). Same name and meaning in dhcp4 and ra. DHCPv6 installs no
	// routes (its addresses are /128 without a prefix route: on-link-ness
	// is the RA's), so there is no Routes or Reapply.
	Kick <-chan struct{}
	// Oneshot returns after the first address (M) or configuration (O)
	// has been applied and reported, or when ctx ends.
	Oneshot bool
	// Protected are the WireGuard tunnel subnets: no address is taken
	// inside them, nor inside Yggdrasil's 200::/7 (lease.InOverlay, the
	// RA path's rule).
	Protected []netip.Prefix
}

// DUID is the client's DUID-LL (RFC 8415 section 11.4) from the link's
// MAC address. Unlike the library's default DUID-LLT it contains no time,
// so a node keeps its identity, and its lease, across reboots.
func DUID(mac net.HardwareAddr) *dhcpv6.DUIDLL {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: append(net.HardwareAddr(nil), mac...)}
}

// IAID is the IA_NA identifier: the last four octets of the MAC, stable
// across reboots (RFC 8415 section 12: "consistent across restarts").
func IAID(mac net.HardwareAddr) [4]byte {
	var id [4]byte
	if len(mac) >= 4 {
		copy(id[:], mac[len(mac)-4:])
	}
	return id
}

// Retransmission parameters, RFC 8415 section 7.6.
type params struct {
	name     string
	irt, mrt time.Duration
	mrc      int // 0: no limit
}

var (
	solicitParams = params{"solicit", 1 * time.Second, 3600 * time.Second, 0}
	requestParams = params{"request", 1 * time.Second, 30 * time.Second, 10}
	renewParams   = params{"renew", 10 * time.Second, 600 * time.Second, 0}
	rebindParams  = params{"rebind", 10 * time.Second, 600 * time.Second, 0}
	infoParams    = params{"information-request", 1 * time.Second, 3600 * time.Second, 0}
)

// nextRT is RFC 8415 section 15: RT = IRT + RAND*IRT for the first
// transmission (prev 0), then RT = 2*RTprev + RAND*RTprev, capped as
// RT = MRT + RAND*MRT. rnd is RAND, uniform in [-0.1, 0.1]; for the first
// Solicit it must be strictly positive (section 18.2.1), which the caller
// passes.
func nextRT(prev time.Duration, p params, rnd float64) time.Duration {
	var rt time.Duration
	if prev == 0 {
		rt = p.irt + time.Duration(rnd*float64(p.irt))
	} else {
		rt = 2*prev + time.Duration(rnd*float64(prev))
	}
	if p.mrt > 0 && rt > p.mrt {
		rt = p.mrt + time.Duration(rnd*float64(p.mrt))
	}
	return rt
}

// rand01 is RAND of RFC 8415 section 15: uniform in [-0.1, 0.1].
func rand01() float64 { return rand.Float64()*0.2 - 0.1 }

// Binding is what a Reply gave: the IA_NA address and the configuration.
type Binding struct {
	Addr             netip.Addr // invalid for an Information-request reply
	Valid, Preferred time.Duration
	T1, T2           time.Duration
	DNS              []netip.Addr
	Search           []string
	NTP              []netip.Addr
	Refresh          time.Duration // information refresh time (O only)
	ServerID         dhcpv6.DUID
	// Dropped says, one item each, what of the reply was not taken
	// (names quoted), for the log.
	Dropped []string
}

// Caps on what is taken from one Reply.
const (
	maxDNS    = 8
	maxSearch = 8
	maxNTP    = 4
)

// Information refresh limits, RFC 8415 sections 7.6 and 21.23.
const (
	irtDefault = 86400 * time.Second
	irtMinimum = 600 * time.Second
)

// infinity is the all-ones 32-bit lifetime (RFC 8415 section 7.7).
const infinity = addr.Forever

var (
	errNoAddrs = errors.New("no address offered")
	errStatus  = errors.New("server status")
)

// statusErr returns an error for a non-success status code option.
func statusErr(sc *dhcpv6.OptStatusCode) error {
	if sc == nil || sc.StatusCode == iana.StatusSuccess {
		return nil
	}
	return fmt.Errorf("%w %s: %q", errStatus, sc.StatusCode, sc.StatusMessage)
}

// servers is the server addresses of ips that dnsname.CheckServer6
// accepts, without duplicates, at most limit; each refused one is noted in
// b.Dropped as what.
func (b *Binding) servers(what string, ips []net.IP, limit int) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		if err := dnsname.CheckServer6(a); err != nil {
			b.Dropped = append(b.Dropped, fmt.Sprintf("%s %s: %v", what, a, err))
		} else if len(out) < limit && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// ParseReply extracts the binding for our IA_NA (iaid) from an Advertise
// or Reply. With managed false only the configuration is taken. An
// address inside an overlay (lease.InOverlay: Yggdrasil's 200::/7, the
// tunnel subnets protected) is refused: installed, its local route would
// blackhole that overlay destination (issue 29).
func ParseReply(m *dhcpv6.Message, iaid [4]byte, managed bool, protected []netip.Prefix) (Binding, error) {
	var b Binding
	if err := statusErr(m.Options.Status()); err != nil {
		return b, err
	}
	b.ServerID = m.Options.ServerID()
	// DNS servers (option 23) and search list (option 24, RFC 3646) go
	// to resolv.conf: global unicast servers and RFC 1123 names only.
	b.DNS = b.servers("dns server", m.Options.DNS(), maxDNS)
	if l := m.Options.DomainSearchList(); l != nil {
		b.Search = dnsname.List(l.Labels, maxSearch, func(d string, err error) {
			b.Dropped = append(b.Dropped, fmt.Sprintf("search domain %q: %v", d, err))
		})
	}
	// NTP servers (RFC 5908 §4, server address suboption) are held to
	// the rule for name servers: the daemon's clock loop queries them.
	b.NTP = b.servers("ntp server", m.Options.NTPServers(), maxNTP)
	if !managed {
		b.Refresh = m.Options.InformationRefreshTime(irtDefault)
		if b.Refresh < irtMinimum {
			b.Refresh = irtMinimum
		}
		return b, nil
	}
	var ia *dhcpv6.OptIANA
	for _, o := range m.Options.IANA() {
		if o.IaId == iaid {
			ia = o
			break
		}
	}
	if ia == nil {
		return b, errNoAddrs
	}
	if err := statusErr(ia.Options.Status()); err != nil {
		return b, err
	}
	// RFC 8415 section 21.6: an address with preferred > valid is
	// discarded; one with valid lifetime 0 is being withdrawn.
	for _, a := range ia.Options.Addresses() {
		ip, ok := netip.AddrFromSlice(a.IPv6Addr)
		if !ok || !ip.Is6() || !ip.IsGlobalUnicast() || a.ValidLifetime == 0 || a.PreferredLifetime > a.ValidLifetime {
			continue
		}
		if statusErr(a.Options.Status()) != nil {
			continue
		}
		if q, in := lease.InOverlay(netip.PrefixFrom(ip, 128), protected); in {
			b.Dropped = append(b.Dropped, fmt.Sprintf("address %s: inside the overlay's %s", ip, q))
			continue
		}
		b.Addr, b.Valid, b.Preferred = ip, a.ValidLifetime, a.PreferredLifetime
		break
	}
	if !b.Addr.IsValid() {
		if len(b.Dropped) > 0 {
			return b, fmt.Errorf("%w (%s)", errNoAddrs, strings.Join(b.Dropped, "; "))
		}
		return b, errNoAddrs
	}
	b.T1, b.T2 = renewTimes(ia.T1, ia.T2, b.Preferred, b.Valid)
	return b, nil
}

// Floors of T1 and T2 (a server's T1 and T2 below these are raised, as
// far as the lifetimes allow). RFC 8415 sets none; without them a server
// sending T1 = T2 = 1 s, or a deprecated address (preferred lifetime 0,
// hence T1 = T2 = 0), makes the client renew back to back (issue 13).
const (
	minT1 = 60 * time.Second
	minT2 = 96 * time.Second // minT1 in the 0.5 : 0.8 ratio of section 18.2.4
)

// renewTimes applies RFC 8415 section 21.4: T1 or T2 0 means the client
// chooses, 0.5 and 0.8 times the preferred lifetime (section 18.2.4); a
// T1 above T2 is fixed to that choice too. A deprecated address
// (preferred 0) is renewed on its valid lifetime instead. T1 and T2 are
// then raised to minT1 and minT2, or to the client's own choice where the
// lifetime is shorter than that, so a lease never renews sooner than it
// needs to and never back to back.
func renewTimes(t1, t2, preferred, valid time.Duration) (time.Duration, time.Duration) {
	base := preferred
	if base == 0 {
		base = valid
	}
	if base >= infinity {
		if t1 == 0 || t1 >= infinity {
			return infinity, infinity
		}
		t1 = max(t1, minT1)
		if t2 == 0 || t2 < t1 {
			return t1, infinity
		}
		return t1, max(t2, minT2)
	}
	d1, d2 := base/2, base*8/10
	if t1 == 0 || t2 == 0 || t1 > t2 {
		t1, t2 = d1, d2
	}
	t1 = max(t1, min(minT1, d1), time.Second)
	t2 = max(t2, min(minT2, d2), t1)
	return t1, t2
}

// Report turns a binding into the report to the engine.
func (b Binding) Report(link, status string, server netip.Addr, now time.Time) lease.Report {
	l := lease.Report{
		Link:    link,
		Source:  lease.SourceDHCP6,
		Status:  status,
		DNS:     append([]netip.Addr(nil), b.DNS...),
		Search:  append([]string(nil), b.Search...),
		NTP:     append([]netip.Addr(nil), b.NTP...),
		Server:  server,
		Updated: now,
	}
	if b.Addr.IsValid() {
		l.Addresses = []lease.Addr{{Prefix: netip.PrefixFrom(b.Addr, 128), Valid: addr.Finite(b.Valid), Preferred: addr.Finite(b.Preferred)}}
		if b.Preferred == 0 {
			l.Addresses[0].Preferred = -1 // deprecated, as in boot/ra
		}
	}
	return l
}
