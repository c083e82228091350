package engine

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

func (e *Engine) ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readyLocked()
}

// readyLocked decides readiness. Ready means the uplink has its addresses
// usable (the IPv4 lease or static address applied; the SLAAC/DHCPv6
// address when an RA arrived), its default route and DNS in place. It is
// never reported early: a link that wants IPv4 is not ready without its
// lease, and an RA is awaited up to netinit.ra_timeout after carrier (the
// whole deadline when IPv6 is all the link has).
func (e *Engine) readyLocked() bool {
	l := e.links[e.uplink]
	if l == nil || l.carrierAt.IsZero() {
		return false
	}
	leases := map[state.Source]lease.Lease{}
	for _, ls := range e.leasesOf(l.name) {
		leases[ls.Source] = ls
	}
	def := false
	for _, ls := range leases {
		def = def || ls.HasDefault()
	}
	v4 := true
	if l.wants4() {
		ls, ok := leases[state.SourceDHCP4]
		v4 = ok && ls.Usable()
	}
	if l.static() {
		_, ok := leases[state.SourceStatic]
		v4 = v4 && ok
	}
	v6 := true
	if l.wantsRA() {
		ra, got := leases[state.SourceSLAAC]
		switch {
		case got:
			if ra.Managed || l.wantsDHCP6() {
				d6, ok := leases[state.SourceDHCP6]
				v6 = (ok && d6.Usable()) || l.dhcp6Done
			}
		case l.wants4() || l.static():
			// An IPv4-working link waits a bounded time for a first RA;
			// an RA that comes later upgrades the state.
			v6 = time.Since(l.carrierAt) >= e.spec.RATimeout
		default:
			v6 = false // IPv6 is all this link has: wait for it
		}
	}
	// With a default route the uplink can reach beyond its subnet; an
	// uplink chosen by cmdline/BOOTIF whose lease has no router is still
	// usable on its subnet.
	return v4 && v6 && (def || e.upFixed)
}

func (e *Engine) anyUsableLocked() bool {
	for _, l := range e.leases {
		if l.Usable() {
			return true
		}
	}
	return false
}

// snapshotLocked builds the state document: the kernel's view of every
// managed link, labelled with the source that configured each address.
func (e *Engine) snapshotLocked() *state.State {
	st := &state.State{
		Schema:       state.Schema,
		Phase:        e.phase,
		Uplink:       e.uplink,
		UplinkReason: e.upReason,
		Interfaces:   []state.Interface{},
		Routes:       []state.Route{},
		DNS:          []string{},
		Search:       []string{},
		NTP:          []string{},
		Problems:     slices.Clone(e.problems),
		TimingsMS:    map[string]int64{},
		Modules:      e.cfg.Modules,
		UpdatedAt:    time.Now().UTC().Truncate(time.Millisecond),
		PID:          os.Getpid(),
	}
	if st.Problems == nil {
		st.Problems = []string{}
	}
	for k, v := range e.timings {
		st.TimingsMS[k] = v
	}
	if e.uplink != "" && e.links[e.uplink] == nil && e.upReason == "cmdline" {
		st.Problems = append(st.Problems, fmt.Sprintf("netinit.uplink=%s: no such managed link", e.uplink))
	}
	var v6 []netip.Addr
	def6 := false
	var dns []netip.Addr
	var search []string
	var ntp []netip.Addr
	dns = append(dns, e.spec.Nameservers...)
	// The uplink's sources come first, then the other links'.
	links := e.sortedLinks()
	slices.SortStableFunc(links, func(a, b *link) int {
		switch {
		case a.name == e.uplink:
			return -1
		case b.name == e.uplink:
			return 1
		}
		return 0
	})
	for _, l := range links {
		leases := e.leasesOf(l.name)
		ifc := state.Interface{Name: l.name, MAC: l.mac.String(), Carrier: !l.carrierAt.IsZero(), Addresses: []state.Address{}}
		if nl, err := netlink.LinkByName(l.name); err == nil {
			ifc.MTU = nl.Attrs().MTU
			ifc.Carrier = carrier(l.name)
			addrs, _ := netlink.AddrList(nl, netlink.FAMILY_ALL)
			for _, a := range addrs {
				p, ok := netip.AddrFromSlice(a.IP)
				if !ok {
					continue
				}
				p = p.Unmap()
				ones, _ := a.Mask.Size()
				pfx := netip.PrefixFrom(p, ones)
				sa := state.Address{CIDR: pfx.String(), Source: sourceOf(p, leases), Public: netprobe.Public(p)}
				if a.ValidLft > 0 && a.ValidLft < 0xffffffff {
					sa.ValidLifetimeS = int64(a.ValidLft)
				}
				ifc.Addresses = append(ifc.Addresses, sa)
				if p.Is6() && sa.Source != state.SourceKernel {
					v6 = append(v6, p)
				}
			}
		}
		ifc.DHCP4, ifc.RA = "off", "off"
		ifc.DHCP4Renewals = l.renewals4
		if l.wants4() {
			ifc.DHCP4 = "selecting"
		}
		if l.wantsRA() {
			ifc.RA = "soliciting"
			if l.raAt.IsZero() && !l.carrierAt.IsZero() && time.Since(l.carrierAt) > e.spec.RATimeout {
				ifc.RA = "none"
			}
		}
		for _, ls := range leases {
			switch ls.Source {
			case state.SourceDHCP4:
				ifc.DHCP4 = ls.Status
			case state.SourceSLAAC:
				ifc.RA = "received"
			}
			for _, r := range ls.Routes {
				sr := state.Route{Dst: r.Dst.String(), Dev: l.name, Source: string(ls.Source)}
				if r.Via.IsValid() {
					sr.Via = r.Via.String()
				}
				if ls.Source == state.SourceSLAAC {
					sr.Source = "ra"
				}
				st.Routes = append(st.Routes, sr)
				if r.Dst.Bits() == 0 && r.Dst.Addr().Is6() {
					def6 = true
				}
			}
			dns = append(dns, ls.DNS...)
			search = append(search, ls.Search...)
			ntp = append(ntp, ls.NTP...)
			if st.Hostname == "" && l.name == e.uplink {
				st.Hostname = ls.Hostname
			}
		}
		st.Interfaces = append(st.Interfaces, ifc)
	}
	if st.Hostname == "" {
		if l := e.links[e.uplink]; l != nil {
			st.Hostname = l.ipc.Hostname
		}
	}
	st.DNS = dedupe(addrStrings(dns))
	st.Search = dedupe(search)
	st.NTP = dedupe(append(addrStrings(ntp), e.spec.NTP...))
	st.PublicIPv6, st.PublicIPv6Reason = netprobe.IPv6Verdict(v6, def6)
	if e.cfg.Decorate != nil {
		e.cfg.Decorate(st)
	}
	return st
}

// sourceOf labels an address on a link with the lease that configured it.
func sourceOf(a netip.Addr, leases []lease.Lease) state.Source {
	for _, l := range leases {
		for _, la := range l.Addresses {
			if la.Prefix.Addr() == a {
				return l.Source
			}
		}
	}
	if a.IsLinkLocalUnicast() {
		return state.SourceLinkLocal
	}
	return state.SourceKernel
}

func dedupe(in []string) []string {
	out := []string{}
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// writeResolv writes resolv.conf from the merged DNS of all families (one
// family never clobbers the other). It is only rewritten when its content
// changes, atomically. Every line is checked again here, whatever the
// clients validated: a name server that is not an address or a search
// domain that is not an RFC 1123 name would let the network add lines
// (issue 13).
func (e *Engine) writeResolv(st *state.State) error {
	var b strings.Builder
	var dropped []string
	b.WriteString("# written by netinit; see /run/netinit/state.json\n")
	n := 0
	for _, ns := range st.DNS {
		if _, err := netip.ParseAddr(ns); err != nil || strings.ContainsFunc(ns, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			dropped = append(dropped, fmt.Sprintf("name server %q: not an address", ns))
			continue
		}
		if n++; n > 3 { // glibc's MAXNS; the state keeps them all
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	var search []string
	for _, d := range st.Search {
		if err := dnsname.Check(d); err != nil {
			dropped = append(dropped, fmt.Sprintf("search domain %q: %v", d, err))
			continue
		}
		search = append(search, d)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if b.String() == e.resolv || n == 0 && e.resolv == "" {
		return nil
	}
	for _, d := range dropped {
		e.logf("resolv.conf: left out %s", d)
	}
	if err := os.MkdirAll(filepath.Dir(e.cfg.ResolvConf), 0o755); err != nil {
		return err
	}
	if err := state.WriteAtomic(e.cfg.ResolvConf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	e.resolv = b.String()
	return nil
}

func setHostname(name string) error {
	return unix.Sethostname([]byte(name))
}
