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
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// zosBridgeValid runs, in the client namespace, the checks of 0-OS's
// networkd before it accepts the node (zosbase pkg/network/bootstrap/
// bridge.go: DefaultBridgeValid: a link named zos, of type bridge, with an
// IPv6 default route), plus what the internet module leaves: the NIC is
// the bridge's port and has no address, the bridge has the NIC's MAC and
// the DHCPv4 address, IPv6 forwarding is off on the bridge. It returns
// what is wrong, "" when nothing is.
func zosBridgeValid(t *testing.T, cli *lab.NS, h *netlink.Handle, nic, wantAddr string) string {
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
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst == nil || r.Dst.String() == "::/0" }) {
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
	if !slices.ContainsFunc(v4, func(a netlink.Addr) bool { return a.IP.String() == wantAddr }) {
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
// started again (it finds the bridge there), keep it so.
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
	start := func() *lab.Proc {
		return cli.Start(bin, "up", "--state", statePath, "--cmdline", "netinit.bridge=zos netinit.ygg=off", "eth0")
	}
	d := start()

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
			why = zosBridgeValid(t, cli, h, "eth0", reserved)
			return why == ""
		}) {
			t.Fatalf("%s: %s; state %+v\n%s", what, why, st, d.Output())
		}
		if st.Uplink != "zos" || st.UplinkNIC != "eth0" || len(st.Interfaces) != 1 || st.Interfaces[0].Name != "zos" {
			t.Fatalf("%s: uplink %q nic %q interfaces %+v", what, st.Uplink, st.UplinkNIC, st.Interfaces)
		}
		if a := addrsOf(st, "zos", state.SourceDHCP4); len(a) != 1 || a[0] != reserved+"/24" {
			t.Fatalf("%s: dhcp4 on zos %v", what, a)
		}
		if len(addrsOf(st, "zos", state.SourceSLAAC)) == 0 || !hasRoute(st, "0.0.0.0/0", "192.0.2.1", "zos") {
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
	if !lab.Eventually(10*time.Second, func() bool {
		s, err := state.Read(statePath)
		return err == nil && len(s.Interfaces) == 1 && !s.Interfaces[0].Carrier
	}) {
		t.Fatalf("the bridge's lost carrier is not in the state\n%s", d.Output())
	}
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
	t.Logf("restarted daemon:\n%s", d.Output())
}
