package engine_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// These tests run the real `netinit up` binary in a client namespace
// against dnsmasq and radvd in a server namespace, and assert on the state
// file and on what the kernel holds.

var (
	buildOnce sync.Once
	binPath   string
	binDir    string
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// netinitBin builds the binary once for all tests of the package, into a
// directory that outlives each test's TempDir.
func netinitBin(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netinit-bin")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
		binPath = lab.BuildNetinitTo(t, filepath.Join(dir, "netinit"))
	})
	if binPath == "" {
		t.Fatal("netinit binary was not built")
	}
	return binPath
}

const radvdConf = `interface s0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	AdvRASolicitedUnicast on;
	AdvLinkMTU 1420;
	prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; };
	RDNSS 2001:db8:1::53 { };
	DNSSL lab.example { };
};
`

var dhcpArgs = lab.DHCPArgs

// pair is a server namespace (s0 = 192.0.2.1/24, 2001:db8:1::1/64) and a
// client namespace (eth0) joined by veth.
type pair struct {
	srv, cli *lab.NS
	dir      string
}

func newPair(t *testing.T, tag string) *pair {
	lab.Require(t, "ip", "dnsmasq", "radvd")
	lab.GuardResolvConf(t)
	p := &pair{dir: t.TempDir()}
	p.srv, p.cli = lab.NewLAN(t, tag)
	return p
}

// up runs `netinit up --oneshot` in the client namespace and returns the
// exit code, the parsed state and the console output.
func (p *pair) up(t *testing.T, args ...string) (int, *state.State, string) {
	t.Helper()
	return p.start(t, args...).wait(t)
}

// upRun is a `netinit up --oneshot` started by pair.start: the test
// goroutine changes the lab while it runs, then waits for it.
type upRun struct {
	args   []string
	state  string
	cmd    *exec.Cmd
	out    lab.Buffer // read by the test while it runs
	cancel context.CancelFunc
}

func (p *pair) start(t *testing.T, args ...string) *upRun {
	t.Helper()
	r := &upRun{args: args, state: filepath.Join(p.dir, "state.json")}
	full := append([]string{netinitBin(t), "up", "--oneshot", "--state", r.state}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	r.cancel = cancel
	r.cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.cli.Name}, full...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("netinit up: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = r.cmd.Wait() }) // a test that failed before wait
	return r
}

// wait returns the exit code, the parsed state and the console output.
func (r *upRun) wait(t *testing.T) (int, *state.State, string) {
	t.Helper()
	err := r.cmd.Wait()
	r.cancel()
	out := r.out.String()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("netinit up: %v\n%s", err, out)
	}
	t.Logf("netinit up %v → exit %d\n%s", r.args, code, out)
	b, err := os.ReadFile(r.state)
	if err != nil {
		return code, nil, out
	}
	lab.ValidateState(t, b)
	st, err := state.Decode(b)
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	return code, st, out
}

// waitState waits (timeout at most) until the state file at path
// satisfies cond and returns it; else it fails the test, saying what was
// awaited, with the last state and the daemon's output.
func waitState(t *testing.T, path string, timeout time.Duration, what string, out func() string, cond func(*state.State) bool) *state.State {
	t.Helper()
	var st *state.State
	if !lab.Eventually(timeout, func() bool {
		s, err := state.Read(path)
		if err != nil {
			return false
		}
		st = s
		return cond(s)
	}) {
		last, _ := json.Marshal(st)
		t.Fatalf("%s within %v; last state %s\n%s", what, timeout, last, out())
	}
	return st
}

// requireReady fails the test unless `netinit up` exited 0, ready.
func requireReady(t *testing.T, code int, st *state.State) {
	t.Helper()
	if code != 0 || st == nil || st.Phase != state.PhaseReady {
		t.Fatalf("exit %d, state %+v; want ready", code, st)
	}
}

// requireUplink fails the test unless link is the uplink, for reason.
func requireUplink(t *testing.T, st *state.State, link, reason string) {
	t.Helper()
	if st.Uplink != link || st.UplinkReason != reason {
		t.Fatalf("uplink %q (%s), want %s (%s); candidates %+v", st.Uplink, st.UplinkReason, link, reason, st.Candidates)
	}
}

func addrsOf(st *state.State, link string, src lease.Source) []string {
	var out []string
	for _, ifc := range st.Interfaces {
		if ifc.Name != link {
			continue
		}
		for _, a := range ifc.Addresses {
			if a.Source == src {
				out = append(out, a.CIDR)
			}
		}
	}
	return out
}

func hasRoute(st *state.State, dst, via, dev string) bool {
	for _, r := range st.Routes {
		if r.Dst == dst && r.Via == via && r.Dev == dev {
			return true
		}
	}
	return false
}

// kernelDefault returns the gateway of the kernel's default route for a
// family in the namespace, or "".
func kernelDefault(t *testing.T, h *netlink.Handle, family int) string {
	routes, err := h.RouteList(nil, family)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
			return r.Gw.String()
		}
	}
	return ""
}

func kernelAddrs(t *testing.T, h *netlink.Handle, link string, family int) []string {
	var out []string
	for _, a := range lab.Addrs(t, h, link, family) {
		out = append(out, a.IPNet.String())
	}
	return out
}

func TestUpIPv4(t *testing.T) {
	t.Parallel()
	p := newPair(t, "v4")
	lab.Dnsmasq(t, p.srv, "s0", dhcpArgs...)
	code, st, _ := p.up(t, "--cmdline", "ip=dhcp", "--timeout", "30s", "eth0")
	requireReady(t, code, st)
	if st.Uplink != "eth0" || st.UplinkReason != "first-default-route" {
		t.Errorf("uplink %q (%s), want eth0 (first-default-route)", st.Uplink, st.UplinkReason)
	}
	v4 := addrsOf(st, "eth0", lease.SourceDHCP4)
	if len(v4) != 1 || !strings.HasPrefix(v4[0], "192.0.2.") || !strings.HasSuffix(v4[0], "/24") {
		t.Errorf("dhcp4 addresses %v", v4)
	}
	if !hasRoute(st, "0.0.0.0/0", "192.0.2.1", "eth0") {
		t.Errorf("no default route in state: %+v", st.Routes)
	}
	if !slices.Equal(st.DNS, []string{"192.0.2.53"}) || !slices.Contains(st.Search, "v4.example") || !slices.Contains(st.NTP, "192.0.2.123") {
		t.Errorf("dns %v search %v ntp %v", st.DNS, st.Search, st.NTP)
	}
	if st.PublicIPv6 {
		t.Errorf("public_ipv6 true on an IPv4-only link")
	}
	// The kernel holds what the state says.
	h := p.cli.Handle()
	if got := kernelDefault(t, h, netlink.FAMILY_V4); got != "192.0.2.1" {
		t.Errorf("kernel default route via %q, want 192.0.2.1", got)
	}
	if got := kernelAddrs(t, h, "eth0", netlink.FAMILY_V4); !slices.Contains(got, v4[0]) {
		t.Errorf("kernel addresses %v, want %s", got, v4[0])
	}
	l, _ := h.LinkByName("eth0")
	if l.Attrs().MTU != 1450 {
		t.Errorf("kernel MTU %d, want 1450 from DHCP option 26", l.Attrs().MTU)
	}
	// resolv.conf beside the state, never the host's.
	rc, err := os.ReadFile(filepath.Join(p.dir, "resolv.conf"))
	if err != nil || !strings.Contains(string(rc), "nameserver 192.0.2.53") {
		t.Errorf("resolv.conf: %v\n%s", err, rc)
	}
	env, err := os.ReadFile(filepath.Join(p.dir, "state.env"))
	if err != nil || !strings.Contains(string(env), "NETINIT_PHASE='ready'") ||
		!strings.Contains(string(env), "NETINIT_IPV4='"+v4[0]+"'") {
		t.Errorf("state.env: %v\n%s", err, env)
	}
	if _, ok := st.TimingsMS["ready"]; !ok {
		t.Errorf("no ready timing: %v", st.TimingsMS)
	}
}

func TestUpDualStack(t *testing.T) {
	t.Parallel()
	p := newPair(t, "ds")
	lab.Dnsmasq(t, p.srv, "s0", dhcpArgs...)
	lab.Radvd(t, p.srv, radvdConf)
	code, st, _ := p.up(t, "--timeout", "30s", "eth0")
	requireReady(t, code, st)
	if v4 := addrsOf(st, "eth0", lease.SourceDHCP4); len(v4) != 1 {
		t.Errorf("dhcp4 addresses %v", v4)
	}
	// EUI-64 from the client's MAC in 2001:db8:1::/64.
	h := p.cli.Handle()
	l, _ := h.LinkByName("eth0")
	mac := l.Attrs().HardwareAddr
	want := eui64("2001:db8:1::", mac) + "/64"
	if got := addrsOf(st, "eth0", lease.SourceSLAAC); !slices.Contains(got, want) {
		t.Errorf("slaac addresses %v, want %s", got, want)
	}
	if !st.PublicIPv6 {
		t.Errorf("public_ipv6 false with a global address and default route: %s", st.PublicIPv6Reason)
	}
	// Merged DNS: one family never clobbers the other.
	if !slices.Contains(st.DNS, "192.0.2.53") || !slices.Contains(st.DNS, "2001:db8:1::53") {
		t.Errorf("dns %v, want both families", st.DNS)
	}
	if !slices.Contains(st.Search, "lab.example") || !slices.Contains(st.Search, "v4.example") {
		t.Errorf("search %v", st.Search)
	}
	if got := kernelDefault(t, h, netlink.FAMILY_V6); !strings.HasPrefix(got, "fe80::") {
		t.Errorf("kernel IPv6 default via %q, want the router's link-local", got)
	}
	if got := kernelAddrs(t, h, "eth0", netlink.FAMILY_V6); !slices.Contains(got, want) {
		t.Errorf("kernel IPv6 addresses %v, want %s", got, want)
	}
}

func TestUpIPv6Only(t *testing.T) {
	t.Parallel()
	p := newPair(t, "v6")
	lab.Radvd(t, p.srv, radvdConf)
	code, st, _ := p.up(t, "--cmdline", "ip=eth0:auto6", "--timeout", "30s", "eth0")
	requireReady(t, code, st)
	if !slices.Equal(st.DNS, []string{"2001:db8:1::53"}) {
		t.Errorf("dns %v, want the RDNSS", st.DNS)
	}
	// The RA's MTU is the link's IPv6 MTU (IPv4 on the same link keeps its own).
	if mtu := strings.TrimSpace(p.cli.MustExec("cat", "/proc/sys/net/ipv6/conf/eth0/mtu")); mtu != "1420" {
		t.Errorf("kernel IPv6 MTU %s, want 1420 from the RA", mtu)
	}
	h := p.cli.Handle()
	if v4 := kernelAddrs(t, h, "eth0", netlink.FAMILY_V4); len(v4) != 0 {
		t.Errorf("IPv4 addresses %v with ip=auto6", v4)
	}
}

// TestUpLateServer: the DHCP server starts 5 s after the client; the
// client keeps trying and gets the lease.
func TestUpLateServer(t *testing.T) {
	t.Parallel()
	p := newPair(t, "late")
	run := p.start(t, "--cmdline", "ip=dhcp", "--timeout", "40s", "eth0")
	time.Sleep(5 * time.Second)
	lab.Dnsmasq(t, p.srv, "s0", dhcpArgs...)
	code, st, _ := run.wait(t)
	requireReady(t, code, st)
	if ms := st.TimingsMS["lease4"]; ms < 5000 {
		t.Errorf("lease after %d ms, before the server started", ms)
	}
}

// TestUpSilentServer: nobody answers; the phase is offline at the deadline
// and the state is still written.
func TestUpSilentServer(t *testing.T) {
	t.Parallel()
	p := newPair(t, "mute")
	start := time.Now()
	code, st, _ := p.up(t, "--cmdline", "ip=dhcp", "--timeout", "4s", "eth0")
	if code != 3 || st == nil || st.Phase != state.PhaseOffline {
		t.Fatalf("exit %d, state %+v; want exit 3, offline", code, st)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("offline verdict took %s with a 4s deadline", d)
	}
}

// TestUpRouterLifetimeZero: an RA with router lifetime 0 gives an address
// but no IPv6 default route, and the node has no public IPv6.
func TestUpRouterLifetimeZero(t *testing.T) {
	t.Parallel()
	p := newPair(t, "rl0")
	lab.Dnsmasq(t, p.srv, "s0", dhcpArgs...)
	lab.Radvd(t, p.srv, strings.Replace(radvdConf, "AdvLinkMTU 1420;", "AdvLinkMTU 1420;\n\tAdvDefaultLifetime 0;", 1))
	code, st, _ := p.up(t, "--timeout", "30s", "eth0")
	requireReady(t, code, st)
	if len(addrsOf(st, "eth0", lease.SourceSLAAC)) == 0 {
		t.Errorf("no SLAAC address")
	}
	if st.PublicIPv6 || hasRoute(st, "::/0", "", "eth0") {
		t.Errorf("public_ipv6=%v routes %+v with router lifetime 0", st.PublicIPv6, st.Routes)
	}
	if got := kernelDefault(t, p.cli.Handle(), netlink.FAMILY_V6); got != "" {
		t.Errorf("kernel IPv6 default via %s with router lifetime 0", got)
	}
}

// TestUpBadCmdline: a malformed ip= is a usage error naming the field, and
// nothing is applied.
func TestUpBadCmdline(t *testing.T) {
	t.Parallel()
	p := newPair(t, "bad")
	code, _, out := p.up(t, "--cmdline", "ip=192.0.2.9::192.0.2.1:255.0.255.0::eth0:none", "eth0")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(out, "255.0.255.0") || !strings.Contains(out, "netmask") {
		t.Errorf("message does not name the bad field:\n%s", out)
	}
	if got := kernelAddrs(t, p.cli.Handle(), "eth0", netlink.FAMILY_V4); len(got) != 0 {
		t.Errorf("addresses applied despite the error: %v", got)
	}
}

// TestUpStatic: a static ip= with gateway and DNS.
func TestUpStatic(t *testing.T) {
	t.Parallel()
	p := newPair(t, "st")
	code, st, _ := p.up(t, "--cmdline", "ip=192.0.2.9::192.0.2.1:255.255.255.0:node1:eth0:none:192.0.2.53", "eth0")
	requireReady(t, code, st)
	if got := addrsOf(st, "eth0", lease.SourceStatic); !slices.Equal(got, []string{"192.0.2.9/24"}) {
		t.Errorf("static addresses %v", got)
	}
	if got := kernelDefault(t, p.cli.Handle(), netlink.FAMILY_V4); got != "192.0.2.1" {
		t.Errorf("kernel default via %q", got)
	}
	if st.Hostname != "node1" || !slices.Equal(st.DNS, []string{"192.0.2.53"}) {
		t.Errorf("hostname %q dns %v", st.Hostname, st.DNS)
	}
}

func eui64(prefix string, mac net.HardwareAddr) string {
	ip := net.ParseIP(prefix)
	ip[8] = mac[0] ^ 0x02
	ip[9], ip[10] = mac[1], mac[2]
	ip[11], ip[12] = 0xff, 0xfe
	ip[13], ip[14], ip[15] = mac[3], mac[4], mac[5]
	return ip.String()
}

// TestFaultCarrierFlap: the carrier drops and comes back while DHCP is
// still trying (the server starts late); the lease is still acquired.
func TestFaultCarrierFlap(t *testing.T) {
	t.Parallel()
	p := newPair(t, "flap")
	run := p.start(t, "--cmdline", "ip=dhcp", "--timeout", "30s", "eth0")
	time.Sleep(1500 * time.Millisecond)
	p.srv.MustExec("ip", "link", "set", "s0", "down")
	time.Sleep(1500 * time.Millisecond)
	p.srv.MustExec("ip", "link", "set", "s0", "up")
	lab.Dnsmasq(t, p.srv, "s0", dhcpArgs...)
	code, st, _ := run.wait(t)
	requireReady(t, code, st)
	t.Logf("carrier flap: ready after %d ms", st.TimingsMS["ready"])
}
