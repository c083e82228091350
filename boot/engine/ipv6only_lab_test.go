package engine_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// IPv6-only and IPv6-mostly networks (RFC 8925, RFC 8781): the node is
// ready without IPv4, with the default settings (no ip=).

// TestUpIPv6OnlyNoDHCPv4: radvd (SLAAC, RDNSS) and no DHCPv4 server. The
// node is ready (exit 0) after the DHCPv4 grace period, long before the
// deadline, with its SLAAC address, the IPv6 default route and the RDNSS.
func TestUpIPv6OnlyNoDHCPv4(t *testing.T) {
	t.Parallel()
	p := newPair(t, "v6o")
	lab.Radvd(t, p.srv, radvdConf)
	code, st, _ := p.up(t, "--timeout", "40s", "eth0")
	requireReady(t, code, st)
	h := p.cli.Handle()
	l, _ := h.LinkByName("eth0")
	want := eui64("2001:db8:1::", l.Attrs().HardwareAddr) + "/64"
	if got := addrsOf(st, "eth0", lease.SourceSLAAC); !slices.Contains(got, want) {
		t.Errorf("slaac addresses %v, want %s", got, want)
	}
	if got := kernelDefault(t, h, netlink.FAMILY_V6); !strings.HasPrefix(got, "fe80::") {
		t.Errorf("kernel IPv6 default via %q", got)
	}
	if v4 := kernelAddrs(t, h, "eth0", netlink.FAMILY_V4); len(v4) != 0 {
		t.Errorf("IPv4 addresses %v without a DHCPv4 server", v4)
	}
	if !slices.Equal(st.DNS, []string{"2001:db8:1::53"}) || st.Uplink != "eth0" {
		t.Errorf("dns %v uplink %q", st.DNS, st.Uplink)
	}
	// Ready came from the IPv6-only rule, not from the 40 s deadline.
	if ms, ok := st.TimingsMS["ready"]; !ok || ms >= 40000 {
		t.Errorf("timings %v", st.TimingsMS)
	}
}

// TestUpIPv6OnlyDHCPv4Timeout: ip=dhcp keeps IPv4 required: the same
// network ends degraded at the deadline.
func TestUpIPv6OnlyDHCPv4Required(t *testing.T) {
	t.Parallel()
	p := newPair(t, "v6r")
	lab.Radvd(t, p.srv, radvdConf)
	code, st, _ := p.up(t, "--cmdline", "ip=dhcp", "--timeout", "5s", "eth0")
	if code != 3 || st == nil || st.Phase == state.PhaseReady {
		t.Fatalf("exit %d, state %+v; want not ready with ip=dhcp and no DHCPv4", code, st)
	}
}

// TestUpDHCPv6Only: the RA sets M and carries no autonomous prefix, dnsmasq
// is a DHCPv6 server (no DHCPv4): the node is ready with the DHCPv6
// address and the RA's default route.
func TestUpDHCPv6Only(t *testing.T) {
	t.Parallel()
	p := newPair(t, "d6o")
	conf := strings.Replace(strings.Replace(radvdConf, "AdvOnLink on; AdvAutonomous on;", "AdvOnLink on; AdvAutonomous off;", 1),
		"AdvSendAdvert on;", "AdvSendAdvert on;\n\tAdvManagedFlag on;\n\tAdvOtherConfigFlag on;", 1)
	lab.Radvd(t, p.srv, conf)
	lab.Dnsmasq(t, p.srv, "s0", "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,1h",
		"--dhcp-option=option6:dns-server,[2001:db8:1::35]")
	code, st, _ := p.up(t, "--timeout", "40s", "eth0")
	requireReady(t, code, st)
	d6 := addrsOf(st, "eth0", lease.SourceDHCP6)
	if len(d6) != 1 || !strings.HasPrefix(d6[0], "2001:db8:1::1") {
		t.Fatalf("dhcp6 addresses %v", d6)
	}
	if s := addrsOf(st, "eth0", lease.SourceSLAAC); len(s) != 0 {
		t.Errorf("slaac addresses %v from a prefix without the A flag", s)
	}
	h := p.cli.Handle()
	if got := kernelAddrs(t, h, "eth0", netlink.FAMILY_V6); !slices.Contains(got, d6[0]) {
		t.Errorf("kernel addresses %v, want %s", got, d6[0])
	}
	if got := kernelDefault(t, h, netlink.FAMILY_V6); !strings.HasPrefix(got, "fe80::") {
		t.Errorf("kernel IPv6 default via %q", got)
	}
	if !slices.Contains(st.DNS, "2001:db8:1::35") {
		t.Errorf("dns %v, want the DHCPv6 server's", st.DNS)
	}
}

// TestUpIPv6OnlyPreferred: the DHCPv4 server answers with option 108
// (RFC 8925, V6ONLY_WAIT 1800 s) on a link with IPv6: no IPv4 address is
// taken, the state says so, and the node is ready on IPv6.
func TestUpIPv6OnlyPreferred(t *testing.T) {
	t.Parallel()
	p := newPair(t, "o108")
	lab.Radvd(t, p.srv, radvdConf)
	lab.Dnsmasq(t, p.srv, "s0", append(slices.Clone(dhcpArgs), "--dhcp-option=108,00:00:07:08")...)
	// A long grace: ready before it proves the option was honoured.
	code, st, out := p.up(t, "--cmdline", "netinit.dhcp4_timeout=30s", "--timeout", "40s", "eth0")
	requireReady(t, code, st)
	if ms := st.TimingsMS["ready"]; ms >= 30000 {
		t.Errorf("ready after %d ms: option 108 was not honoured", ms)
	}
	ifc := st.Interfaces[0]
	if ifc.DHCP4 != "ipv6-only" || ifc.IPv6OnlyPreferredS != 1800 {
		t.Errorf("eth0 dhcp4 %q ipv6_only_preferred_s %d, want ipv6-only 1800", ifc.DHCP4, ifc.IPv6OnlyPreferredS)
	}
	if v4 := kernelAddrs(t, p.cli.Handle(), "eth0", netlink.FAMILY_V4); len(v4) != 0 {
		t.Errorf("IPv4 addresses %v despite option 108", v4)
	}
	if !strings.Contains(out, "prefers IPv6-only") {
		t.Errorf("the console does not say why there is no IPv4:\n%s", out)
	}
}

// TestUpPREF64: the router's RAs carry a PREF64 option (RFC 8781; radvd
// 2.19 cannot send one, so a Go router in the server namespace does); the
// NAT64 prefix is in the state.
func TestUpPREF64(t *testing.T) {
	if os.Getenv("PREF64_ROUTER") != "" {
		pref64Router(t)
		return
	}
	t.Parallel()
	p := newPair(t, "p64")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(t.TempDir(), "router.json")
	r := p.srv.Start("env", "NETINIT_LAB_CHILD="+res, "PREF64_ROUTER=1", exe, "-test.run=^TestUpPREF64$", "-test.v", "-test.count=1")
	if !lab.Eventually(10*time.Second, func() bool { return strings.Contains(r.Output(), "ROUTER-READY") }) {
		t.Fatalf("router did not start:\n%s", r.Output())
	}
	code, st, _ := p.up(t, "--cmdline", "netinit.dhcp4_timeout=0", "--timeout", "30s", "eth0")
	if code != 0 || st == nil || st.Phase != state.PhaseReady {
		t.Fatalf("exit %d, state %+v; want ready\nrouter:\n%s", code, st, r.Output())
	}
	if st.NAT64Prefix != "64:ff9b::/96" || st.Interfaces[0].PREF64 != "64:ff9b::/96" {
		t.Errorf("nat64_prefix %q, interface pref64 %q; want 64:ff9b::/96", st.NAT64Prefix, st.Interfaces[0].PREF64)
	}
}

// pref64Router runs in the server namespace: it sends an RA with a
// prefix, RDNSS and PREF64 every 500 ms for 30 s.
func pref64Router(t *testing.T) {
	ifi, err := net.InterfaceByName("s0")
	if err != nil {
		t.Fatal(err)
	}
	var conn *ndp.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if conn, _, err = ndp.Listen(ifi, ndp.LinkLocal); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	defer conn.Close()
	fmt.Println("ROUTER-READY")
	ra := &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
		&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
			ValidLifetime: time.Hour, PreferredLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:1::")},
		&ndp.RecursiveDNSServer{Lifetime: time.Hour, Servers: []netip.Addr{netip.MustParseAddr("2001:db8:1::53")}},
		&ndp.PREF64{Lifetime: 1800 * time.Second, Prefix: netip.MustParsePrefix("64:ff9b::/96")},
	}}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: ifi.Index}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if err := conn.WriteTo(ra, cm, netip.MustParseAddr("ff02::1")); err != nil {
			t.Logf("sending RA: %v", err)
		}
	}
	lab.ChildResult(t, "sent")
}
