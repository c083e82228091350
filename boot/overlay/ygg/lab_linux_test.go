package ygg

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/overlay/firewall"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// The lab runs each Yggdrasil node as this test binary re-executed in the
// node's namespace (the TUN lives there): TestHelperNode below, driven by
// environment variables. It prints its state as "STATE {json}" lines and
// stays up until killed (bounded by helperLife).

const (
	envRole    = "NETINIT_YGG_ROLE" // "node" or "dial"
	envKeyDir  = "NETINIT_YGG_KEYDIR"
	envPeers   = "NETINIT_YGG_PEERS"
	envListen  = "NETINIT_YGG_LISTEN"
	envAllow   = "NETINIT_YGG_ALLOW" // firewall allow list, "9900/tcp"
	envServe   = "NETINIT_YGG_SERVE" // TCP ports to serve "hello PORT" on
	envDial    = "NETINIT_YGG_DIAL"  // [addr]:port
	envDialFor = "NETINIT_YGG_DIAL_FOR"
	envLAN     = "NETINIT_YGG_LAN" // multicast on eth0 with this LANPeers
	helperLife = 90 * time.Second
	labPort    = "12345"
)

func helperEnv(kv ...string) []string { return append(os.Environ(), kv...) }

// TestHelperNode is a Yggdrasil node process for the lab tests.
func TestHelperNode(t *testing.T) {
	switch os.Getenv(envRole) {
	case "node":
		helperNode(t)
	case "dial":
		helperDial(t)
	default:
		t.Skip("helper process for the lab tests")
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func helperNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), helperLife)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	kick := make(chan os.Signal, 1)
	signal.Notify(kick, syscall.SIGUSR1)
	defer signal.Stop(kick)

	o := Options{
		KeyDir: os.Getenv(envKeyDir),
		Peers:  split(os.Getenv(envPeers)),
		Listen: split(os.Getenv(envListen)),
		Logf:   func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
	}
	if v := os.Getenv(envLAN); v != "" {
		o.Multicast, o.MulticastLinks = true, []string{"^eth0$"}
		fmt.Sscan(v, &o.LANPeers)
	}
	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if a := os.Getenv(envAllow); a != "" {
		var allow []spec.Port
		for _, p := range split(a) {
			var port uint16
			var proto string
			if _, err := fmt.Sscanf(strings.Replace(p, "/", " ", 1), "%d %s", &port, &proto); err != nil {
				t.Fatal(err)
			}
			pr, err := spec.ParseProto(proto)
			if err != nil {
				t.Fatal(err)
			}
			allow = append(allow, spec.Port{Port: port, Proto: pr})
		}
		r := firewall.Rules{Interfaces: []string{DefaultIfName}, Allow: allow}
		if err := firewall.Apply(r); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("FIREWALL %q\n", firewall.Describe(r))
	}
	var lns []net.Listener
	for _, p := range split(os.Getenv(envServe)) {
		// The address may still be tentative (DAD on ygg0) for a moment.
		var ln net.Listener
		if !lab.Eventually(5*time.Second, func() bool {
			ln, err = net.Listen("tcp6", net.JoinHostPort(n.Address(), p))
			return err == nil
		}) {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		go func(port string) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hello %s\n", port)
				c.Close()
			}
		}(p)
		// Prove that the service answers (locally, not through ygg0),
		// so that a dropped connection in the test is the firewall's
		// doing.
		if msg, err := fetch(ctx, net.JoinHostPort(n.Address(), p), time.Second); err != nil || msg != "hello "+p {
			t.Fatalf("local check of port %s: %q %v", p, msg, err)
		}
		fmt.Printf("SERVING %s\n", p)
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := json.Marshal(n.State())
		fmt.Printf("STATE %s\n", b)
		if n.lan != nil {
			var ks []string
			for _, p := range n.lan.lanPeers() {
				ks = append(ks, hex.EncodeToString(p.key[:]))
			}
			fmt.Printf("LAN %s\n", strings.Join(ks, ","))
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
			fmt.Println("KICK")
			n.Kick()
		case <-tick.C:
		}
	}
}

// fetch connects to addr and reads one line.
func fetch(ctx context.Context, addr string, timeout time.Duration) (string, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp6", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// helperDial dials NETINIT_YGG_DIAL, retrying for NETINIT_YGG_DIAL_FOR,
// and reports "DIAL ok <greeting>" or "DIAL fail <error>".
func helperDial(t *testing.T) {
	d, _ := time.ParseDuration(os.Getenv(envDialFor))
	ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Second)
	defer cancel()
	end := time.Now().Add(d)
	for {
		msg, err := fetch(ctx, os.Getenv(envDial), 2*time.Second)
		if err == nil {
			fmt.Printf("DIAL ok %s\n", msg)
			return
		}
		if time.Now().After(end) {
			fmt.Printf("DIAL fail %v\n", err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// labTest skips in a helper process (the lab tests re-execute this
// binary) and checks what a lab with Yggdrasil nodes needs: root, env(1),
// tools, /dev/net/tun; the host's resolv.conf is guarded.
func labTest(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getenv(envRole) != "" {
		t.Skip("helper")
	}
	lab.Require(t, append([]string{"env"}, tools...)...)
	lab.RequireTUN(t)
	lab.GuardResolvConf(t)
}

// node is a running helper node process.
type node struct {
	p  *lab.Proc
	ns *lab.NS
}

func startNode(t *testing.T, ns *lab.NS, env ...string) *node {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// lab.NS.Start passes the environment of the test on; the helper's
	// settings go through env(1).
	args := append([]string{"env", envRole + "=node"}, env...)
	args = append(args, exe, "-test.run=^TestHelperNode$", "-test.v", "-test.count=1")
	return &node{p: ns.Start(args...), ns: ns}
}

// state waits until the node reports a state satisfying ok.
func (n *node) state(t *testing.T, timeout time.Duration, what string, ok func(*state.Yggdrasil) bool) *state.Yggdrasil {
	t.Helper()
	var last *state.Yggdrasil
	if lab.Eventually(timeout, func() bool {
		out := n.p.Output()
		i := strings.LastIndex(out, "\nSTATE ")
		if i < 0 {
			return false
		}
		line := out[i+len("\nSTATE "):]
		j := strings.IndexByte(line, '\n')
		if j < 0 {
			return false
		}
		var s state.Yggdrasil
		if json.Unmarshal([]byte(line[:j]), &s) != nil {
			return false
		}
		last = &s
		return ok(&s)
	}) {
		return last
	}
	t.Fatalf("node in %s: no state with %s within %v; last %+v; output:\n%s", n.ns.Name, what, timeout, last, n.p.Output())
	return nil
}

func anyUp(s *state.Yggdrasil) bool {
	for _, p := range s.Peers {
		if p.Up {
			return true
		}
	}
	return false
}

// dial runs the dial helper in ns.
func dial(t *testing.T, ns *lab.NS, addr, port string, retryFor time.Duration) string {
	t.Helper()
	exe, _ := os.Executable()
	ctx, cancel := context.WithTimeout(context.Background(), retryFor+15*time.Second)
	defer cancel()
	out, err := ns.Exec(ctx, "env", envRole+"=dial", envDial+"="+net.JoinHostPort(addr, port), envDialFor+"="+retryFor.String(),
		exe, "-test.run=^TestHelperNode$", "-test.v", "-test.count=1")
	i := strings.Index(out, "DIAL ")
	if err != nil || i < 0 {
		t.Fatalf("dial helper in %s: %v\n%s", ns.Name, err, out)
	}
	return strings.TrimSpace(strings.SplitN(out[i+5:], "\n", 2)[0])
}

// TestHiddenNode: a node with only private IPv4 behind a NAT, no IPv6,
// peers out to a public node and becomes reachable on its Yggdrasil
// address, guarded by the firewall; its address survives a restart.
func TestHiddenNode(t *testing.T) {
	labTest(t, "nft")

	// hidden (192.0.2.2, private side) -- nat (masquerade) -- pub (198.51.100.1)
	hidden := lab.NewNS(t, "hidden")
	nat := lab.NewNS(t, "nat")
	pub := lab.NewNS(t, "pub")
	lab.Veth(t, hidden, "eth0", nat, "lan0")
	lab.Veth(t, nat, "wan0", pub, "eth0")
	hidden.MustExec("ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	hidden.MustExec("ip", "route", "add", "default", "via", "192.0.2.1")
	nat.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "lan0")
	nat.MustExec("ip", "addr", "add", "198.51.100.2/24", "dev", "wan0")
	nat.MustExec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	nat.MustExec("nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; add rule ip nat post oifname wan0 masquerade")
	pub.MustExec("ip", "addr", "add", "198.51.100.1/24", "dev", "eth0")
	// pub has no route to 192.0.2.0/24: only the NAT's address is seen.

	pubNode := startNode(t, pub, envKeyDir+"="+t.TempDir(), envListen+"=tcp://198.51.100.1:"+labPort)
	pubNode.state(t, 15*time.Second, "an address", func(s *state.Yggdrasil) bool { return s.Address != "" })

	keyDir := t.TempDir()
	peer := "tcp://198.51.100.1:" + labPort
	hiddenEnv := []string{envKeyDir + "=" + keyDir, envPeers + "=" + peer, envAllow + "=9900/tcp", envServe + "=9900,9901"}
	hid := startNode(t, hidden, hiddenEnv...)
	hs := hid.state(t, 20*time.Second, "its peer up", anyUp)
	t.Logf("hidden node: %+v", hs)
	if len(hs.Peers) != 1 || hs.Peers[0].URI != peer {
		t.Errorf("hidden peers %+v, want the configured URI", hs.Peers)
	}
	addr, err := netip.ParseAddr(hs.Address)
	if err != nil || !netip.MustParsePrefix("200::/7").Contains(addr) {
		t.Fatalf("hidden address %q not in 200::/7", hs.Address)
	}
	sub, err := netip.ParsePrefix(hs.Subnet)
	if err != nil || sub.Bits() != 64 || !netip.MustParsePrefix("300::/8").Contains(sub.Addr()) {
		t.Errorf("subnet %q not a 300::/64", hs.Subnet)
	}
	if len(hs.PublicKey) != 64 {
		t.Errorf("public key %q", hs.PublicKey)
	}

	// The public node sees the hidden one coming from the NAT's address.
	pubNode.state(t, 10*time.Second, "an inbound peer from the NAT", func(s *state.Yggdrasil) bool {
		for _, p := range s.Peers {
			if p.Up && strings.Contains(p.URI, "198.51.100.2:") {
				return true
			}
		}
		return false
	})

	// The kernel holds ygg0 with the address and the 200::/7 route.
	h := hidden.Handle()
	l, err := h.LinkByName(DefaultIfName)
	if err != nil {
		t.Fatalf("no %s in the hidden namespace: %v", DefaultIfName, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 || l.Attrs().MTU != 65535 {
		t.Errorf("%s flags %v mtu %d", DefaultIfName, l.Attrs().Flags, l.Attrs().MTU)
	}
	addrs, _ := h.AddrList(l, netlink.FAMILY_V6)
	found := false
	for _, a := range addrs {
		if a.IP.String() == hs.Address {
			ones, _ := a.Mask.Size()
			found = ones == 7
		}
	}
	if !found {
		t.Errorf("%s lacks %s/7: %v", DefaultIfName, hs.Address, addrs)
	}
	routes, _ := h.RouteList(l, netlink.FAMILY_V6)
	found = false
	for _, r := range routes {
		if r.Dst != nil && r.Dst.String() == "200::/7" {
			found = true
		}
	}
	if !found {
		t.Errorf("no 200::/7 route on %s: %v", DefaultIfName, routes)
	}

	// Over the overlay, from the public node's namespace: the allowed
	// port answers, another one (served too) is dropped by the firewall.
	if got := dial(t, pub, hs.Address, "9900", 15*time.Second); got != "ok hello 9900" {
		t.Fatalf("allowed port over ygg: %s", got)
	}
	if got := dial(t, pub, hs.Address, "9901", 0); !strings.HasPrefix(got, "fail") || !strings.Contains(got, "timeout") {
		t.Errorf("port not allowed over ygg: %s, want a timeout (dropped)", got)
	}

	// Restart with the same key directory: same identity and address.
	hid.p.Stop()
	if !lab.Eventually(5*time.Second, func() bool { _, err := h.LinkByName(DefaultIfName); return err != nil }) {
		t.Fatalf("%s still there after the node stopped", DefaultIfName)
	}
	hid2 := startNode(t, hidden, hiddenEnv...)
	hs2 := hid2.state(t, 20*time.Second, "its peer up", anyUp)
	if hs2.Address != hs.Address || hs2.PublicKey != hs.PublicKey {
		t.Errorf("after restart: %s %s, before %s %s", hs2.Address, hs2.PublicKey, hs.Address, hs.PublicKey)
	}
	if got := dial(t, pub, hs.Address, "9900", 15*time.Second); got != "ok hello 9900" {
		t.Errorf("allowed port after restart: %s", got)
	}
}

// TestKick: after its peer was unreachable for a while, yggdrasil-go
// backs off (2 s, 4 s, 8 s, ...); Kick makes the node retry at once. The
// peer's namespace refuses the connections with an nftables rule whose
// counter shows each attempt: after the third, the library waits 8 s;
// the rule is lifted, and only the Kick may connect before that.
func TestKick(t *testing.T) {
	labTest(t, "nft")
	hidden := lab.NewNS(t, "kickh")
	pub := lab.NewNS(t, "kickp")
	lab.Veth(t, hidden, "eth0", pub, "eth0")
	hidden.MustExec("ip", "addr", "add", "203.0.113.2/24", "dev", "eth0")
	pub.MustExec("ip", "addr", "add", "203.0.113.1/24", "dev", "eth0")
	pub.MustExec("nft", "add", "table", "inet", "kick")
	pub.MustExec("nft", "add", "chain", "inet", "kick", "in", "{ type filter hook input priority 0; }")
	pub.MustExec("nft", "add", "rule", "inet", "kick", "in", "tcp", "dport", labPort, "counter", "reject", "with", "tcp", "reset")
	attempts := func() int {
		out := pub.MustExec("nft", "list", "chain", "inet", "kick", "in")
		var n int
		if i := strings.Index(out, "counter packets "); i >= 0 {
			fmt.Sscan(out[i+len("counter packets "):], &n)
		}
		return n
	}

	pubNode := startNode(t, pub, envKeyDir+"="+t.TempDir(), envListen+"=tcp://203.0.113.1:"+labPort)
	pubNode.state(t, 10*time.Second, "an address", func(s *state.Yggdrasil) bool { return s.Address != "" })
	hid := startNode(t, hidden, envKeyDir+"="+t.TempDir(), envPeers+"=tcp://203.0.113.1:"+labPort)
	// Attempts at about 0, 2 and 6 s; the next one is due 8 s after the third.
	if !lab.Eventually(20*time.Second, func() bool { return attempts() >= 3 }) {
		t.Fatalf("%d connection attempts in 20 s, want 3", attempts())
	}
	// Lift the refusal; count what gets through from now on.
	pub.MustExec("nft", "flush", "chain", "inet", "kick", "in")
	pub.MustExec("nft", "add", "rule", "inet", "kick", "in", "tcp", "dport", labPort, "tcp", "flags", "syn", "counter")
	if s := hid.state(t, 5*time.Second, "a state", func(*state.Yggdrasil) bool { return true }); anyUp(s) {
		t.Fatalf("peer up before Kick: %+v", s)
	}
	if n := attempts(); n != 0 {
		t.Fatalf("%d connection attempts before Kick, within the library's 8 s backoff", n)
	}
	out, err := hidden.Exec(context.Background(), "ip", "netns", "pids", hidden.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		var pid int
		fmt.Sscan(f, &pid)
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGUSR1)
		}
	}
	hid.state(t, 3*time.Second, "its peer up after Kick", anyUp)
	if n := attempts(); n < 1 {
		t.Errorf("peer up but no connection attempt counted after Kick")
	}
}

// lanPeers is the node's last reported LAN peers (hex keys, sorted), or
// nil before the first report.
func (n *node) lanPeers() []string {
	out := n.p.Output()
	i := strings.LastIndex(out, "\nLAN ")
	if i < 0 {
		return nil
	}
	line, _, ok := strings.Cut(out[i+len("\nLAN "):], "\n")
	if !ok {
		return nil
	}
	return append([]string{}, split(line)...)
}

// TestLANPeering: nodes on one bridge, each bounded to 2 LAN peers (one
// ring: the nearest key on each side), converge to exactly the pairs
// lanNeighbours chooses, re-choose when a node comes, drop the pairing
// the newcomer replaced, and reach each other over several hops.
func TestLANPeering(t *testing.T) {
	labTest(t)
	const k, count = 2, 6
	hub := lab.NewNS(t, "lanhub")
	hub.MustExec("ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	hub.MustExec("ip", "link", "set", "br0", "up")
	var nodes []*node
	var nss []*lab.NS
	add := func(i int) {
		ns := lab.NewNS(t, fmt.Sprintf("lan%d", i))
		ns.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
		lab.Veth(t, hub, fmt.Sprintf("p%d", i), ns, "eth0")
		hub.MustExec("ip", "link", "set", fmt.Sprintf("p%d", i), "master", "br0")
		nodes = append(nodes, startNode(t, ns, envKeyDir+"="+t.TempDir(), fmt.Sprintf("%s=%d", envLAN, k), envServe+"=9900"))
		nss = append(nss, ns)
	}
	for i := range count {
		add(i)
	}
	keyOf := func(n *node) key {
		s := n.state(t, 20*time.Second, "an address", func(s *state.Yggdrasil) bool { return s.Address != "" })
		var x key
		b, err := hex.DecodeString(s.PublicKey)
		if err != nil || len(b) != len(x) {
			t.Fatalf("public key %q", s.PublicKey)
		}
		copy(x[:], b)
		return x
	}
	converge := func(what string) []key {
		t.Helper()
		var keys []key
		for _, n := range nodes {
			keys = append(keys, keyOf(n))
		}
		want := map[*node]string{}
		for i, n := range nodes {
			var ws []string
			for _, y := range lanNeighbours(keys[i], keys, k) {
				ws = append(ws, hex.EncodeToString(y[:]))
			}
			want[n] = strings.Join(ws, ",")
		}
		ok := lab.Eventually(60*time.Second, func() bool {
			for _, n := range nodes {
				if strings.Join(n.lanPeers(), ",") != want[n] {
					return false
				}
			}
			return true
		})
		for i, n := range nodes {
			got := n.lanPeers()
			if len(got) > k {
				t.Errorf("%s: node %d has %d LAN peers, bound %d", what, i, len(got), k)
			}
			if !ok && strings.Join(got, ",") != want[n] {
				t.Errorf("%s: node %d LAN peers %v, want %s", what, i, got, want[n])
			}
		}
		if !ok {
			t.Fatalf("%s: LAN peers did not converge within 60s", what)
		}
		return keys
	}
	converge(fmt.Sprintf("%d nodes", count))
	add(count)
	keys := converge(fmt.Sprintf("%d nodes", count+1))
	// The newcomer split one ring pairing: its caller dropped it.
	if !slices.ContainsFunc(nodes, func(n *node) bool { return strings.Contains(n.p.Output(), "LAN: dropping peer") }) {
		t.Errorf("no node dropped the pairing the newcomer took over")
	}
	// The two nodes farthest apart on the ring (3 hops with 7 nodes and
	// 2 peers each) reach each other over Yggdrasil.
	order := append([]key(nil), keys...)
	slices.SortFunc(order, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	idx := func(x key) int { return slices.Index(keys, x) }
	from, to := idx(order[0]), idx(order[len(order)/2])
	addr := nodes[to].state(t, time.Second, "an address", func(s *state.Yggdrasil) bool { return s.Address != "" }).Address
	if got := dial(t, nss[from], addr, "9900", 20*time.Second); got != "ok hello 9900" {
		t.Fatalf("node %d to node %d over %d ring hops: %s", from, to, len(order)/2, got)
	}
}
