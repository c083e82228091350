package wg

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/overlay/keys"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

const (
	echoEnv   = "NETINIT_WG_ECHO"    // address for TestEchoHelper to serve on
	gwPubEnv  = "NETINIT_WG_GW_PUB"  // the gateway's public key, for the child
	pubOutEnv = "NETINIT_WG_PUB_OUT" // where the child writes its public key
)

// TestEchoHelper is not a test: it is the TCP echo server the lab starts
// inside the "IPv6 internet" namespace (the test binary re-executed there).
func TestEchoHelper(t *testing.T) {
	addr := os.Getenv(echoEnv)
	if addr == "" {
		t.Skip("helper process only")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}

// nodeResult is what the node-side child reports.
type nodeResult struct {
	StartErr     string
	StartTook    time.Duration
	Handshake    bool
	Echo         string
	EchoErr      string
	State        *state.WireGuard
	StateJSON    string
	Logs         []string
	Problems     []string
	KernelAddrs  []string
	Routes       []string
	V4Default    string
	Leaks        []string // where the private key was found
	LinkGoneErr  string   // error looking up wg0 after Close (want not found)
	StateAfterHS *state.WireGuard
	// StartProblems are the problems right after Start.
	StartProblems []string
}

// leaks returns where any spelling of the private key in dir shows up.
func leaks(t *testing.T, dir string, texts map[string]string) []string {
	priv, _, err := keys.LoadCurve25519(dir, KeyName)
	if err != nil {
		t.Fatalf("reading back the key: %v", err)
	}
	var out []string
	for where, s := range texts {
		for _, k := range newRedactor(priv) {
			if strings.Contains(s, k) {
				out = append(out, where)
			}
		}
	}
	return out
}

// gwLab is the lab of the tunnel tests:
//
//	node (192.0.2.2, IPv4 only, wg0 2001:db8:1::2)
//	  └ nat (192.0.2.1 | 203.0.113.2, nft masquerade, DNS on 192.0.2.1)
//	      └ gw (203.0.113.1:51820, wireguard-go, 2001:db8:1::1 | 2001:db8:ffff::1)
//	          └ inet (2001:db8:ffff::2, TCP echo server on port 7777)
type gwLab struct {
	node, nat, gw, inet *lab.NS
	gwIf, gwPub         string
	gwProc              *lab.Proc
}

func newGWLab(t *testing.T) *gwLab {
	lab.Require(t, "ip", "wg", "nft", "go", "dnsmasq")
	lab.GuardResolvConf(t)
	wggo := lab.BuildWireguardGo(t)
	l := &gwLab{}
	node, nat, gw, inet := lab.NewNS(t, "wgnode"), lab.NewNS(t, "wgnat"), lab.NewNS(t, "wggw"), lab.NewNS(t, "wginet")
	l.node, l.nat, l.gw, l.inet = node, nat, gw, inet
	lab.Veth(t, node, "eth0", nat, "lan0")
	lab.Veth(t, nat, "wan0", gw, "up0")
	lab.Veth(t, gw, "v6net", inet, "eth0")
	node.MustExec("ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	node.MustExec("ip", "route", "add", "default", "via", "192.0.2.1")
	// IPv4 only: no IPv6 at all on the node's uplink.
	node.MustExec("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
	// The node's resolver is the NAT router (the tests start dnsmasq there).
	if err := os.WriteFile(filepath.Join("/etc/netns", node.Name, "resolv.conf"), []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nat.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "lan0")
	nat.MustExec("ip", "addr", "add", "203.0.113.2/24", "dev", "wan0")
	nat.MustExec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	rules := filepath.Join(t.TempDir(), "nat.nft")
	if err := os.WriteFile(rules, []byte(`table ip netinit_lab_nat {
	chain post {
		type nat hook postrouting priority 100; policy accept;
		oifname "wan0" masquerade
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	nat.MustExec("nft", "-f", rules)
	gw.MustExec("ip", "addr", "add", "203.0.113.1/24", "dev", "up0")
	gw.MustExec("ip", "addr", "add", "2001:db8:ffff::1/64", "dev", "v6net", "nodad")
	gw.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	inet.MustExec("ip", "addr", "add", "2001:db8:ffff::2/64", "dev", "eth0", "nodad")
	inet.MustExec("ip", "-6", "route", "add", "default", "via", "2001:db8:ffff::1")

	// The gateway: real wireguard-go, configured by wg(8).
	g := lab.NewGateway(t, gw, wggo, 51820, "2001:db8:1::1/64")
	l.gwIf, l.gwPub, l.gwProc = g.If, g.Public, g.Proc

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	echo := inet.Start("env", echoEnv+"=[2001:db8:ffff::2]:7777", exe, "-test.run=^TestEchoHelper$", "-test.v")
	if !lab.Eventually(10*time.Second, func() bool { return strings.Contains(echo.Output(), "listening") }) {
		t.Fatalf("echo server did not start:\n%s", echo.Output())
	}
	return l
}

// dnsmasqArgs makes dnsmasq a DNS-only server on the NAT router.
func dnsmasqArgs(dir string, extra ...string) []string {
	return append([]string{"ip", "netns", "exec", "", "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=53",
		"--listen-address=192.0.2.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--log-queries",
		"--user=root", "--group=root", "--pid-file=" + filepath.Join(dir, "pid")}, extra...)
}

// dnsCmd prepares dnsmasq on the NAT router; the caller starts it (maybe
// late, from another goroutine); it is stopped at cleanup.
func (l *gwLab) dnsCmd(t *testing.T, extra ...string) *exec.Cmd {
	args := dnsmasqArgs(t.TempDir(), extra...)
	args[3] = l.nat.Name
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var out lab.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Cleanup(func() {
		cancel()
		if cmd.Process != nil {
			_ = cmd.Wait()
		}
		t.Logf("dnsmasq:\n%s", out.String())
	})
	return cmd
}

// addPeerWhenKnown waits (bounded) for the child to write its public key
// to pubOut, runs then(), and adds the node as a peer on the gateway. It
// runs in its own goroutine (the test goroutine is in RunChild) and so
// never calls t; the error goes to the returned channel.
func (l *gwLab) addPeerWhenKnown(pubOut string, then func() error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		var pub []byte
		if !lab.Eventually(30*time.Second, func() bool {
			b, err := os.ReadFile(pubOut)
			pub = b
			return err == nil && len(b) > 0
		}) {
			errc <- fmt.Errorf("the child wrote no public key")
			return
		}
		if err := then(); err != nil {
			errc <- err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := l.gw.Exec(ctx, "wg", "set", l.gwIf, "peer", strings.TrimSpace(string(pub)), "allowed-ips", "2001:db8:1::2/128")
		if err != nil {
			err = fmt.Errorf("wg set peer: %v: %s", err, out)
		}
		errc <- err
	}()
	return errc
}

// TestTunnelThroughNAT: an IPv4-only node behind a NAT router dials a
// gateway running the real wireguard-go (configured with wg(8)) by name;
// the name does not resolve at Start (the DNS server is not up yet), is
// retried, and then IPv6 traffic flows through the tunnel to a TCP server.
func TestTunnelThroughNAT(t *testing.T) {
	if lab.Child() {
		childNode(t, false)
		return
	}
	l := newGWLab(t)
	node, gw, gwIf, gwProc := l.node, l.gw, l.gwIf, l.gwProc
	// The node's key is made by Start in the child; the child writes its
	// public key to pubOut and the gateway learns it from there. Only
	// then does the DNS server start.
	pubOut := filepath.Join(t.TempDir(), "node.pub")
	dns := l.dnsCmd(t, "--address=/gw.lab.test/203.0.113.1")
	gwErr := l.addPeerWhenKnown(pubOut, dns.Start)
	var res nodeResult
	lab.RunChild(t, node, 60*time.Second, []string{gwPubEnv + "=" + l.gwPub, pubOutEnv + "=" + pubOut}, &res)
	if err := <-gwErr; err != nil {
		t.Fatal(err)
	}
	nodePub, _ := os.ReadFile(pubOut)

	if res.StartErr != "" {
		t.Fatalf("Start: %s", res.StartErr)
	}
	t.Logf("Start took %s; logs:\n%s\nstate: %s", res.StartTook, strings.Join(res.Logs, "\n"), res.StateJSON)
	if len(res.StartProblems) != 1 || !strings.Contains(res.StartProblems[0], "gw.lab.test") {
		t.Errorf("problems after Start = %q, want the name that did not resolve yet", res.StartProblems)
	}
	if len(res.Problems) != 0 {
		t.Errorf("problems after the name resolved = %q", res.Problems)
	}
	if !res.Handshake {
		t.Fatalf("no handshake with the gateway; state %s\ngateway:\n%s", res.StateJSON, gwProc.Output())
	}
	if res.Echo != "hello through wireguard" {
		t.Fatalf("echo through the tunnel = %q (%s)", res.Echo, res.EchoErr)
	}
	st := res.State
	if st == nil || st.Interface != "wg0" || st.PublicKey != strings.TrimSpace(string(nodePub)) || len(st.Peers) != 1 {
		t.Fatalf("state = %s", res.StateJSON)
	}
	p := st.Peers[0]
	if p.PublicKey != l.gwPub || p.Endpoint != "203.0.113.1:51820" || p.LastHandshake == nil ||
		time.Since(*p.LastHandshake) > time.Minute || p.RxBytes == 0 || p.TxBytes == 0 {
		t.Fatalf("peer state = %+v", p)
	}
	if res.StateAfterHS == nil || res.StateAfterHS.Peers[0].RxBytes <= 0 || p.RxBytes <= res.StateAfterHS.Peers[0].RxBytes {
		t.Errorf("rx bytes did not grow with the echo: %+v then %+v", res.StateAfterHS, p)
	}
	if !slices.Contains(res.KernelAddrs, "2001:db8:1::2/128") {
		t.Errorf("wg0 addresses in the kernel = %v", res.KernelAddrs)
	}
	if !slices.Contains(res.Routes, fmt.Sprintf("::/0 dev wg0 metric %d", DefaultRouteMetric)) {
		t.Errorf("routes = %v, want ::/0 via wg0 with metric %d", res.Routes, DefaultRouteMetric)
	}
	if res.V4Default != "192.0.2.1" {
		t.Errorf("the uplink's IPv4 default route is now via %q", res.V4Default)
	}
	if len(res.Leaks) != 0 {
		t.Errorf("the private key appears in %v", res.Leaks)
	}
	if !strings.Contains(res.LinkGoneErr, "not found") {
		t.Errorf("wg0 after Close: %q, want gone", res.LinkGoneErr)
	}

	// The gateway sees the node at the NAT router's public address.
	out := gw.MustExec("wg", "show", gwIf, "endpoints")
	if !strings.Contains(out, strings.TrimSpace(string(nodePub))+"\t203.0.113.2:") {
		t.Fatalf("gateway endpoints:\n%s\nwant the node at 203.0.113.2", out)
	}
	hs := gw.MustExec("wg", "show", gwIf, "latest-handshakes")
	if f := strings.Fields(hs); len(f) != 2 || f[1] == "0" {
		t.Fatalf("gateway latest-handshakes: %q", hs)
	}
}

// TestEndpointReResolve: the gateway's name first points to an address
// where nobody answers; then the name is changed (the gateway "moved").
// After StaleAfter without a handshake the node resolves the name again,
// switches the endpoint and the tunnel comes up.
func TestEndpointReResolve(t *testing.T) {
	if lab.Child() {
		childNode(t, true)
		return
	}
	l := newGWLab(t)
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("203.0.113.7 gw.lab.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dns := l.dnsCmd(t, "--addn-hosts="+hosts)
	if err := dns.Start(); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	if !lab.Eventually(5*time.Second, func() bool {
		out, _ := l.nat.Exec(context.Background(), "ss", "-Hlun")
		return strings.Contains(out, "192.0.2.1:53")
	}) {
		t.Fatal("dnsmasq does not listen on 192.0.2.1:53")
	}
	pubOut := filepath.Join(t.TempDir(), "node.pub")
	gwErr := l.addPeerWhenKnown(pubOut, func() error {
		if err := os.WriteFile(hosts, []byte("203.0.113.1 gw.lab.test\n"), 0o644); err != nil {
			return err
		}
		return dns.Process.Signal(syscall.SIGHUP) // dnsmasq re-reads addn-hosts
	})
	var res nodeResult
	lab.RunChild(t, l.node, 60*time.Second, []string{gwPubEnv + "=" + l.gwPub, pubOutEnv + "=" + pubOut}, &res)
	if err := <-gwErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %s; logs:\n%s\nstate: %s", res.StartTook, strings.Join(res.Logs, "\n"), res.StateJSON)
	if res.StartErr != "" {
		t.Fatalf("Start: %s", res.StartErr)
	}
	if len(res.StartProblems) != 0 {
		t.Errorf("problems after Start = %q, want none (the name resolved)", res.StartProblems)
	}
	if !res.Handshake || res.Echo != "hello through wireguard" {
		t.Fatalf("no tunnel after the name changed: handshake %v, echo %q (%s)\ngateway:\n%s", res.Handshake, res.Echo, res.EchoErr, l.gwProc.Output())
	}
	if ep := res.State.Peers[0].Endpoint; ep != "203.0.113.1:51820" {
		t.Errorf("endpoint = %s, want 203.0.113.1:51820", ep)
	}
	if logs := strings.Join(res.Logs, "\n"); !strings.Contains(logs, "now 203.0.113.1:51820 (was 203.0.113.7:51820)") {
		t.Errorf("no log line about the endpoint change:\n%s", logs)
	}
	if len(res.Leaks) != 0 {
		t.Errorf("the private key appears in %v", res.Leaks)
	}
}

// childSetup begins a child half: its result, written for the test when
// the child ends, a key dir as private as netinit's, and a log recorder.
func childSetup(t *testing.T) (*nodeResult, string, *lab.Logs) {
	res := &nodeResult{}
	t.Cleanup(func() { lab.ChildResult(t, res) })
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o700) // a key dir open to others is reported
	return res, dir, &lab.Logs{}
}

// snapshot records what the tunnel says now: its state (also as JSON),
// the log so far and its problems.
func (r *nodeResult) snapshot(tun *Tunnel, logs *lab.Logs) {
	r.State = tun.State()
	b, _ := json.Marshal(r.State)
	r.StateJSON = string(b)
	r.Logs = logs.Lines()
	r.Problems = tun.Problems()
}

// childNode is the node's half of TestTunnelThroughNAT and
// TestEndpointReResolve (quickStale: a peer is stale after 3 s).
func childNode(t *testing.T, quickStale bool) {
	if quickStale {
		staleAfter = 3 * time.Second
	}
	res, dir, rec := childSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := time.Now()
	tun, err := Start(ctx, Options{
		KeyDir:    dir,
		IfName:    "wg0",
		Addresses: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::2/128")},
		Peers: []Peer{{
			PublicKey:  os.Getenv(gwPubEnv),
			Endpoint:   "gw.lab.test:51820",
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("::/0")},
		}},
		Logf: rec.Logf,
	})
	res.StartTook = time.Since(start)
	if err != nil {
		res.StartErr = err.Error()
		return
	}
	res.StartProblems = tun.Problems()
	defer func() {
		tun.Close()
		_, err := netlink.LinkByName("wg0")
		res.LinkGoneErr = fmt.Sprint(err)
	}()
	if err := os.WriteFile(os.Getenv(pubOutEnv), []byte(tun.State().PublicKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res.Handshake = lab.Eventually(30*time.Second, func() bool {
		st := tun.State()
		return len(st.Peers) == 1 && st.Peers[0].LastHandshake != nil
	})
	res.StateAfterHS = tun.State()
	if res.Handshake {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", "[2001:db8:ffff::2]:7777")
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			msg := "hello through wireguard"
			buf := make([]byte, len(msg))
			if _, err = c.Write([]byte(msg)); err == nil {
				_, err = io.ReadFull(c, buf)
			}
			res.Echo = string(buf)
			c.Close()
		}
		if err != nil {
			res.EchoErr = err.Error()
		}
	}
	res.snapshot(tun, rec)
	if l, err := netlink.LinkByName("wg0"); err == nil {
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range addrs {
			res.KernelAddrs = append(res.KernelAddrs, a.IPNet.String())
		}
		routes, _ := netlink.RouteList(l, netlink.FAMILY_V6)
		for _, r := range routes {
			dst := "::/0"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			res.Routes = append(res.Routes, fmt.Sprintf("%s dev wg0 metric %d", dst, r.Priority))
		}
	}
	if rs, err := netlink.RouteList(nil, netlink.FAMILY_V4); err == nil {
		for _, r := range rs {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				res.V4Default = r.Gw.String()
			}
		}
	}
	res.Leaks = leaks(t, dir, map[string]string{
		"state":  res.StateJSON,
		"logs":   strings.Join(res.Logs, "\n"),
		"errors": res.EchoErr + strings.Join(res.Problems, "\n"),
	})
}

// TestStartDoesNotWait: a peer whose endpoint name does not resolve and a
// peer that never answers don't delay Start; neither shows a handshake;
// the name is reported as a problem and in the logs; nothing leaks the
// private key.
func TestStartDoesNotWait(t *testing.T) {
	if lab.Child() {
		childNoPeers(t)
		return
	}
	lab.Require(t, "ip")
	lab.GuardResolvConf(t)
	node, void := lab.NewNS(t, "wgnd"), lab.NewNS(t, "wgvoid")
	lab.Link(t, node, "eth0", []string{"192.0.2.2/24"}, void, "eth0", []string{"192.0.2.1/24"})
	// 198.51.100.9 is routed to a namespace that does not forward: the
	// handshake initiations vanish.
	node.MustExec("ip", "route", "add", "default", "via", "192.0.2.1")
	var res nodeResult
	lab.RunChild(t, node, 30*time.Second, nil, &res)
	if res.StartErr != "" {
		t.Fatalf("Start: %s", res.StartErr)
	}
	if res.StartTook > 3*time.Second {
		t.Errorf("Start took %s", res.StartTook)
	}
	if res.Handshake {
		t.Errorf("a handshake with a peer that isn't there: %s", res.StateJSON)
	}
	if len(res.State.Peers) != 2 || res.State.Peers[0].Endpoint != "gw.invalid:51820" || res.State.Peers[1].Endpoint != "198.51.100.9:51820" {
		t.Errorf("state = %s", res.StateJSON)
	}
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "gw.invalid") {
		t.Errorf("problems = %q, want the unresolvable name", res.Problems)
	}
	if !strings.Contains(strings.Join(res.Logs, "\n"), "gw.invalid") {
		t.Errorf("logs don't mention the name: %q", res.Logs)
	}
	// The silent peer was tried (handshake initiations count in
	// tx_bytes) and never answered; the unresolved one had nothing sent.
	if p := res.State.Peers[1]; p.TxBytes == 0 || p.RxBytes != 0 {
		t.Errorf("silent peer: %+v, want initiations sent and nothing received", p)
	}
	if p := res.State.Peers[0]; p.TxBytes != 0 || p.RxBytes != 0 {
		t.Errorf("unresolved peer: %+v, want no traffic", p)
	}
	if len(res.Leaks) != 0 {
		t.Errorf("the private key appears in %v", res.Leaks)
	}
	if !strings.Contains(res.LinkGoneErr, "not found") {
		t.Errorf("wg0 after Close: %q, want gone", res.LinkGoneErr)
	}
}

func childNoPeers(t *testing.T) {
	res, dir, rec := childSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("a", 32)))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("b", 32)))
	start := time.Now()
	tun, err := Start(ctx, Options{
		KeyDir:    dir,
		Addresses: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::2/128")},
		Peers: []Peer{
			{PublicKey: k1, Endpoint: "gw.invalid:51820", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/48")}},
			{PublicKey: k2, Endpoint: "198.51.100.9:51820", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("::/0")}},
		},
		Logf: rec.Logf,
	})
	res.StartTook = time.Since(start)
	if err != nil {
		res.StartErr = err.Error()
		return
	}
	defer func() {
		tun.Close()
		_, err := netlink.LinkByName(DefaultIfName)
		res.LinkGoneErr = fmt.Sprint(err)
	}()
	// Give the handshakes time to (not) happen, and the retry loop time
	// to retry the name at least once.
	res.Handshake = lab.Eventually(3*time.Second, func() bool {
		for _, p := range tun.State().Peers {
			if p.LastHandshake != nil {
				return true
			}
		}
		return false
	})
	res.snapshot(tun, rec)
	res.StateAfterHS = res.State
	res.Leaks = leaks(t, dir, map[string]string{
		"state":    res.StateJSON,
		"logs":     strings.Join(res.Logs, "\n"),
		"problems": strings.Join(res.Problems, "\n"),
	})
}
