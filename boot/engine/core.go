package engine

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

// The engine's decisions — readiness, the uplink election and the merge of
// leases and kernel state into the state document — are pure functions of
// the plain values in this file: what the clients reported, what the
// kernel holds, and the time. The Engine copies these values under its
// mutex, reads the kernel outside it, and calls them; the unit tests call
// them directly (core_test.go), without root.

// linkFacts is one managed link as plain values.
type linkFacts struct {
	name string
	mac  net.HardwareAddr
	// nic is the NIC enslaved to the management bridge when this link is
	// that bridge (name is then the bridge's), "" otherwise.
	nic string
	// toBridge is the management bridge this NIC moves onto once its
	// operstate is up (bridge.go): until then it is managed as itself.
	toBridge string
	ipc      spec.IPConfig   // the first ip= for this link (static address, hostname, MTU)
	ipcs     []spec.IPConfig // all of them: several ip= for one link add up

	carrierAt time.Time // zero until carrier
	raAt      time.Time // first RA
	full6At   time.Time // when IPv6 was first complete (complete6)
	dhcp6Done bool      // DHCPv6 gave up or finished without an address
	renewals4 int       // DHCPv4 leases renewed or rebound

	leases []lease.Report // the link's current leases, in sourceOrder
}

func (l *linkFacts) any(f func(spec.IPConfig) bool) bool {
	return slices.ContainsFunc(l.ipcs, f)
}

func (l *linkFacts) wants4() bool { return l.any(spec.IPConfig.WantsDHCP4) }

func (l *linkFacts) wantsRA() bool {
	return l.any(spec.IPConfig.WantsRA) || l.any(spec.IPConfig.WantsDHCP6)
}

func (l *linkFacts) wantsDHCP6() bool { return l.any(spec.IPConfig.WantsDHCP6) }

// requires4 reports whether the link may not be ready without IPv4:
// ip=dhcp asks for IPv4 alone, a static ip= gives it.
func (l *linkFacts) requires4() bool {
	return l.static() || l.any(func(c spec.IPConfig) bool { return c.Method == spec.MethodDHCP })
}

// static reports whether an ip= gives the link a static address.
func (l *linkFacts) static() bool {
	return l.ipc.Method == spec.MethodStatic && l.ipc.Address.IsValid()
}

// lease returns the link's lease from src, if any.
func (l *linkFacts) lease(src lease.Source) (lease.Report, bool) {
	for _, ls := range l.leases {
		if ls.Source == src {
			return ls, true
		}
	}
	return lease.Report{}, false
}

// view is everything the engine decides on, copied at one instant.
type view struct {
	spec     *spec.Spec
	internet netprobe.Internet // what counts as public
	links    []linkFacts       // sorted by name
	uplink   string
	upReason string
	upFixed  bool // chosen by cmdline or BOOTIF
	cands    []candidate
	phase    state.Phase
	problems []string
	timings  map[string]int64
	modules  *state.Modules
}

func (v *view) link(name string) *linkFacts {
	for i := range v.links {
		if v.links[i].name == name {
			return &v.links[i]
		}
	}
	return nil
}

// ready decides readiness (the table in docs/design.md). Ready means the
// uplink has what it was asked for, and it is never reported early:
//
//   - IPv4 first: the IPv4 lease or static address is applied with its
//     default route; if an RA arrived, the SLAAC address (and the DHCPv6
//     address when M is set) too. A first RA is awaited up to
//     netinit.ra_timeout after carrier.
//   - IPv6 without IPv4: IPv6 is complete (complete6) and IPv4 either was
//     declined by the server (RFC 8925 option 108) or has had
//     netinit.dhcp4_timeout since IPv6 became complete. Not with ip=dhcp or
//     a static IPv4 ip=, which require IPv4.
//
// A lease or RA that comes later upgrades the state.
func ready(v *view, now time.Time) bool {
	l := v.link(v.uplink)
	// An uplink still to move onto the management bridge is not ready:
	// 0-OS's networkd wants the bridge at the hand-off.
	if l == nil || l.carrierAt.IsZero() || l.toBridge != "" {
		return false
	}
	def := false
	for _, ls := range l.leases {
		def = def || ls.HasDefault()
	}
	v4 := true
	if l.wants4() {
		ls, ok := l.lease(lease.SourceDHCP4)
		v4 = ok && ls.Usable()
	}
	if l.static() {
		_, ok := l.lease(lease.SourceStatic)
		v4 = v4 && ok
	}
	v6 := true
	if l.wantsRA() {
		ra, got := l.lease(lease.SourceSLAAC)
		switch {
		case got:
			if ra.Managed || l.wantsDHCP6() {
				d6, ok := l.lease(lease.SourceDHCP6)
				v6 = (ok && d6.Usable()) || l.dhcp6Done
			}
		case l.wants4() || l.static():
			// An IPv4-working link waits a bounded time for a first RA;
			// an RA that comes later upgrades the state.
			v6 = now.Sub(l.carrierAt) >= v.spec.RATimeout
		default:
			v6 = false // IPv6 is all this link has: wait for it
		}
	}
	// With a default route the uplink can reach beyond its subnet; an
	// uplink chosen by cmdline/BOOTIF whose lease has no router is still
	// usable on its subnet.
	if v4 && v6 && (def || v.upFixed) {
		return true
	}
	if v4 || l.requires4() || l.full6At.IsZero() || !complete6(l, v.spec) {
		return false
	}
	d4, _ := l.lease(lease.SourceDHCP4)
	return d4.V6OnlyWait > 0 || now.Sub(l.full6At) >= v.spec.DHCP4Timeout
}

// complete6 reports whether IPv6 alone makes the link usable: an RA
// arrived with a default router, the link has a global address from SLAAC
// or DHCPv6 (the DHCPv6 one awaited when the RA's M flag or ip=dhcp6 asks
// for it, until the client gives up), and a DNS server is known (from the
// RA, DHCPv6 or the command line).
func complete6(l *linkFacts, spec *spec.Spec) bool {
	ra, got := l.lease(lease.SourceSLAAC)
	if !got || !ra.HasDefault() {
		return false
	}
	d6, ok := l.lease(lease.SourceDHCP6)
	if (ra.Managed || l.wantsDHCP6()) && !(ok && d6.Usable()) && !l.dhcp6Done {
		return false
	}
	if !ra.Usable() && !(ok && d6.Usable()) {
		return false
	}
	return len(ra.DNS) > 0 || (ok && len(d6.DNS) > 0) || len(spec.Nameservers()) > 0
}

// usable reports whether any link has an address from any source.
func usable(v *view) bool {
	for _, l := range v.links {
		for _, ls := range l.leases {
			if ls.Usable() {
				return true
			}
		}
	}
	return false
}

// settle is the phase for a readiness decision: ready when ready, else
// degraded when something is usable, else offline.
func settle(v *view, isReady bool) state.Phase {
	switch {
	case isReady:
		return state.PhaseReady
	case usable(v):
		return state.PhaseDegraded
	default:
		return state.PhaseOffline
	}
}

// merge builds the engine's status: the kernel's view of every managed
// link (kern, by link name; a missing link is not in the kernel), labelled
// with the source that configured each address, and what the clients
// reported. v must be a fresh copy (viewLocked): the status keeps its
// problems and timings.
func merge(v *view, kern map[string]kernel.Link, now time.Time) *state.NetworkStatus {
	st := &state.NetworkStatus{
		Phase:        v.phase,
		Uplink:       v.uplink,
		UplinkReason: v.upReason,
		Candidates:   candidatesStatus(v.cands),
		NTPNames:     slices.Clone(v.spec.NTP),
		Problems:     v.problems,
		Timings:      v.timings,
		Modules:      v.modules,
		Updated:      now,
	}
	if up := v.link(v.uplink); up != nil && up.nic != "" {
		st.UplinkNIC, st.UplinkVLAN = up.nic, v.spec.VLANPriv
	}
	if v.uplink != "" && v.link(v.uplink) == nil && v.upReason == "cmdline" {
		st.Problems = append(st.Problems, fmt.Sprintf("netinit.uplink=%s: no such managed link", v.uplink))
	}
	var v6 []netip.Addr
	def6 := false
	st.DNS = slices.Clone(v.spec.Nameservers())
	// The uplink first.
	links := slices.Clone(v.links)
	slices.SortStableFunc(links, func(a, b linkFacts) int {
		switch {
		case a.name == v.uplink:
			return -1
		case b.name == v.uplink:
			return 1
		}
		return 0
	})
	for _, l := range links {
		ls := state.LinkStatus{Name: l.name, MAC: l.mac, Carrier: !l.carrierAt.IsZero()}
		if kl, ok := kern[l.name]; ok {
			ls.MTU = kl.MTU
			ls.Carrier = kl.Carrier
			for _, ka := range kl.Addrs {
				p := ka.Prefix.Addr()
				sa := state.AddrStatus{Prefix: ka.Prefix, Source: sourceOf(p, l.leases), Public: v.internet.Public(p)}
				if ka.ValidLft > 0 && ka.ValidLft < 0xffffffff {
					sa.Valid = time.Duration(ka.ValidLft) * time.Second
				}
				ls.Addrs = append(ls.Addrs, sa)
				if p.Is6() && sa.Source != lease.SourceKernel {
					v6 = append(v6, p)
				}
			}
		}
		ls.DHCP4, ls.RA = "off", "off"
		ls.DHCP4Renewals = l.renewals4
		if l.wants4() {
			ls.DHCP4 = "selecting"
		}
		if l.wantsRA() {
			ls.RA = "soliciting"
			if l.raAt.IsZero() && !l.carrierAt.IsZero() && now.Sub(l.carrierAt) > v.spec.RATimeout {
				ls.RA = "none"
			}
		}
		for _, le := range l.leases {
			switch le.Source {
			case lease.SourceDHCP4:
				ls.DHCP4 = le.Status
				ls.V6OnlyWait = le.V6OnlyWait
			case lease.SourceSLAAC:
				ls.RA = "received"
				if le.PREF64.IsValid() {
					ls.PREF64 = le.PREF64
					if l.name == v.uplink {
						st.NAT64 = le.PREF64
					}
				}
			}
			for _, r := range le.Routes {
				sr := state.RouteStatus{Dst: r.Dst, Via: r.Via, Dev: l.name, Source: string(le.Source)}
				if le.Source == lease.SourceSLAAC {
					sr.Source = "ra"
				}
				st.Routes = append(st.Routes, sr)
				if r.Dst.Bits() == 0 && r.Dst.Addr().Is6() {
					def6 = true
				}
			}
			// Only the uplink speaks for the node (issue 13 item 7):
			// another link's DNS, search domains, NTP servers and
			// hostname are not used.
			if l.name != v.uplink {
				continue
			}
			st.DNS = append(st.DNS, le.DNS...)
			st.Search = append(st.Search, le.Search...)
			st.NTP = append(st.NTP, le.NTP...)
			for _, a := range le.NTP {
				st.NTPLearned = append(st.NTPLearned, state.NTPServer{Addr: a, Source: le.Source, Link: l.name})
			}
			if st.Hostname == "" {
				st.Hostname = le.Hostname
			}
		}
		st.Links = append(st.Links, ls)
	}
	if st.Hostname == "" {
		if l := v.link(v.uplink); l != nil {
			st.Hostname = l.ipc.Hostname
		}
	}
	st.DNS, st.Search, st.NTP = firstOf(st.DNS), firstOf(st.Search), firstOf(st.NTP)
	st.PublicIPv6, st.PublicIPv6Reason = v.internet.IPv6Verdict(v6, def6)
	return st
}

// firstOf keeps the first of equal values, in order (in place).
func firstOf[T comparable](in []T) []T {
	seen := map[T]bool{}
	return slices.DeleteFunc(in, func(v T) bool { dup := seen[v]; seen[v] = true; return dup })
}

// sourceOf labels an address on a link with the lease that configured it.
func sourceOf(a netip.Addr, leases []lease.Report) lease.Source {
	for _, l := range leases {
		for _, la := range l.Addresses {
			if la.Prefix.Addr() == a {
				return l.Source
			}
		}
	}
	if a.IsLinkLocalUnicast() {
		return lease.SourceLinkLocal
	}
	return lease.SourceKernel
}

// sourceOrder is the precedence when merging what several sources gave
// (DNS, search, hostname): static config first, then IPv4, then IPv6.
var sourceOrder = []lease.Source{lease.SourceStatic, lease.SourceDHCP4, lease.SourceSLAAC, lease.SourceDHCP6}
