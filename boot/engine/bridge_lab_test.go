package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// zosBridgeValid runs, in the client namespace, the checks of 0-OS's
// networkd before it accepts the node (zosbase pkg/network/bootstrap/
// bridge.go: DefaultBridgeValid: a link named zos, of type bridge, with an
// IPv6 default route), plus what the internet module leaves: the NIC is
// the bridge's port and has no address, the bridge has the NIC's MAC and
// the DHCPv4 address (wantAddr, or any in the prefix wantAddr ends with
// a '.'), IPv6 forwarding is off on the bridge. ipv6=false leaves out the
// IPv6 default route (an IPv4-only lab). It returns what is wrong, ""
// when nothing is.
func zosBridgeValid(t *testing.T, cli *lab.NS, h *netlink.Handle, nic, wantAddr string, ipv6 bool) string {
	t.Helper()
	br, err := h.LinkByName("zos")
	if err != nil {
		return "no link zos: " + err.Error()
	}
	if br.Type() != "bridge" {
		return "zos is a " + br.Type()
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: br.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return "routes: " + err.Error()
	}
	if ipv6 && !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst == nil || r.Dst.String() == "::/0" }) {
		return "no IPv6 default route on zos"
	}
	port, err := h.LinkByName(nic)
	if err != nil {
		return err.Error()
	}
	if port.Attrs().MasterIndex != br.Attrs().Index {
		return nic + " is not a port of zos"
	}
	if !bytes.Equal(port.Attrs().HardwareAddr, br.Attrs().HardwareAddr) {
		return "zos has MAC " + br.Attrs().HardwareAddr.String() + ", " + nic + " has " + port.Attrs().HardwareAddr.String()
	}
	if a, _ := h.AddrList(port, netlink.FAMILY_ALL); len(a) > 0 {
		return nic + " has addresses " + a[0].IPNet.String()
	}
	v4, _ := h.AddrList(br, netlink.FAMILY_V4)
	if !slices.ContainsFunc(v4, func(a netlink.Addr) bool {
		return a.IP.String() == wantAddr || strings.HasSuffix(wantAddr, ".") && strings.HasPrefix(a.IP.String(), wantAddr)
	}) {
		return "zos lacks " + wantAddr
	}
	for _, c := range [][2]string{{"zos", "forwarding"}, {nic, "disable_ipv6"}} {
		out := strings.TrimSpace(cli.MustExec("cat", "/proc/sys/net/ipv6/conf/"+c[0]+"/"+c[1]))
		if want := map[string]string{"forwarding": "0", "disable_ipv6": "1"}[c[1]]; out != want {
			return c[0] + " " + c[1] + " = " + out
		}
	}
	return ""
}

// TestBridgeZOS: with netinit.bridge=zos the real `netinit up` (daemon
// mode) against dnsmasq (a reservation for the NIC's MAC) and radvd leaves
// exactly what 0-OS's networkd requires; the lease renews on the bridge;
// the port losing carrier and getting it back, and a daemon killed and
// started again (it finds the bridge there), keep it so. With the node's
// 0-OS seed file, Yggdrasil on top of it has the address 0-OS derives
// from the identity, before and after the restart (issue 17's lab).
func TestBridgeZOS(t *testing.T) {
	lab.Require(t, "ip", "dnsmasq", "radvd")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "brz")
	h := cli.Handle()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	const reserved = "192.0.2.77"
	dns := lab.Dnsmasq(t, srv, "s0", append(slices.Clone(lab.DHCPArgs),
		"--dhcp-host="+eth0.Attrs().HardwareAddr.String()+","+reserved)...)
	lab.Radvd(t, srv, radvdConf)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	sock := filepath.Join(dir, "ctl.sock")
	// With the node's 0-OS identity: the Yggdrasil address on top of the
	// bridge is the one 0-OS derives from it, and stays across a restart.
	seed := bytes.Repeat([]byte{0x5e}, 32)
	seedPath := filepath.Join(dir, "seed.txt")
	writeSeed(t, seedPath, "1.1.0", seed)
	start := func() *lab.Proc {
		return cli.Start(bin, "up", "--state", statePath, "--cmdline",
			"netinit.bridge=zos netinit.ygg=on netinit.ygg.multicast=off netinit.identity="+seedPath, "eth0")
	}
	d := start()
	yggAddress := func(what string, d *lab.Proc) {
		t.Helper()
		waitState(t, statePath, 30*time.Second, what+": Yggdrasil not at 0-OS's address "+zosAddress(seed), d.Output,
			func(s *state.State) bool { return s.Yggdrasil != nil && s.Yggdrasil.Address == zosAddress(seed) })
	}

	check := func(what string, d *lab.Proc) *state.State {
		t.Helper()
		var st *state.State
		why := "no state"
		if !lab.Eventually(30*time.Second, func() bool {
			s, err := state.Read(statePath)
			if err != nil {
				return false
			}
			st = s
			if s.Phase != state.PhaseReady {
				why = "phase " + string(s.Phase)
				return false
			}
			why = zosBridgeValid(t, cli, h, "eth0", reserved, true)
			return why == ""
		}) {
			t.Fatalf("%s: %s; state %+v\n%s", what, why, st, d.Output())
		}
		if st.Uplink != "zos" || st.UplinkNIC != "eth0" || len(st.Interfaces) != 1 || st.Interfaces[0].Name != "zos" {
			t.Fatalf("%s: uplink %q nic %q interfaces %+v", what, st.Uplink, st.UplinkNIC, st.Interfaces)
		}
		if a := addrsOf(st, "zos", lease.SourceDHCP4); len(a) != 1 || a[0] != reserved+"/24" {
			t.Fatalf("%s: dhcp4 on zos %v", what, a)
		}
		if len(addrsOf(st, "zos", lease.SourceSLAAC)) == 0 || !hasRoute(st, "0.0.0.0/0", "192.0.2.1", "zos") {
			t.Fatalf("%s: no SLAAC address or IPv4 default route on zos: %+v %+v", what, st.Interfaces, st.Routes)
		}
		b, _ := os.ReadFile(statePath)
		lab.ValidateState(t, b)
		env, err := os.ReadFile(filepath.Join(dir, "state.env"))
		if err != nil || !strings.Contains(string(env), "NETINIT_UPLINK='zos'") || !strings.Contains(string(env), "NETINIT_UPLINK_NIC='eth0'") {
			t.Fatalf("%s: state.env (%v):\n%s", what, err, env)
		}
		return st
	}
	check("bring-up", d)
	yggAddress("bring-up", d)

	renew := func(what string) {
		t.Helper()
		acks := strings.Count(dns.Output(), "DHCPACK(s0) "+reserved)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := control.Call(ctx, sock, "renew"); err != nil {
			t.Fatalf("%s: renew: %v", what, err)
		}
		if !lab.Eventually(15*time.Second, func() bool {
			return strings.Count(dns.Output(), "DHCPACK(s0) "+reserved) > acks
		}) {
			t.Fatalf("%s: no renewal on the bridge; dnsmasq:\n%s\nnetinit:\n%s", what, dns.Output(), d.Output())
		}
	}
	renew("renew")

	// The port loses carrier (the switch side goes down) and gets it back.
	srv.MustExec("ip", "link", "set", "s0", "down")
	waitState(t, statePath, 10*time.Second, "the bridge's lost carrier is not in the state", d.Output,
		func(s *state.State) bool { return len(s.Interfaces) == 1 && !s.Interfaces[0].Carrier })
	srv.MustExec("ip", "link", "set", "s0", "up")
	srv.MustExec("ip", "-6", "addr", "replace", "2001:db8:1::1/64", "dev", "s0", "nodad")
	check("carrier back", d)
	renew("renew after the carrier came back")

	// A daemon killed and started again finds the bridge and keeps it.
	d.Stop()
	if !lab.Eventually(5*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := control.Call(ctx, sock, "status")
		return err != nil
	}) {
		t.Fatal("daemon still answers after it was killed")
	}
	os.Remove(statePath)
	d = start()
	st := check("daemon restart", d)
	links, _ := h.LinkList()
	n := 0
	for _, l := range links {
		if l.Type() == "bridge" {
			n++
		}
	}
	if n != 1 || !strings.Contains(d.Output(), "zos: management bridge with port eth0") {
		t.Fatalf("after the restart: %d bridges, state %+v\n%s", n, st, d.Output())
	}
	yggAddress("daemon restart", d)
	t.Logf("restarted daemon:\n%s", d.Output())
}

// TestBridgeElected: two NICs, the uplink elected by reachability
// (TestUplinkElection's lab) with netinit.bridge=zos: once eth1 is
// elected its clients move onto the bridge, which gets eth1 as its port,
// its MAC and a lease, and holds the only default route; the target is
// reachable. eth0 is handed over to the next stage as 0-OS's networkd
// expects the NICs it may pick for its public network (issue 11 item 4):
// its probe lease released (the server sees the DHCPRELEASE), no address
// of netinit's, the kernel's own accept_ra.
func TestBridgeElected(t *testing.T) {
	t.Parallel()
	c, dead, st, out := electionUp(t, "ez", "netinit.bridge=zos")
	if st.Uplink != "zos" || st.UplinkNIC != "eth1" || st.UplinkReason != "reachable" {
		t.Fatalf("uplink %q nic %q (%s), want zos on eth1 (reachable); candidates %+v", st.Uplink, st.UplinkNIC, st.UplinkReason, st.Candidates)
	}
	if !strings.Contains(out, "eth1: elected uplink: moving it onto the management bridge zos") {
		t.Fatalf("no move onto the bridge:\n%s", out)
	}
	h := c.Handle()
	if why := zosBridgeValid(t, c, h, "eth1", "198.51.100.", false); why != "" {
		t.Fatalf("%s\n%s", why, out)
	}
	a4 := addrsOf(st, "zos", lease.SourceDHCP4)
	if !hasRoute(st, "0.0.0.0/0", "198.51.100.1", "zos") || len(a4) != 1 {
		t.Fatalf("routes %+v interfaces %+v", st.Routes, st.Interfaces)
	}
	// The same MAC: the same lease as eth1 had during the election.
	if !strings.Contains(out, "eth1: dhcp4 lease "+a4[0]+" ") {
		t.Errorf("zos has %s, not eth1's lease of the election:\n%s", a4[0], out)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil || eth0.Attrs().MasterIndex != 0 {
		t.Fatalf("eth0: %v master %d", err, eth0.Attrs().MasterIndex)
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	zos, _ := h.LinkByName("zos")
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && (r.LinkIndex != zos.Attrs().Index || r.Gw.String() != "198.51.100.1") {
			t.Errorf("default route %s on link %d, want only via 198.51.100.1 on zos", r.Gw, r.LinkIndex)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if o, err := c.Exec(ctx, "iperf3", "-c", "198.51.100.130", "-p", "80", "-t", "1"); err != nil {
		t.Errorf("target not reachable through the bridge: %v\n%s", err, o)
	}
	// eth0, handed over.
	if !lab.Eventually(5*time.Second, func() bool { return strings.Contains(dead.Output(), "DHCPRELEASE(a0)") }) {
		t.Errorf("eth0's probe lease was not released; dnsmasq:\n%s", dead.Output())
	}
	if a, _ := h.AddrList(eth0, netlink.FAMILY_V4); len(a) > 0 {
		t.Errorf("eth0 keeps %s", a[0].IPNet)
	}
	def := strings.TrimSpace(c.MustExec("cat", "/proc/sys/net/ipv6/conf/default/accept_ra"))
	if got := strings.TrimSpace(c.MustExec("cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra")); got != def {
		t.Errorf("eth0 accept_ra %s, want the kernel's %s", got, def)
	}
	for _, ifc := range st.Interfaces {
		if ifc.Name == "eth0" {
			t.Errorf("eth0 still managed in the state: %+v", ifc)
		}
	}
}

// TestBridgeFallback: a link named zos that is not a bridge (here a
// veth) cannot become the management bridge: the NIC is used as itself,
// the node is ready, and the state says why.
func TestBridgeFallback(t *testing.T) {
	p := newPair(t, "brf")
	lab.Dnsmasq(t, p.srv, "s0", lab.DHCPArgs...)
	p.cli.MustExec("ip", "link", "add", "zos", "type", "veth", "peer", "name", "zosp")
	code, st, out := p.up(t, "--cmdline", "ip=dhcp netinit.bridge=zos", "--timeout", "20s", "eth0")
	if code != 0 || st == nil || st.Phase != state.PhaseReady || st.Uplink != "eth0" || st.UplinkNIC != "" {
		t.Fatalf("exit %d, state %+v; want ready on eth0", code, st)
	}
	if len(addrsOf(st, "eth0", lease.SourceDHCP4)) != 1 {
		t.Fatalf("no lease on eth0: %+v", st.Interfaces)
	}
	if !slices.ContainsFunc(st.Problems, func(p string) bool {
		return strings.Contains(p, "bridge zos: a link of type veth has that name") && strings.Contains(p, "eth0 is used without it")
	}) {
		t.Fatalf("problems %q\n%s", st.Problems, out)
	}
}
