package engine_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/internal/lab"
)

// hostilePIOs are the on-link prefixes the LAN that is not the uplink
// announces (issue 29 item 2): together they cover nearly all of the IPv6
// Internet, and each would win over the uplink's ::/0.
var hostilePIOs = []string{"2000::/8", "2400::/8", "2600::/8", "2800::/8", "2a00::/8", "2c00::/8"}

// hostileRoutes4 are twenty public /8s the same LAN's DHCPv4 server pushes
// as option 121 routes (and 10.0.0.0/8, a farm's management network).
func hostileRoutes4() []string {
	var rs []string
	for i := 1; len(rs) < 20; i++ {
		if i != 10 {
			rs = append(rs, fmt.Sprintf("%d.0.0.0/8", i))
		}
	}
	return rs
}

// TestUpHostileLAN (issue 29 item 2): two NICs. eth0's LAN is the
// uplink's (a DHCPv4 server with a router, an RA with a default router).
// eth1's LAN is not: its RAs have router lifetime 0 and on-link PIOs for
// the six /8s of hostilePIOs (besides its own /64), and its DHCPv4 server
// pushes option 121 with twenty public /8 routes and 10.0.0.0/8. None of
// the public ones reaches the kernel; 10.0.0.0/8 and the /64 do, the
// refusals are said once, quoted, and are in problems.
//
//	c:eth0 ── u0 (192.0.2.1/24, 2001:db8:1::1/64: the uplink's LAN)
//	c:eth1 ── h0 (198.51.100.1/24, 2001:db8:2::1/64: the hostile LAN)
func TestUpHostileLAN(t *testing.T) {
	t.Parallel()
	lab.Require(t, "ip", "dnsmasq", "radvd")
	lab.GuardResolvConf(t)
	netinitBin(t)
	c, u, h := lab.NewNS(t, "hlc"), lab.NewNS(t, "hlu"), lab.NewNS(t, "hlh")
	for _, ns := range []*lab.NS{u, h} {
		ns.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	lab.Veth(t, u, "u0", c, "eth0")
	lab.Veth(t, h, "h0", c, "eth1")
	u.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "u0")
	u.MustExec("ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "u0", "nodad")
	h.MustExec("ip", "addr", "add", "198.51.100.1/24", "dev", "h0")
	h.MustExec("ip", "-6", "addr", "add", "2001:db8:2::1/64", "dev", "h0", "nodad")
	for _, l := range []string{"eth0", "eth1"} {
		c.MustExec("ip", "link", "set", l, "down")
	}
	lab.Dnsmasq(t, u, "u0", dhcpArgs...)
	lab.Radvd(t, u, strings.ReplaceAll(radvdConf, "interface s0", "interface u0"))

	opt121 := "--dhcp-option=121"
	for _, r := range append(hostileRoutes4(), "10.0.0.0/8") {
		opt121 += "," + r + ",198.51.100.1"
	}
	lab.Dnsmasq(t, h, "h0", "--dhcp-range=198.51.100.100,198.51.100.150,255.255.255.0,1h", "--no-ping",
		"--dhcp-option=option:dns-server,198.51.100.53", opt121)
	conf := "interface h0 {\n\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 10;\n" +
		"\tAdvRASolicitedUnicast on;\n\tAdvDefaultLifetime 0;\n" +
		"\tprefix 2001:db8:2::/64 { AdvOnLink on; AdvAutonomous on; };\n"
	for _, p := range hostilePIOs {
		conf += "\tprefix " + p + " { AdvOnLink on; AdvAutonomous off; };\n"
	}
	lab.Radvd(t, h, conf+"};\n")

	p := &pair{cli: c, dir: t.TempDir()}
	code, st, out := p.up(t, "--timeout", "30s", "eth0", "eth1")
	requireReady(t, code, st)
	requireUplink(t, st, "eth0", "first-default-route")

	hd := c.Handle()
	eth1, err := hd.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	dsts := func(family int) []string {
		routes, err := hd.RouteList(eth1, family)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range routes {
			if r.Dst != nil {
				d, _ := netip.ParsePrefix(r.Dst.String())
				got = append(got, d.String())
			}
		}
		return got
	}
	got6, got4 := dsts(netlink.FAMILY_V6), dsts(netlink.FAMILY_V4)
	for _, p := range hostilePIOs {
		if slices.Contains(got6, p) {
			t.Errorf("on-link %s of the LAN that is not the uplink is in the kernel", p)
		}
	}
	for _, r := range hostileRoutes4() {
		if slices.Contains(got4, r) {
			t.Errorf("option 121 route %s of the LAN that is not the uplink is in the kernel", r)
		}
	}
	if !slices.Contains(got4, "10.0.0.0/8") {
		t.Errorf("option 121 route 10.0.0.0/8 (private) is not in the kernel: eth1's routes %v", got4)
	}
	if !slices.Contains(got6, "2001:db8:2::/64") {
		t.Errorf("on-link 2001:db8:2::/64 is not in the kernel: eth1's routes %v", got6)
	}
	// The first refusals said once, quoted, with the link and the source;
	// the rest of one lease's counted in one line, not twenty.
	for _, want := range []string{`eth1: dhcp4: route "1.0.0.0/8 via 198.51.100.1" refused`, `eth1: ra: route "2000::/8 on-link" refused`,
		"eth1: dhcp4: 17 more routes refused for the same reason (public)"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("console says %q %d times, want once\n%s", want, n, out)
		}
	}
	if strings.Contains(out, `"21.0.0.0/8 via 198.51.100.1" refused`) {
		t.Errorf("console lists every refused route of the lease line by line\n%s", out)
	}
	for _, want := range []string{"eth1: dhcp4: ", "eth1: ra: "} {
		if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.HasPrefix(p, want) && strings.Contains(p, "refused") }) {
			t.Errorf("problems %q: none says %s routes were refused", st.Problems, want)
		}
	}
}
