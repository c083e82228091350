package engine

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

// These are table tests of the pure core: no root, no kernel.

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func ipcs(t *testing.T, line string) []spec.IPConfig {
	t.Helper()
	if line == "" {
		return []spec.IPConfig{{Method: spec.MethodOn}}
	}
	s, probs := cmdline.Parse(line)
	if len(probs) > 0 {
		t.Fatalf("cmdline %q: %v", line, probs)
	}
	return s.IP
}

func parseSpec(t *testing.T, line string) *spec.Spec {
	t.Helper()
	s, probs := cmdline.Parse(line)
	if len(probs) > 0 {
		t.Fatalf("cmdline %q: %v", line, probs)
	}
	return s
}

// Leases as the clients report them.
func dhcp4Lease(link string) lease.Report {
	return lease.Report{Link: link, Source: lease.SourceDHCP4, Status: "bound",
		Addresses: []lease.Addr{{Prefix: pfx("192.0.2.10/24")}},
		Routes:    []lease.Route{{Dst: pfx("0.0.0.0/0"), Via: ip("192.0.2.1")}},
		Routers:   []netip.Addr{ip("192.0.2.1")},
		DNS:       []netip.Addr{ip("192.0.2.53")}, Search: []string{"v4.example"}, NTP: []netip.Addr{ip("192.0.2.123")},
		Hostname: "node4"}
}

// halves is a lease whose option 121 gave 0.0.0.0/1 + 128.0.0.0/1.
func halves(link string) lease.Report {
	l := dhcp4Lease(link)
	l.Routes = []lease.Route{{Dst: pfx("0.0.0.0/1"), Via: ip("192.0.2.1")}, {Dst: pfx("128.0.0.0/1"), Via: ip("192.0.2.1")}}
	return l
}

func dhcp4NoRouter(link string) lease.Report {
	l := dhcp4Lease(link)
	l.Routes, l.Routers = nil, nil
	return l
}

func raLease(link string) lease.Report {
	return lease.Report{Link: link, Source: lease.SourceSLAAC, Status: "received",
		Addresses: []lease.Addr{{Prefix: pfx("2001:db8:1::10/64")}},
		Routes:    []lease.Route{{Dst: pfx("2001:db8:1::/64")}, {Dst: pfx("::/0"), Via: ip("fe80::1")}},
		Routers:   []netip.Addr{ip("fe80::1")},
		DNS:       []netip.Addr{ip("2001:db8:1::53")}, Search: []string{"lab.example"}}
}

func raManaged(link string) lease.Report {
	l := raLease(link)
	l.Addresses, l.Managed = nil, true
	return l
}

func dhcp6Lease(link string) lease.Report {
	return lease.Report{Link: link, Source: lease.SourceDHCP6, Status: "bound",
		Addresses: []lease.Addr{{Prefix: pfx("2001:db8:1::1:10/128")}},
		DNS:       []netip.Addr{ip("2001:db8:1::35")}}
}

// v6Only is a DHCPv4 client honouring option 108 (RFC 8925).
func v6Only(link string) lease.Report {
	return lease.Report{Link: link, Source: lease.SourceDHCP4, Status: "ipv6-only", V6OnlyWait: 1800 * time.Second}
}

func noDNS(l lease.Report) lease.Report { l.DNS = nil; return l }

func noDefault(l lease.Report) lease.Report {
	l.Routes = slices.DeleteFunc(slices.Clone(l.Routes), func(r lease.Route) bool { return r.Dst.Bits() == 0 })
	return l
}

func staticLease(link string) lease.Report {
	return lease.Report{Link: link, Source: lease.SourceStatic, Status: "bound",
		Addresses: []lease.Addr{{Prefix: pfx("192.0.2.9/24")}},
		Routes:    []lease.Route{{Dst: pfx("0.0.0.0/0"), Via: ip("192.0.2.1")}}}
}

// facts is a link that got carrier at t0 with the given ip= and leases.
func facts(t *testing.T, name, ipLine string, leases ...lease.Report) linkFacts {
	c := ipcs(t, ipLine)
	return linkFacts{name: name, mac: net.HardwareAddr{2, 0, 0, 0, 0, byte(len(name))}, ipc: c[0], ipcs: c,
		carrierAt: t0, leases: leases}
}

func TestReady(t *testing.T) {
	type tc struct {
		name    string
		line    string // the whole cmdline (ip= for eth0, netinit.*)
		link    linkFacts
		fixed   bool
		after   time.Duration // now - carrier
		want    bool
		noCarry bool
		full6   bool // IPv6 complete since carrier (full6At = t0)
	}
	cases := func(t *testing.T) []tc {
		return []tc{
			{name: "no leases", link: facts(t, "eth0", ""), after: time.Minute, want: false},
			{name: "no carrier", link: facts(t, "eth0", "", dhcp4Lease("eth0"), raLease("eth0")), noCarry: true, want: false},
			{name: "dual stack", link: facts(t, "eth0", "", dhcp4Lease("eth0"), raLease("eth0")), want: true},
			{name: "v4 lease, RA wait running", link: facts(t, "eth0", "", dhcp4Lease("eth0")), after: time.Second, want: false},
			{name: "v4 lease, RA wait over", link: facts(t, "eth0", "", dhcp4Lease("eth0")), after: 3 * time.Second, want: true},
			{name: "v4 lease, ra_timeout=10s", line: "netinit.ra_timeout=10s", link: facts(t, "eth0", "", dhcp4Lease("eth0")), after: 5 * time.Second, want: false},
			{name: "ip=dhcp lease", line: "ip=dhcp", link: facts(t, "eth0", "ip=dhcp", dhcp4Lease("eth0")), want: true},
			{name: "ip=dhcp no lease", line: "ip=dhcp", link: facts(t, "eth0", "ip=dhcp"), after: time.Minute, want: false},
			{name: "ip=dhcp no router", line: "ip=dhcp", link: facts(t, "eth0", "ip=dhcp", dhcp4NoRouter("eth0")), want: false},
			{name: "ip=dhcp, option 121 halves", line: "ip=dhcp", link: facts(t, "eth0", "ip=dhcp", halves("eth0")), want: true},
			{name: "ip=dhcp no router, uplink fixed", line: "ip=dhcp", link: facts(t, "eth0", "ip=dhcp", dhcp4NoRouter("eth0")), fixed: true, want: true},
			{name: "auto6 RA", line: "ip=eth0:auto6", link: facts(t, "eth0", "ip=eth0:auto6", raLease("eth0")), want: true},
			{name: "auto6 no RA", line: "ip=eth0:auto6", link: facts(t, "eth0", "ip=eth0:auto6"), after: time.Minute, want: false},
			{name: "M=1 waits DHCPv6", line: "ip=eth0:auto6", link: facts(t, "eth0", "ip=eth0:auto6", raManaged("eth0")), want: false},
			{name: "M=1 with DHCPv6", line: "ip=eth0:auto6", link: facts(t, "eth0", "ip=eth0:auto6", raManaged("eth0"), dhcp6Lease("eth0")), want: true},
			{name: "ip=dhcp6 waits DHCPv6", line: "ip=eth0:dhcp6", link: facts(t, "eth0", "ip=eth0:dhcp6", raLease("eth0")), want: false},
			{name: "static", line: "ip=192.0.2.9::192.0.2.1:255.255.255.0::eth0:none", link: facts(t, "eth0", "ip=192.0.2.9::192.0.2.1:255.255.255.0::eth0:none", staticLease("eth0")), want: true},
			// IPv6 without IPv4 (issue 12).
			{name: "v6 only, DHCPv4 grace running", link: facts(t, "eth0", "", raLease("eth0")), full6: true, after: 2 * time.Second, want: false},
			{name: "v6 only, DHCPv4 grace over", link: facts(t, "eth0", "", raLease("eth0")), full6: true, after: 3 * time.Second, want: true},
			{name: "v6 only, dhcp4_timeout=0", line: "netinit.dhcp4_timeout=0", link: facts(t, "eth0", "", raLease("eth0")), full6: true, want: true},
			{name: "v6 only, dhcp4_timeout=20s", line: "netinit.dhcp4_timeout=20s", link: facts(t, "eth0", "", raLease("eth0")), full6: true, after: 10 * time.Second, want: false},
			{name: "v6 only, not yet stamped", link: facts(t, "eth0", "", raLease("eth0")), after: time.Minute, want: false},
			{name: "v6 only, option 108", link: facts(t, "eth0", "", v6Only("eth0"), raLease("eth0")), full6: true, want: true},
			{name: "v6 only, no DNS", link: facts(t, "eth0", "", noDNS(raLease("eth0"))), full6: true, after: time.Minute, want: false},
			{name: "v6 only, static nameserver", line: "nameserver=2001:db8::53", link: facts(t, "eth0", "", noDNS(raLease("eth0"))), full6: true, after: time.Minute, want: true},
			{name: "v6 only, no default route", link: facts(t, "eth0", "", noDefault(raLease("eth0"))), full6: true, after: time.Minute, want: false},
			{name: "v6 only, ip=dhcp requires IPv4", line: "ip=dhcp", link: facts(t, "eth0", "ip=dhcp", raLease("eth0")), full6: true, after: time.Minute, want: false},
			{name: "DHCPv6-only (M=1, no A prefix)", link: facts(t, "eth0", "", raManaged("eth0"), dhcp6Lease("eth0")), full6: true, after: 3 * time.Second, want: true},
			{name: "DHCPv6-only, DHCPv6 pending", link: facts(t, "eth0", "", raManaged("eth0")), full6: true, after: time.Minute, want: false},
			{name: "static not applied", line: "ip=192.0.2.9::192.0.2.1:255.255.255.0::eth0:none", link: facts(t, "eth0", "ip=192.0.2.9::192.0.2.1:255.255.255.0::eth0:none"), want: false},
		}
	}
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			l := c.link
			if c.noCarry {
				l.carrierAt = time.Time{}
			}
			if c.full6 {
				l.full6At = t0
			}
			v := &view{spec: parseSpec(t, c.line), links: []linkFacts{l}, uplink: "eth0", upFixed: c.fixed}
			if got := ready(v, t0.Add(c.after)); got != c.want {
				t.Errorf("ready = %v, want %v", got, c.want)
			}
		})
	}
	t.Run("still to move onto the bridge", func(t *testing.T) {
		l := facts(t, "eth0", "", dhcp4Lease("eth0"), raLease("eth0"))
		l.toBridge = "zos"
		v := &view{spec: parseSpec(t, ""), links: []linkFacts{l}, uplink: "eth0"}
		if ready(v, t0.Add(time.Minute)) {
			t.Error("ready before the uplink is on the management bridge")
		}
	})
	t.Run("no uplink", func(t *testing.T) {
		v := &view{spec: parseSpec(t, ""), links: []linkFacts{facts(t, "eth0", "", dhcp4Lease("eth0"), raLease("eth0"))}}
		if ready(v, t0) {
			t.Error("ready without an uplink")
		}
	})
}

func TestSettle(t *testing.T) {
	for _, c := range []struct {
		name  string
		ready bool
		l     []lease.Report
		want  state.Phase
	}{
		{"ready", true, []lease.Report{dhcp4Lease("eth0")}, state.PhaseReady},
		{"usable", false, []lease.Report{dhcp4NoRouter("eth0")}, state.PhaseDegraded},
		{"nothing", false, nil, state.PhaseOffline},
		{"RA without address", false, []lease.Report{raManaged("eth0")}, state.PhaseOffline},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := &view{spec: parseSpec(t, ""), links: []linkFacts{facts(t, "eth0", "", c.l...)}}
			if got := settle(v, c.ready); got != c.want {
				t.Errorf("settle = %s, want %s", got, c.want)
			}
		})
	}
}

func TestElect(t *testing.T) {
	reach := func(name, addr, gw string) candidate {
		c := candidate{name: name, addr: ip(addr), probed: true, reach: true}
		if g := ip(gw); g.Is4() {
			c.gw4 = g
		} else {
			c.gw6 = g
		}
		return c
	}
	dead := func(name, addr, gw string) candidate {
		c := reach(name, addr, gw)
		c.reach = false
		return c
	}
	for _, c := range []struct {
		name      string
		in        election
		want, why string
		wantFixed bool
	}{
		{"nothing", election{decided: true}, "", "", false},
		{"cmdline over all", election{cmdline: "eth1", bootif: "eth0", asked: []string{"eth0"},
			cands: []candidate{reach("eth0", "192.0.2.10", "192.0.2.1")}}, "eth1", reasonCmdline, true},
		{"cmdline before any candidate", election{cmdline: "eth1"}, "eth1", reasonCmdline, true},
		{"bootif over reachable", election{bootif: "eth2", asked: []string{"eth0", "eth1"}, decided: true,
			cands: []candidate{reach("eth0", "192.0.2.10", "192.0.2.1")}}, "eth2", reasonBootif, true},
		{"pending: no uplink yet", election{asked: []string{"eth0", "eth1"}}, "", "", false},
		{"one candidate, decided at once", election{asked: []string{"eth0"}, decided: true}, "eth0", reasonFirst, false},
		{"reachable beats first", election{asked: []string{"eth0", "eth1"}, decided: true,
			cands: []candidate{dead("eth0", "192.0.2.10", "192.0.2.1"), reach("eth1", "198.51.100.10", "198.51.100.1")}},
			"eth1", reasonReachable, false},
		{"private gateway first", election{asked: []string{"eth0", "eth1"}, decided: true,
			cands: []candidate{reach("eth0", "192.0.2.10", "192.0.2.1"), reach("eth1", "10.1.0.10", "10.1.0.1")}},
			"eth1", reasonReachable, false},
		{"tie on privacy: lowest address", election{asked: []string{"eth0", "eth1"}, decided: true,
			cands: []candidate{reach("eth0", "10.2.0.10", "10.2.0.1"), reach("eth1", "10.1.0.10", "10.1.0.1")}},
			"eth1", reasonReachable, false},
		{"full tie: first asked", election{asked: []string{"eth1", "eth0"}, decided: true,
			cands: []candidate{reach("eth0", "10.1.0.10", "10.1.0.1"), reach("eth1", "10.1.0.10", "10.1.0.1")}},
			"eth1", reasonReachable, false},
		{"IPv4 address before IPv6-only", election{asked: []string{"eth0", "eth1"}, decided: true,
			cands: []candidate{reach("eth0", "2001:db8:1::10", "fe80::1"), reach("eth1", "198.51.100.10", "198.51.100.1")}},
			"eth1", reasonReachable, false},
		{"an address before none", election{asked: []string{"eth0", "eth1"}, decided: true,
			cands: []candidate{{name: "eth0", gw6: ip("fe80::1"), reach: true, probed: true}, reach("eth1", "2001:db8:1::10", "fe80::1")}},
			"eth1", reasonReachable, false},
		{"all unreachable: first asked", election{asked: []string{"eth1", "eth0"}, decided: true,
			cands: []candidate{dead("eth0", "10.1.0.10", "10.1.0.1"), dead("eth1", "192.0.2.10", "192.0.2.1")}},
			"eth1", reasonFirst, false},
		{"no targets (nothing probed): first asked", election{asked: []string{"eth1", "eth0"}, decided: true,
			cands: []candidate{{name: "eth0", evidence: []string{"no probe targets"}}, {name: "eth1"}}},
			"eth1", reasonFirst, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why, fixed := elect(c.in)
			if got != c.want || why != c.why || fixed != c.wantFixed {
				t.Errorf("elect = %q %q %v, want %q %q %v", got, why, fixed, c.want, c.why, c.wantFixed)
			}
		})
	}
}

func TestReelect(t *testing.T) {
	asked := []string{"eth0", "eth1", "eth2"}
	up := candidate{name: "eth0", addr: ip("192.0.2.10"), gw4: ip("192.0.2.1")}
	other := candidate{name: "eth1", addr: ip("198.51.100.10"), gw4: ip("198.51.100.1"), probed: true, reach: true}
	silent := candidate{name: "eth2", addr: ip("203.0.113.10"), gw4: ip("203.0.113.1"), probed: true}
	upReach := up
	upReach.reach = true
	for _, c := range []struct {
		name       string
		bad, moved time.Duration // before now; 0: never
		cands      []candidate
		want       string
		ok         bool
	}{
		{"healthy uplink stays", 0, 0, []candidate{up, other}, "", false},
		{"unhealthy within the grace period", 10 * time.Second, 0, []candidate{up, other}, "", false},
		{"unhealthy past the grace period", 31 * time.Second, 0, []candidate{up, other}, "eth1", true},
		{"exactly the grace period", reelectGrace, 0, []candidate{up, other}, "eth1", true},
		{"moved 30 s ago: hysteresis", 40 * time.Second, 30 * time.Second, []candidate{up, other}, "", false},
		{"moved 61 s ago", 40 * time.Second, 61 * time.Second, []candidate{up, other}, "eth1", true},
		{"no other reachable candidate", time.Hour, 0, []candidate{up, silent}, "", false},
		{"the uplink itself is never the answer", time.Hour, 0, []candidate{upReach, silent}, "", false},
		{"best of the others", time.Hour, 0, []candidate{up, other, {name: "eth2", addr: ip("10.0.0.5"), gw4: ip("10.0.0.1"), reach: true}}, "eth2", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var bad, moved time.Time
			if c.bad > 0 {
				bad = t0.Add(-c.bad)
			}
			if c.moved > 0 {
				moved = t0.Add(-c.moved)
			}
			got, ok := reelect(t0, "eth0", bad, moved, c.cands, asked)
			if got != c.want || ok != c.ok {
				t.Errorf("reelect = %q %v, want %q %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// TestMerge: the status from the leases and the kernel, in a lab's
// Internet (its documentation ranges public; TestMergeInternet: not in

// TestMergeInternet: in the Internet's own rules (a production binary),
// a documentation address is no public address and gives no public IPv6.
func TestMergeInternet(t *testing.T) {
	kern := map[string]kernel.Link{"eth0": {Carrier: true, Addrs: []kernel.Addr{{Prefix: pfx("2001:db8:1::10/64")}}}}
	v := &view{spec: parseSpec(t, ""), uplink: "eth0", links: []linkFacts{facts(t, "eth0", "", raLease("eth0"))}}
	st := merge(v, kern, t0)
	if st.PublicIPv6 || st.Links[0].Addrs[0].Public {
		t.Errorf("public_ipv6 %v, address public %v: documentation counted as public", st.PublicIPv6, st.Links[0].Addrs[0].Public)
	}
	v.internet = netprobe.Internet{Documentation: true}
	if st := merge(v, kern, t0); !st.PublicIPv6 {
		t.Errorf("in a lab's Internet: public_ipv6 false (%s)", st.PublicIPv6Reason)
	}
}

// the real one).
func TestMerge(t *testing.T) {
	kern := map[string]kernel.Link{
		"eth0": {MTU: 1500, Carrier: true, Addrs: []kernel.Addr{
			{Prefix: pfx("192.0.2.10/24"), ValidLft: 3600},
			{Prefix: pfx("2001:db8:1::10/64"), ValidLft: 0xffffffff},
			{Prefix: pfx("fe80::1/64")},
			{Prefix: pfx("198.51.100.7/24")},
		}},
		"eth1": {MTU: 9000, Carrier: true, Addrs: []kernel.Addr{{Prefix: pfx("192.0.2.10/24")}}},
	}
	eth1 := facts(t, "eth1", "", dhcp4Lease("eth1"))
	eth1.leases[0].DNS = []netip.Addr{ip("198.51.100.53")}
	eth1.leases[0].Hostname = "other"
	// The lab's Internet: its documentation ranges count as public.
	v := &view{spec: parseSpec(t, "nameserver=192.0.2.250 netinit.ntp=pool.example"), uplink: "eth0", upReason: "first-default-route",
		internet: netprobe.Internet{Documentation: true},
		phase:    state.PhaseReady, problems: []string{"p1"}, timings: map[string]int64{"ready": 12},
		links: []linkFacts{facts(t, "eth0", "", dhcp4Lease("eth0"), raLease("eth0")), eth1, facts(t, "eth2", "")}}
	v.links[2].carrierAt = time.Time{}
	ns := merge(v, kern, t0)
	st := state.Assemble(ns, nil)

	if st.Schema != state.Schema || st.Phase != state.PhaseReady || st.Uplink != "eth0" || st.UplinkReason != "first-default-route" {
		t.Errorf("header %+v", st)
	}
	if len(st.Interfaces) != 3 || st.Interfaces[0].Name != "eth0" {
		t.Fatalf("interfaces %+v, want the uplink first", st.Interfaces)
	}
	srcs := map[string]lease.Source{}
	for _, a := range st.Interfaces[0].Addresses {
		srcs[a.CIDR] = a.Source
	}
	want := map[string]lease.Source{"192.0.2.10/24": lease.SourceDHCP4, "2001:db8:1::10/64": lease.SourceSLAAC,
		"fe80::1/64": lease.SourceLinkLocal, "198.51.100.7/24": lease.SourceKernel}
	for k, s := range want {
		if srcs[k] != s {
			t.Errorf("address %s source %q, want %q", k, srcs[k], s)
		}
	}
	if a := st.Interfaces[0].Addresses[0]; a.ValidLifetimeS != 3600 {
		t.Errorf("valid lifetime %d, want 3600", a.ValidLifetimeS)
	}
	if a := st.Interfaces[0].Addresses[1]; a.ValidLifetimeS != 0 || !a.Public {
		t.Errorf("infinite lifetime %d public %v", a.ValidLifetimeS, a.Public)
	}
	if i := st.Interfaces[0]; i.DHCP4 != "bound" || i.RA != "received" || i.MTU != 1500 {
		t.Errorf("eth0 %+v", i)
	}
	if i := st.Interfaces[2]; i.Carrier || i.MTU != 0 || i.DHCP4 != "selecting" || i.RA != "soliciting" {
		t.Errorf("eth2 (not in the kernel) %+v", i)
	}
	// Only the uplink speaks for the node: eth1's DNS and hostname are not used.
	if !slices.Equal(st.DNS, []string{"192.0.2.250", "192.0.2.53", "2001:db8:1::53"}) {
		t.Errorf("dns %v", st.DNS)
	}
	if !slices.Equal(st.Search, []string{"v4.example", "lab.example"}) {
		t.Errorf("search %v", st.Search)
	}
	if !slices.Equal(st.NTP, []string{"192.0.2.123", "pool.example"}) {
		t.Errorf("ntp %v", st.NTP)
	}
	// The clock weighs each server by the lease that named it (issue 29).
	if want := []state.NTPServer{{Addr: ip("192.0.2.123"), Source: lease.SourceDHCP4, Link: "eth0"}}; !slices.Equal(ns.NTPLearned, want) {
		t.Errorf("ntp learned %+v, want %+v", ns.NTPLearned, want)
	}
	if st.Hostname != "node4" {
		t.Errorf("hostname %q, want the uplink's", st.Hostname)
	}
	if !st.PublicIPv6 {
		t.Errorf("public_ipv6 false: %s", st.PublicIPv6Reason)
	}
	if len(st.Routes) != 4 || st.Routes[1].Source != "ra" || st.Routes[0].Via != "192.0.2.1" {
		t.Errorf("routes %+v", st.Routes)
	}
	if st.TimingsMS["ready"] != 12 || !slices.Equal(st.Problems, []string{"p1"}) {
		t.Errorf("timings %v problems %v", st.TimingsMS, st.Problems)
	}
}

func TestMergeMissingUplink(t *testing.T) {
	v := &view{spec: parseSpec(t, ""), uplink: "eth9", upReason: "cmdline", links: []linkFacts{facts(t, "eth0", "")}}
	st := state.Assemble(merge(v, nil, t0), nil)
	if len(st.Problems) != 1 || st.Problems[0] != "netinit.uplink=eth9: no such managed link" {
		t.Errorf("problems %q", st.Problems)
	}
	if st.DNS == nil || st.Routes == nil || st.Interfaces[0].Addresses == nil {
		t.Errorf("nil lists in %+v (the schema wants arrays)", st)
	}
}

// TestEngineFakeKernel runs the engine's own bookkeeping (reports, uplink
// choice, readiness, status) against the fake kernel.
func TestEngineFakeKernel(t *testing.T) {
	k := kerneltest.New()
	k.Set("eth0", kernel.Link{MTU: 1500, Carrier: true, Addrs: []kernel.Addr{{Prefix: pfx("192.0.2.10/24")}}})
	e := New(Config{Spec: parseSpec(t, "ip=dhcp"), Kernel: k})
	l := &link{linkFacts: facts(t, "eth0", "ip=dhcp"), renew4: make(chan struct{}, 1), renew6: make(chan struct{}, 1)}
	e.links["eth0"] = l
	if e.ready() {
		t.Fatal("ready before any lease")
	}
	if !e.uplinkFor("eth0", true) || e.uplinkFor("eth1", true) {
		t.Fatal("the first link asking must become the uplink, and only it")
	}
	e.report(dhcp4Lease("eth0"))
	if !e.ready() {
		t.Fatal("not ready with the lease")
	}
	st := state.Assemble(e.Status(), nil)
	if st.Uplink != "eth0" || len(st.Interfaces) != 1 || st.Interfaces[0].Addresses[0].Source != lease.SourceDHCP4 {
		t.Errorf("state %+v", st)
	}
	if _, ok := st.TimingsMS["lease4"]; !ok {
		t.Errorf("no lease4 timing: %v", st.TimingsMS)
	}
	// A withdrawn lease removes it.
	e.report(lease.Report{Link: "eth0", Source: lease.SourceDHCP4, Status: "expired"})
	if e.ready() {
		t.Error("ready after the lease expired")
	}
}

func TestComplete6(t *testing.T) {
	sp := parseSpec(t, "")
	for _, c := range []struct {
		name string
		l    linkFacts
		want bool
	}{
		{"SLAAC, router, RDNSS", facts(t, "eth0", "", raLease("eth0")), true},
		{"no RA", facts(t, "eth0", "", dhcp4Lease("eth0")), false},
		{"M=1 waits DHCPv6", facts(t, "eth0", "", raManaged("eth0")), false},
		{"M=1 with DHCPv6", facts(t, "eth0", "", raManaged("eth0"), dhcp6Lease("eth0")), true},
		{"DHCPv6 DNS only", facts(t, "eth0", "", noDNS(raManaged("eth0")), dhcp6Lease("eth0")), true},
		{"M=1, DHCPv6 gave up, SLAAC address", func() linkFacts {
			ra := raLease("eth0")
			ra.Managed = true
			f := facts(t, "eth0", "", ra)
			f.dhcp6Done = true
			return f
		}(), true},
		{"M=1, DHCPv6 gave up, no address", func() linkFacts {
			f := facts(t, "eth0", "", raManaged("eth0"))
			f.dhcp6Done = true
			return f
		}(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := complete6(&c.l, sp); got != c.want {
				t.Errorf("complete6 = %v, want %v", got, c.want)
			}
		})
	}
}

func TestMergeIPv6OnlyPreferredAndPREF64(t *testing.T) {
	ra := raLease("eth0")
	ra.PREF64 = pfx("64:ff9b::/96")
	ra1 := raLease("eth1")
	ra1.PREF64 = pfx("2001:db8:64::/96")
	v := &view{spec: parseSpec(t, ""), uplink: "eth0", links: []linkFacts{
		facts(t, "eth0", "", v6Only("eth0"), ra), facts(t, "eth1", "", ra1)}}
	st := state.Assemble(merge(v, nil, t0), nil)
	if st.NAT64Prefix != "64:ff9b::/96" {
		t.Errorf("nat64_prefix %q, want the uplink's", st.NAT64Prefix)
	}
	i0, i1 := st.Interfaces[0], st.Interfaces[1]
	if i0.DHCP4 != "ipv6-only" || i0.IPv6OnlyPreferredS != 1800 || i0.PREF64 != "64:ff9b::/96" {
		t.Errorf("eth0 %+v", i0)
	}
	if i1.PREF64 != "2001:db8:64::/96" || i1.IPv6OnlyPreferredS != 0 {
		t.Errorf("eth1 %+v", i1)
	}
}

// TestEngineKeepsIPv6OnlyStatus: a DHCPv4 report without any address but
// with option 108 honoured is kept (it ends the IPv4 wait), and shows in
// the state.
func TestEngineKeepsIPv6OnlyStatus(t *testing.T) {
	k := kerneltest.New()
	k.Set("eth0", kernel.Link{MTU: 1500, Carrier: true})
	e := New(Config{Spec: parseSpec(t, ""), Kernel: k})
	e.links["eth0"] = &link{linkFacts: facts(t, "eth0", "")}
	e.uplinkFor("eth0", true)
	e.report(raLease("eth0"))
	if e.ready() {
		t.Fatal("ready at once: the DHCPv4 grace period was skipped")
	}
	e.report(v6Only("eth0"))
	if !e.ready() {
		t.Fatal("not ready with IPv6 complete and option 108")
	}
	if st := state.Assemble(e.Status(), nil); st.Interfaces[0].DHCP4 != "ipv6-only" || st.Interfaces[0].IPv6OnlyPreferredS != 1800 {
		t.Errorf("eth0 %+v", st.Interfaces[0])
	}
}

// TestWatchUplink drives the daemon's re-election with the fake kernel and
// a fake probe: the uplink loses its carrier, moves after the grace period
// to the candidate that reaches the targets, and does not move back within
// a minute (hysteresis).
func TestWatchUplink(t *testing.T) {
	k := kerneltest.New()
	k.Set("eth0", kernel.Link{Carrier: true})
	k.Set("eth1", kernel.Link{Carrier: true})
	e := New(Config{Spec: parseSpec(t, "ip=dhcp"), Kernel: k})
	reachable := map[string]bool{"eth0": true, "eth1": true}
	var probes []string
	e.probe = func(_ context.Context, c candidate, _ []string) (bool, []string) {
		probes = append(probes, c.name)
		return reachable[c.name], []string{"fake"}
	}
	for _, n := range []string{"eth0", "eth1"} {
		e.links[n] = &link{linkFacts: facts(t, n, "ip=dhcp")}
	}
	e.ballot.decided = true // as runElection ends, without probes
	e.uplinkFor("eth0", true)
	e.uplinkFor("eth1", true)
	e.report(dhcp4Lease("eth0"))
	e.report(dhcp4NoRouter("eth1"))
	e.mu.Lock()
	l1 := e.leases[leaseKey{"eth1", lease.SourceDHCP4}]
	l1.Routers = []netip.Addr{ip("198.51.100.1")}
	e.leases[leaseKey{"eth1", lease.SourceDHCP4}] = l1
	e.mu.Unlock()
	uplink := func() (string, string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.uplink, e.upReason
	}
	if u, why := uplink(); u != "eth0" || why != reasonFirst {
		t.Fatalf("uplink %s (%s)", u, why)
	}
	ctx := context.Background()

	e.watchUplink(ctx, t0) // healthy: probes the uplink once
	if u, _ := uplink(); u != "eth0" || !slices.Equal(probes, []string{"eth0"}) {
		t.Fatalf("healthy uplink: uplink %s, probes %v", u, probes)
	}
	k.Set("eth0", kernel.Link{Carrier: false})
	e.watchUplink(ctx, t0.Add(10*time.Second))
	if u, _ := uplink(); u != "eth0" {
		t.Fatalf("moved at once, within the grace period")
	}
	e.watchUplink(ctx, t0.Add(10*time.Second+reelectGrace))
	if u, why := uplink(); u != "eth1" || why != reasonReelected {
		t.Fatalf("uplink %s (%s) after the grace period, want eth1 (reelected)", u, why)
	}
	if st := state.Assemble(e.Status(), nil); !slices.ContainsFunc(st.Problems, func(p string) bool {
		return strings.Contains(p, "uplink moved from eth0 to eth1") && strings.Contains(p, "no carrier")
	}) {
		t.Errorf("problems %q do not say why the uplink moved", st.Problems)
	}
	// eth1 fails in turn and eth0 is back: not before a minute since the move.
	k.Set("eth0", kernel.Link{Carrier: true})
	k.Set("eth1", kernel.Link{Carrier: false})
	e.report(dhcp4Lease("eth1"))
	e.watchUplink(ctx, t0.Add(45*time.Second))
	e.watchUplink(ctx, t0.Add(80*time.Second))
	if u, _ := uplink(); u != "eth1" {
		t.Fatal("moved back 40 s after the move: no hysteresis")
	}
	e.watchUplink(ctx, t0.Add(105*time.Second))
	if u, _ := uplink(); u != "eth0" {
		t.Fatalf("uplink %s, want back on eth0 a minute after the move", u)
	}
	// A fixed uplink never moves.
	f := New(Config{Spec: parseSpec(t, "netinit.uplink=eth0"), Kernel: k})
	f.links["eth0"] = &link{linkFacts: facts(t, "eth0", "")}
	f.probe = e.probe
	f.watchUplink(ctx, t0.Add(time.Hour))
	if f.uplink != "eth0" || f.upReason != reasonCmdline {
		t.Errorf("fixed uplink changed: %s (%s)", f.uplink, f.upReason)
	}
	if st := state.Assemble(e.Status(), nil); slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "internal error") }) {
		t.Errorf("problems %q", st.Problems)
	}
}

// TestPreviousUplinkKept: the daemon keeps the uplink PID 1 elected (with
// its candidates) instead of electing again; a fixed reason is not carried
// over (the spec decides those).
func TestPreviousUplinkKept(t *testing.T) {
	k := kerneltest.New()
	prev := &Previous{Uplink: "eth1", UplinkReason: reasonReachable, Candidates: []PreviousCandidate{
		{Name: "eth0", Probed: true, Evidence: []string{"tcp x: i/o timeout"}},
		{Name: "eth1", Probed: true, Reachable: true, Evidence: []string{"tcp x: connected"}}}}
	e := New(Config{Spec: parseSpec(t, "ip=dhcp"), Kernel: k, Previous: prev})
	for _, n := range []string{"eth0", "eth1"} {
		e.links[n] = &link{linkFacts: facts(t, n, "ip=dhcp")}
	}
	if e.uplinkFor("eth0", true) || !e.uplinkFor("eth1", true) {
		t.Fatal("the kept uplink eth1 is not the only one allowed default routes")
	}
	if e.electing {
		t.Error("an election started although the uplink was kept")
	}
	st := state.Assemble(e.Status(), nil)
	if st.Uplink != "eth1" || st.UplinkReason != reasonReachable || len(st.Candidates) != 2 || !st.Candidates[1].Reachable {
		t.Errorf("uplink %q (%s) candidates %+v", st.Uplink, st.UplinkReason, st.Candidates)
	}
	f := New(Config{Spec: parseSpec(t, ""), Kernel: k, Previous: &Previous{Uplink: "eth0", UplinkReason: reasonCmdline}})
	if f.uplink != "" {
		t.Errorf("a cmdline uplink carried over without the cmdline: %q", f.uplink)
	}
}

// TestManageLinkUp: a link that is down is set up (with netinit.mtu=
// first); a link that is already up is never bounced (a PXE NIC would
// restart the switch's spanning-tree timer); carrier is recorded.
func TestManageLinkUp(t *testing.T) {
	for _, c := range []struct {
		name string
		up   bool
		want []string
	}{
		{"down", false, []string{"mtu eth0 9000", "up eth0"}},
		{"already up", true, []string{"mtu eth0 9000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := kerneltest.New()
			k.Set("eth0", kernel.Link{MTU: 1500, Up: c.up, Carrier: true})
			e := New(Config{Spec: parseSpec(t, "ip=eth0:off netinit.mtu=9000"), Kernel: k})
			l := &link{linkFacts: facts(t, "eth0", "ip=eth0:off")}
			l.carrierAt = time.Time{}
			e.links["eth0"] = l
			e.manage(context.Background(), l)
			if got := k.Ops(); !slices.Equal(got, c.want) {
				t.Errorf("kernel ops %q, want %q", got, c.want)
			}
			if _, ok := e.Status().Timings["carrier"]; !ok || l.carrierAt.IsZero() {
				t.Error("carrier not recorded")
			}
		})
	}
}
