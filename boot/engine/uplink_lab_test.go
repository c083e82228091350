package engine_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// TestUplinkElection (issue 11): two NICs both get a DHCP lease with a
// router. eth0's lease comes first (electionUp), but its LAN is a dead end
// (and it pushes option 121 0.0.0.0/1 + 128.0.0.0/1, 9.0.0.0/8 and its
// own DNS); eth1's router forwards to a target, a TCP listener in a
// namespace beyond it. eth1 is elected by proven reachability; the only
// default route is through its gateway, eth0's wide routes and DNS are not
// used (so the first link to ask was held back until the election), and
// the target is reachable. A route into public space shorter than /16 is
// the uplink's alone (issue 29 item 2): eth1's 203.0.0.0/8, held back
// while the election ran, is installed once eth1 is the uplink; eth0's
// 9.0.0.0/8 never is.
//
//	c:eth0 ── a0 (192.0.2.1, dead end)
//	c:eth1 ── b0 (198.51.100.1/25) router b1 (198.51.100.129/25) ── t0 (198.51.100.130, :80)
func TestUplinkElection(t *testing.T) {
	t.Parallel()
	c, _, st, out := electionUp(t, "el", "")
	requireUplink(t, st, "eth1", "reachable")
	if len(st.Candidates) != 2 {
		t.Fatalf("candidates %+v, want eth0 and eth1", st.Candidates)
	}
	for _, cd := range st.Candidates {
		wantReach := cd.Name == "eth1"
		if !cd.Probed || cd.Reachable != wantReach || len(cd.Evidence) == 0 {
			t.Errorf("candidate %+v, want probed, reachable=%v, with evidence", cd, wantReach)
		}
	}
	if !strings.Contains(out, "eth0: dhcp4 lease") || strings.Index(out, "eth0: dhcp4 lease") > strings.Index(out, "eth1: dhcp4 lease") {
		t.Errorf("eth0's lease did not come first: the lab proves nothing\n%s", out)
	}
	// The kernel: exactly one default route, through eth1's gateway; none
	// of eth0's wide option-121 routes.
	h := c.Handle()
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var defaults []string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			defaults = append(defaults, r.Gw.String())
		}
		if ones, _ := maskOf(r.Dst); r.Dst != nil && ones < 8 && !r.Dst.IP.IsUnspecified() {
			t.Errorf("wide route %s from the non-uplink installed", r.Dst)
		}
		if r.Dst != nil && r.Dst.String() == "128.0.0.0/1" {
			t.Errorf("option 121 128.0.0.0/1 of the non-uplink installed")
		}
	}
	if !slices.Equal(defaults, []string{"198.51.100.1"}) {
		t.Errorf("kernel default routes via %v, want only 198.51.100.1", defaults)
	}
	var wide []string
	for _, r := range routes {
		if ones, _ := maskOf(r.Dst); r.Dst != nil && ones == 8 {
			wide = append(wide, r.Dst.String()+" via "+r.Gw.String())
		}
	}
	if !slices.Equal(wide, []string{"203.0.0.0/8 via 198.51.100.1"}) {
		t.Errorf("kernel /8 routes %v, want only the uplink's 203.0.0.0/8 via 198.51.100.1", wide)
	}
	if !slices.Equal(st.DNS, []string{"198.51.100.53"}) {
		t.Errorf("dns %v, want only the uplink's", st.DNS)
	}
	// The target is reachable from the node.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if o, err := c.Exec(ctx, "iperf3", "-c", "198.51.100.130", "-p", "80", "-t", "1"); err != nil {
		t.Errorf("target not reachable after the election: %v\n%s", err, o)
	}
}

// electionUp runs `netinit up` with ip=dhcp, the probe target and extra
// on the command line in TestUplinkElection's lab, ready; it returns the
// client namespace, eth0's dead-end DHCP server, the state and the output.
func electionUp(t *testing.T, tag, extra string) (*lab.NS, *lab.Proc, *state.State, string) {
	t.Helper()
	c, b, dead := newElectionLab(t, tag)
	p := &pair{cli: c, dir: t.TempDir()}
	run := p.start(t, "--cmdline", strings.TrimSpace("ip=dhcp netinit.probe.targets=198.51.100.130:80 "+extra),
		"--timeout", "30s", "eth0", "eth1")
	// eth0's lease comes first by construction, whatever the load: eth1
	// gets its carrier (b0 up, as a NIC whose autonegotiation ends late)
	// only once eth0's client has logged its lease, which it does after
	// asking for the default route (the election has begun). eth1's lease
	// then needs only its DHCP exchange to land within the election
	// window. (A reply delay on eth1's server raced eth0's client start.)
	if !lab.Eventually(20*time.Second, func() bool { return strings.Contains(run.out.String(), "eth0: dhcp4 lease") }) {
		t.Fatalf("no lease on eth0 within 20 s:\n%s", run.out.String())
	}
	b.MustExec("ip", "link", "set", "b0", "up")
	code, st, out := run.wait(t)
	requireReady(t, code, st)
	return c, dead, st, out
}

// newElectionLab builds TestUplinkElection's lab (the namespaces are
// named from tag) and returns the client namespace (eth0 and eth1 down),
// eth1's router namespace (b0 down: no carrier on eth1 until it is set
// up) and the dnsmasq of eth0's dead-end LAN.
func newElectionLab(t *testing.T, tag string) (*lab.NS, *lab.NS, *lab.Proc) {
	lab.Require(t, "ip", "dnsmasq", "iperf3")
	lab.GuardResolvConf(t)
	netinitBin(t)
	c, a, b, tg := lab.NewNS(t, tag+"c"), lab.NewNS(t, tag+"a"), lab.NewNS(t, tag+"b"), lab.NewNS(t, tag+"t")
	lab.Veth(t, a, "a0", c, "eth0")
	lab.Veth(t, b, "b0", c, "eth1")
	lab.Veth(t, b, "b1", tg, "t0")
	a.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "a0")
	b.MustExec("ip", "addr", "add", "198.51.100.1/25", "dev", "b0")
	b.MustExec("ip", "addr", "add", "198.51.100.129/25", "dev", "b1")
	b.MustExec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	tg.MustExec("ip", "addr", "add", "198.51.100.130/25", "dev", "t0")
	tg.MustExec("ip", "route", "add", "default", "via", "198.51.100.129")
	tg.Start("iperf3", "-s", "-p", "80", "-B", "198.51.100.130")
	for _, l := range []string{"eth0", "eth1"} {
		c.MustExec("ip", "link", "set", l, "down")
	}
	dead := lab.Dnsmasq(t, a, "a0", "--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h", "--no-ping",
		"--dhcp-option=option:router,192.0.2.1", "--dhcp-option=option:dns-server,192.0.2.53",
		"--dhcp-option=121,0.0.0.0/1,192.0.2.1,128.0.0.0/1,192.0.2.1,9.0.0.0/8,192.0.2.1")
	lab.Dnsmasq(t, b, "b0", "--dhcp-range=198.51.100.10,198.51.100.100,255.255.255.128,1h", "--no-ping",
		"--dhcp-option=option:router,198.51.100.1", "--dhcp-option=option:dns-server,198.51.100.53",
		"--dhcp-option=121,0.0.0.0/0,198.51.100.1,203.0.0.0/8,198.51.100.1")
	b.MustExec("ip", "link", "set", "b0", "down")
	return c, b, dead
}

func maskOf(n *net.IPNet) (int, int) {
	if n == nil {
		return 0, 0
	}
	return n.Mask.Size()
}

// TestUplinkElectionIPv6: the same election on IPv6 alone: both links get
// an RA with a default router (link-local gateways); eth0's router is a
// dead end, eth1's forwards to the target. Whichever advertises first,
// eth1 is elected and holds the only IPv6 default route.
func TestUplinkElectionIPv6(t *testing.T) {
	t.Parallel()
	lab.Require(t, "ip", "radvd", "iperf3")
	lab.GuardResolvConf(t)
	netinitBin(t)
	c, a, b, tg := lab.NewNS(t, "e6c"), lab.NewNS(t, "e6a"), lab.NewNS(t, "e6b"), lab.NewNS(t, "e6t")
	for _, ns := range []*lab.NS{a, b, tg} {
		ns.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	lab.Veth(t, a, "a0", c, "eth0")
	lab.Veth(t, b, "b0", c, "eth1")
	lab.Veth(t, b, "b1", tg, "t0")
	a.MustExec("ip", "-6", "addr", "add", "2001:db8:a::1/64", "dev", "a0", "nodad")
	b.MustExec("ip", "-6", "addr", "add", "2001:db8:b::1/64", "dev", "b0", "nodad")
	b.MustExec("ip", "-6", "addr", "add", "2001:db8:c::1/64", "dev", "b1", "nodad")
	tg.MustExec("ip", "-6", "addr", "add", "2001:db8:c::2/64", "dev", "t0", "nodad")
	tg.MustExec("ip", "-6", "route", "add", "default", "via", "2001:db8:c::1")
	tg.Start("iperf3", "-s", "-p", "80", "-B", "2001:db8:c::2")
	for _, l := range []string{"eth0", "eth1"} {
		c.MustExec("ip", "link", "set", l, "down")
	}
	conf := func(ifc, prefix string) string {
		return strings.NewReplacer("s0", ifc, "2001:db8:1::/64", prefix, "RDNSS 2001:db8:1::53 { };", "").Replace(radvdConf)
	}
	lab.Radvd(t, a, conf("a0", "2001:db8:a::/64"))
	lab.Radvd(t, b, conf("b0", "2001:db8:b::/64"))
	p := &pair{cli: c, dir: t.TempDir()}
	code, st, _ := p.up(t, "--cmdline", "ip=eth0:auto6 ip=eth1:auto6 netinit.probe.targets=[2001:db8:c::2]:80", "--timeout", "30s", "eth0", "eth1")
	requireReady(t, code, st)
	requireUplink(t, st, "eth1", "reachable")
	routes, err := c.Handle().RouteList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var devs []int
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			devs = append(devs, r.LinkIndex)
		}
	}
	l1, _ := c.Handle().LinkByName("eth1")
	if len(devs) != 1 || devs[0] != l1.Attrs().Index {
		t.Errorf("IPv6 default routes on links %v, want only eth1 (%d)", devs, l1.Attrs().Index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if o, err := c.Exec(ctx, "iperf3", "-c", "2001:db8:c::2", "-p", "80", "-t", "1"); err != nil {
		t.Errorf("target not reachable after the election: %v\n%s", err, o)
	}
}
