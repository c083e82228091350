package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// TestDaemonStatus: `netinit up` keeps the network and answers on its
// control socket; `netinit status` renders the live state; "renew" makes
// the DHCP client renew at once (dnsmasq sees a second ACK); after the
// daemon is killed with -9, status still renders the state file, marked
// stale.
func TestDaemonStatus(t *testing.T) {
	lab.Require(t, "ip", "dnsmasq")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "dmn")
	dns := lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	sock := filepath.Join(dir, "ctl.sock")
	d := cli.Start(bin, "up", "--state", statePath, "--cmdline", "ip=dhcp", "eth0")

	st := waitState(t, statePath, 20*time.Second, "no ready state", d.Output,
		func(s *state.State) bool { return s.Phase == state.PhaseReady })
	status := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"status", "--state", statePath}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("netinit status %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	addr := ""
	for _, ifc := range st.Interfaces {
		for _, a := range ifc.Addresses {
			if a.Source == lease.SourceDHCP4 {
				addr = a.CIDR
			}
		}
	}
	out := status()
	if !strings.Contains(out, "live, from the network daemon") || !strings.Contains(out, addr) || !strings.Contains(out, "phase:       ready") {
		t.Fatalf("status against the live daemon:\n%s", out)
	}
	var js state.State
	if err := json.Unmarshal([]byte(status("--json")), &js); err != nil || js.Phase != state.PhaseReady || js.Uplink != "eth0" {
		t.Fatalf("status --json: %v %+v", err, js)
	}
	if tl := status("--timeline"); !strings.Contains(tl, "ready") || !strings.Contains(tl, "lease4") {
		t.Fatalf("status --timeline:\n%s", tl)
	}

	// The daemon decided the overlays after the verdict: no public IPv6
	// here, so Yggdrasil runs (auto), behind the firewall, and the state
	// says so (and still matches the schema).
	ov := waitState(t, statePath, 20*time.Second, "no overlay decision in the state", d.Output,
		func(s *state.State) bool { return s.Overlays != nil && s.Yggdrasil != nil })
	b, _ := os.ReadFile(statePath)
	lab.ValidateState(t, b)
	if !ov.Overlays.Yggdrasil || !strings.HasPrefix(ov.Yggdrasil.Address, "2") || len(ov.Firewall) == 0 || ov.Connectivity == nil {
		t.Errorf("overlays %+v yggdrasil %+v firewall %q connectivity %+v", ov.Overlays, ov.Yggdrasil, ov.Firewall, ov.Connectivity)
	}
	t.Logf("overlays %+v; connectivity %+v", ov.Overlays, ov.Connectivity)
	if f := ov.FirewallStatus; f == nil || !f.Applied || len(f.Interfaces) != 1 || f.Interfaces[0] != "ygg0" {
		t.Errorf("firewall_status %+v", ov.FirewallStatus)
	}
	// status answers the farmer's overlay questions.
	out = status()
	for _, want := range []string{"yggdrasil:   " + ov.Yggdrasil.Address + ", subnet " + ov.Yggdrasil.Subnet,
		"firewall:    applied on ygg0", "ipv4:        " + ov.Connectivity.IPv4.Verdict, "wireguard:   off ("} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// renew: a second DHCPACK long before T1 (30 min).
	acks := strings.Count(dns.Output(), "DHCPACK")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := control.Call(ctx, sock, "renew"); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if !lab.Eventually(10*time.Second, func() bool { return strings.Count(dns.Output(), "DHCPACK") > acks }) {
		t.Fatalf("no renewal after the renew command; dnsmasq:\n%s\ndaemon:\n%s", dns.Output(), d.Output())
	}

	// kill -9: the state file stays, status says it is stale.
	pid := st.PID
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	if !lab.Eventually(5*time.Second, func() bool { return unix.Kill(pid, 0) != nil }) {
		t.Fatalf("daemon %d still alive", pid)
	}
	out = status()
	if !strings.Contains(out, "STALE") || !strings.Contains(out, addr) {
		t.Fatalf("status after kill -9:\n%s", out)
	}
	if _, err := os.Stat(sock); err == nil {
		// A socket left by the dead daemon must not be mistaken for a live one.
		if strings.Contains(out, "live") {
			t.Fatalf("dead daemon reported live:\n%s", out)
		}
	}
}

// TestDaemonWireGuard: an IPv4-only node whose cmdline names a WireGuard
// gateway (real wireguard-go, configured with wg) starts the tunnel by
// itself (netinit.wg=auto, no public IPv6), after trying to set the clock;
// the handshake and the bytes show in the state, and TCP flows to the
// gateway's tunnel address.
func TestDaemonWireGuard(t *testing.T) {
	lab.Require(t, "ip", "dnsmasq", "wg", "go")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "dwg")
	lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
	gw := lab.NewGateway(t, srv, lab.BuildWireguardGo(t), 51820, "2001:db8:77::1/64")
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	d := cli.Start(bin, "up", "--state", statePath, "--cmdline",
		"ip=dhcp netinit.ygg=off netinit.wg.peer="+gw.Public+"@192.0.2.1:51820 netinit.wg.address=2001:db8:77::2/64 netinit.wg.allowed=2001:db8:77::/64", "eth0")
	st := waitState(t, statePath, 30*time.Second, "no WireGuard in the state", d.Output,
		func(s *state.State) bool { return s.WireGuard != nil && s.WireGuard.PublicKey != "" })
	if !st.Overlays.WireGuard || st.Overlays.Yggdrasil || st.Clock == nil {
		t.Errorf("overlays %+v clock %+v", st.Overlays, st.Clock)
	}
	gw.AddPeer(t, st.WireGuard.PublicKey, "2001:db8:77::2/128")
	// Traffic from the node to the gateway's tunnel address.
	srv.Start("iperf3", "-s", "-B", "2001:db8:77::1")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out string
	if !lab.Eventually(30*time.Second, func() bool {
		var err error
		out, err = cli.Exec(ctx, "iperf3", "-c", "2001:db8:77::1", "-t", "1", "-J")
		return err == nil
	}) {
		t.Fatalf("no TCP through wg0: %s\n%s", out, d.Output())
	}
	st = waitState(t, statePath, 15*time.Second, "no handshake/bytes in the state", d.Output, func(s *state.State) bool {
		return s.WireGuard != nil && len(s.WireGuard.Peers) == 1 && s.WireGuard.Peers[0].LastHandshake != nil && s.WireGuard.Peers[0].TxBytes > 1000
	})
	b, _ := os.ReadFile(statePath)
	lab.ValidateState(t, b)
	t.Logf("wireguard %+v; clock %+v", st.WireGuard.Peers[0], st.Clock)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	status, err := exec.CommandContext(sctx, bin, "status", "--state", statePath).CombinedOutput()
	if err != nil || !strings.Contains(string(status), "peer "+gw.Public+" at ") || !strings.Contains(string(status), " ago, received ") {
		t.Errorf("netinit status (%v) does not show the WireGuard peer:\n%s", err, status)
	}
}
