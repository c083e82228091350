package engine_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// switchConf is the switch side's announcement: system name, port ID and
// description, management address, and the port's VLAN 100 (the IEEE
// 802.1 Port VLAN ID TLV, as lldpd's custom TLV: the host kernel has no
// bridge VLAN filtering for lldpd to read a PVID from).
var switchConf = []string{
	"configure system hostname sw-rack3",
	"configure system ip management pattern 192.0.2.1",
	`configure ports s0 lldp portidsubtype local Gi1/0/12 description "rack3 node7"`,
	"configure lldp custom-tlv oui 00,80,c2 subtype 1 oui-info 00,64",
}

// TestUpLLDP: the daemon (`netinit up`) hears lldpd on the switch side:
// the console says it once, state.json and `netinit status` show the
// switch, the port and its VLAN within one announcement interval of the
// link coming up.
func TestUpLLDP(t *testing.T) {
	t.Parallel()
	lab.Require(t, "ip", "dnsmasq")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "lldp")
	lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
	const interval = 5
	sw := lab.LLDPD(t, srv, "s0", interval, switchConf...)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	d := cli.Start(bin, "up", "--state", statePath, "--cmdline", "ip=dhcp", "eth0")
	waitState(t, statePath, 20*time.Second, "no ready state", d.Output,
		func(s *state.State) bool { return s.Phase == state.PhaseReady })
	st := waitState(t, statePath, (interval+5)*time.Second, "no LLDP neighbour in the state", d.Output,
		func(s *state.State) bool { return len(s.Interfaces) == 1 && s.Interfaces[0].LLDP != nil })
	n := st.Interfaces[0].LLDP
	if n.SystemName != "sw-rack3" || n.PortID != "Gi1/0/12" || n.PortDescription != "rack3 node7" || n.PortVLAN != 100 ||
		n.ManagementAddress != "192.0.2.1" || !strings.HasPrefix(n.ChassisID, "mac ") || n.TTLS != 4*interval {
		t.Errorf("lldp %+v", n)
	}
	if st.Interfaces[0].SpanningTree != nil {
		t.Errorf("spanning tree %+v without a bridge", st.Interfaces[0].SpanningTree)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "status", "--state", statePath).CombinedOutput()
	want := `lldp:        eth0: switch sw-rack3 port Gi1/0/12 "rack3 node7" (untagged VLAN 100), management 192.0.2.1`
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("netinit status: %v\n%s\nwant %q", err, out, want)
	}
	line := `eth0: switch sw-rack3 port Gi1/0/12 "rack3 node7" (untagged VLAN 100), management 192.0.2.1`
	if c := strings.Count(d.Output(), line); c != 1 {
		t.Errorf("console has %q %d times, want once:\n%s", line, c, d.Output())
	}
	// Listening only: the switch has heard nothing from the node.
	if n := sw.Neighbours(t); strings.TrimSpace(n) != "" {
		t.Errorf("netinit.lldp=listen transmitted; lldpd's neighbours:\n%s", n)
	}
}

// TestUpLLDPSend: with netinit.lldp=send the switch learns the node: its
// MAC as chassis, its link's name as port, "netinit" as description.
func TestUpLLDPSend(t *testing.T) {
	t.Parallel()
	lab.Require(t, "ip", "dnsmasq", "lldpcli")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "lsnd")
	lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
	sw := lab.LLDPD(t, srv, "s0", 5, switchConf...)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	d := cli.Start(bin, "up", "--state", statePath, "--cmdline", "ip=dhcp netinit.lldp=send", "eth0")
	waitState(t, statePath, 20*time.Second, "no ready state", d.Output,
		func(s *state.State) bool { return s.Phase == state.PhaseReady })
	var n string
	if !lab.Eventually(10*time.Second, func() bool { n = sw.Neighbours(t); return strings.Contains(n, "netinit") }) {
		t.Fatalf("lldpd heard no announcement:\n%s\nnetinit:\n%s", n, d.Output())
	}
	for _, want := range []string{"lldp.s0.port.ifname=eth0", "lldp.s0.chassis.descr=netinit", "lldp.s0.chassis.mac="} {
		if !strings.Contains(n, want) {
			t.Errorf("no %q in lldpd's neighbours:\n%s", want, n)
		}
	}
}

// TestUpLLDPWrongVLAN: no DHCP server answers untagged, and the switch
// says the port's VLAN is 100: the console says what to try.
func TestUpLLDPWrongVLAN(t *testing.T) {
	t.Parallel()
	p := newPair(t, "vlan")
	lab.LLDPD(t, p.srv, "s0", 1, switchConf...)
	code, st, out := p.up(t, "--cmdline", "ip=dhcp", "--timeout", "15s", "eth0")
	if code == 0 || st == nil || st.Phase != state.PhaseOffline {
		t.Fatalf("exit %d, state %+v; want offline", code, st)
	}
	hint := "eth0: no DHCP answer untagged; the switch says this port is VLAN 100 — try vlan:priv=100"
	if strings.Count(out, hint) != 1 {
		t.Errorf("want the hint %q once in:\n%s", hint, out)
	}
	if n := st.Interfaces[0].LLDP; n == nil || n.PortVLAN != 100 {
		t.Errorf("lldp %+v", n)
	}
}

// stpPair is a pair whose server side is a Linux bridge with spanning
// tree on (forward delay fd seconds): dnsmasq serves on the bridge, and
// the node's veth peer is the bridge's port s0, which goes through
// listening and learning (2 x fd) when the node's link comes up.
func stpPair(t *testing.T, tag string, stp bool) *pair {
	p := newPair(t, tag)
	s := p.srv
	on := "0"
	if stp {
		on = "1"
	}
	s.MustExec("ip", "addr", "flush", "dev", "s0")
	s.MustExec("ip", "link", "add", "br0", "type", "bridge", "stp_state", on, "forward_delay", "1500", "hello_time", "200")
	s.MustExec("ip", "link", "set", "s0", "master", "br0")
	s.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "br0")
	s.MustExec("ip", "link", "set", "br0", "up")
	lab.Dnsmasq(t, s, "br0", dhcpArgs...)
	return p
}

// TestUpSpanningTree: the node's switch port runs spanning tree with a
// 15 s forward delay; netinit.timeout=20s would give up before the port
// forwards (~30 s after link-up), but the BPDUs extend the deadline: the
// console says why it waits, and the node is ready.
func TestUpSpanningTree(t *testing.T) {
	t.Parallel()
	p := stpPair(t, "stp", true)
	code, st, out := p.up(t, "--cmdline", "ip=dhcp netinit.timeout=20s", "eth0")
	requireReady(t, code, st)
	line := "eth0: switch port runs spanning tree (forward delay 15 s): waiting"
	if strings.Count(out, line) != 1 || !strings.Contains(out, "deadline extended") {
		t.Errorf("want %q once and the extension in:\n%s", line, out)
	}
	// The lease came after the 20 s deadline, which was extended.
	if ms := st.TimingsMS["lease4"]; ms < 20000 {
		t.Errorf("lease after %d ms: the port forwarded before the deadline, the extension was not needed", ms)
	}
	if s := st.Interfaces[0].SpanningTree; s == nil || s.ForwardDelayS != 15 || s.Protocol != "stp" {
		t.Errorf("spanning tree %+v", s)
	}
}

// TestUpNoBPDU: the same silent port without BPDUs (no DHCP server): the
// 20 s timeout holds as before, nothing is extended.
func TestUpNoBPDU(t *testing.T) {
	t.Parallel()
	p := newPair(t, "nobp")
	code, st, out := p.up(t, "--cmdline", "ip=dhcp netinit.timeout=20s", "eth0")
	if code == 0 || st == nil || st.Phase != state.PhaseOffline {
		t.Fatalf("exit %d, state %+v; want offline", code, st)
	}
	if strings.Contains(out, "spanning tree") || strings.Contains(out, "deadline extended") {
		t.Errorf("an extension without BPDUs:\n%s", out)
	}
	// An extension would have pushed the verdict past 2 x 15 s.
	if ms := st.TimingsMS["offline"]; ms < 20000 || ms >= 30000 {
		t.Errorf("offline after %d ms with a 20 s deadline", ms)
	}
}
