package netprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
)

// The lab: node -- router -- internet.
//
//	node      eth0  192.168.1.2/24  2001:db8:1::2/64   defaults via the router
//	router    lan0  192.168.1.1/24  2001:db8:1::1/64   forwarding, IPv4 masquerade
//	          wan0  198.51.100.1/24 2001:db8:ff::1/64  nftables firewall (tests only)
//	internet  wan0  198.51.100.2/24 2001:db8:ff::2/64  reflector :7007, target :8080
//	                198.51.100.77 (a third party, listener :9999)
//
// The node's IPv6 is public (2001:db8::/32 counts as public here, see
// TestMain); its IPv4 is RFC 1918 behind NAT. The reflector and the
// target run in the internet namespace as this test binary re-executed
// (TestLabReflectorHelper); the node side runs Probe as a re-executed
// child (lab.RunChild), on the addresses of its own links.

const (
	reflPort, targetPort, thirdPort = 7007, 8080, 9999
	serveEnv                        = "NETPROBE_LAB_SERVE" // "PER_MINUTE" for the helper
	nodeConfEnv                     = "NETPROBE_LAB_CONF"  // JSON Config for the node child
)

var (
	labRefl    = []string{"198.51.100.2:7007", "[2001:db8:ff::2]:7007"}
	labTargets = []string{"198.51.100.2:8080", "[2001:db8:ff::2]:8080"}
)

type labRig struct {
	node, router, inet *lab.NS
	refl               *lab.Proc
}

// newLab builds the three namespaces and starts the reflector. firewall
// is the nftables ruleset for the router (besides NAT) or "".
func newLab(t *testing.T, tag, firewall string, perMinute int) *labRig {
	t.Helper()
	lab.Require(t, "ip", "nft")
	lab.GuardResolvConf(t)
	r := &labRig{node: lab.NewNS(t, tag+"n"), router: lab.NewNS(t, tag+"r"), inet: lab.NewNS(t, tag+"i")}
	// No duplicate address detection: link-local addresses are usable at
	// once, so neighbour discovery works from the first packet.
	for _, ns := range []*lab.NS{r.node, r.router, r.inet} {
		ns.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	lab.Link(t, r.node, "eth0", []string{"192.168.1.2/24", "2001:db8:1::2/64"},
		r.router, "lan0", []string{"192.168.1.1/24", "2001:db8:1::1/64"})
	lab.Link(t, r.router, "wan0", []string{"198.51.100.1/24", "2001:db8:ff::1/64"},
		r.inet, "wan0", []string{"198.51.100.2/24", "198.51.100.77/24", "2001:db8:ff::2/64"})
	r.router.MustExec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	r.router.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	r.node.MustExec("ip", "route", "add", "default", "via", "192.168.1.1")
	r.node.MustExec("ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")
	// The internet knows no route to 192.168.1.0/24: IPv4 only works
	// through the router's NAT.
	r.inet.MustExec("ip", "-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8:ff::1")
	rules := `table ip nat {
	chain post { type nat hook postrouting priority srcnat; policy accept; oifname "wan0" masquerade; }
}
` + firewall
	f := t.TempDir() + "/rules.nft"
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	r.router.MustExec("nft", "-f", f)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r.refl = r.inet.Start("env", serveEnv+"="+strconv.Itoa(perMinute), exe, "-test.run=^TestLabReflectorHelper$", "-test.v", "-test.count=1")
	if !lab.Eventually(10*time.Second, func() bool { return strings.Contains(r.refl.Output(), "READY") }) {
		t.Fatalf("reflector did not start:\n%s", r.refl.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reflector output:\n%s", r.refl.Output())
		}
	})
	return r
}

// firewalled drops new inbound connections to the LAN, IPv4 and IPv6,
// and counts what it drops (as a home router does).
const firewalled = `table inet fw {
	chain forward_lan {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "wan0" oifname "lan0" ct state new counter drop
	}
}
`

// probeNode runs Probe inside the node namespace with cfg, in the lab's
// Internet (its documentation ranges count as public).
func (r *labRig) probeNode(t *testing.T, cfg Config) Report {
	t.Helper()
	cfg.Internet = labInternet
	b, _ := json.Marshal(cfg)
	var rep Report
	lab.RunChild(t, r.node, 20*time.Second, []string{nodeConfEnv + "=" + string(b)}, &rep)
	t.Logf("report: %+v", rep)
	return rep
}

// nodeChild is the in-namespace half: Probe on this namespace's addresses.
func nodeChild(t *testing.T) {
	var cfg Config
	if err := json.Unmarshal([]byte(os.Getenv(nodeConfEnv)), &cfg); err != nil {
		t.Fatal(err)
	}
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, a := range ifAddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			addrs = append(addrs, p.Addr())
		}
	}
	lab.ChildResult(t, Probe(context.Background(), addrs, cfg))
}

func evidence(f Family) string { return strings.Join(f.Evidence, "\n") }

func TestLabFirewalledIPv6(t *testing.T) {
	if lab.Child() {
		nodeChild(t)
		return
	}
	r := newLab(t, "fw", firewalled, 100)
	start := time.Now()
	rep := r.probeNode(t, Config{Targets: labTargets, Reflectors: labRefl, Timeout: 2 * time.Second})
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("probe (with process start) took %v", took)
	}
	if rep.IPv6.Verdict != VerdictPublicOutbound || rep.IPv6.Inbound != InboundUnreachable || !rep.Hidden || !rep.Probed {
		t.Fatalf("firewalled IPv6: verdict %s inbound %s hidden %v; want public-outbound, unreachable, hidden\n%s",
			rep.IPv6.Verdict, rep.IPv6.Inbound, rep.Hidden, evidence(rep.IPv6))
	}
	ev := evidence(rep.IPv6)
	for _, want := range []string{
		"outbound TCP to [2001:db8:ff::2]:8080 ok",
		"reflector [2001:db8:ff::2]:7007: FAIL could not connect to [2001:db8:1::2]:",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("IPv6 evidence lacks %q:\n%s", want, ev)
		}
	}
	checkNAT(t, rep)
	// The kernel firewall really dropped the connect-backs.
	out := r.router.MustExec("nft", "list", "chain", "inet", "fw", "forward_lan")
	if strings.Contains(out, "counter packets 0 ") {
		t.Errorf("the router's drop rule never matched:\n%s", out)
	}
}

func TestLabOpenIPv6(t *testing.T) {
	if lab.Child() {
		nodeChild(t)
		return
	}
	lab.Require(t, "dnsmasq")
	r := newLab(t, "open", "", 100)
	// A DNS server in the internet, for the optional resolution probe.
	dir := t.TempDir()
	dns := r.inet.Start("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=198.51.100.2,2001:db8:ff::2", "--bind-interfaces", "--user=root", "--group=root",
		"--pid-file="+dir+"/pid", "--host-record=probe.test,198.51.100.9,2001:db8:ff::9")
	if !lab.Eventually(5*time.Second, func() bool { return strings.Contains(dns.Output(), "started") }) {
		t.Fatalf("dnsmasq did not start:\n%s", dns.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dns.Output())
		}
	})
	rep := r.probeNode(t, Config{Targets: labTargets, Reflectors: labRefl,
		DNSName: "probe.test", Resolvers: []string{"2001:db8:ff::2", "198.51.100.2:53"}})
	if rep.IPv6.Verdict != VerdictPublicInbound || rep.IPv6.Inbound != InboundReachable || rep.Hidden {
		t.Fatalf("open IPv6: verdict %s inbound %s hidden %v; want public-inbound, reachable, not hidden\n%s",
			rep.IPv6.Verdict, rep.IPv6.Inbound, rep.Hidden, evidence(rep.IPv6))
	}
	ev := evidence(rep.IPv6)
	for _, want := range []string{
		"reflector [2001:db8:ff::2]:7007: OK connected [2001:db8:1::2]:",
		"DNS probe.test via [2001:db8:ff::2]:53: ",
		"2001:db8:ff::9",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("IPv6 evidence lacks %q:\n%s", want, ev)
		}
	}
	if ev := evidence(rep.IPv4); !strings.Contains(ev, "DNS probe.test via 198.51.100.2:53: ") {
		t.Errorf("IPv4 evidence lacks the DNS answer (through NAT):\n%s", ev)
	}
	checkNAT(t, rep)
	if !strings.Contains(r.refl.Output(), "2001:db8:1::2: OK connected") {
		t.Errorf("the reflector's log does not show the connect-back:\n%s", r.refl.Output())
	}
}

// checkNAT: the node's IPv4 is private behind the router's masquerade;
// the reflector saw the router's address and could not connect back.
func checkNAT(t *testing.T, rep Report) {
	t.Helper()
	if rep.IPv4.Verdict != VerdictPrivate || rep.IPv4.Inbound != InboundUnreachable {
		t.Errorf("IPv4 behind NAT: verdict %s inbound %s, want private, unreachable\n%s", rep.IPv4.Verdict, rep.IPv4.Inbound, evidence(rep.IPv4))
	}
	ev := evidence(rep.IPv4)
	for _, want := range []string{
		"only private addresses (192.168.1.2: RFC 1918)",
		"outbound TCP to 198.51.100.2:8080 ok",
		"reflector 198.51.100.2:7007: FAIL could not connect to 198.51.100.1:", // the NAT's address
		"outbound works (through NAT)",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("IPv4 evidence lacks %q:\n%s", want, ev)
		}
	}
	if !slices.Equal(rep.IPv4.Addresses, []string{"192.168.1.2"}) || !slices.Equal(rep.IPv6.Addresses, []string{"2001:db8:1::2"}) {
		t.Errorf("addresses %v %v", rep.IPv4.Addresses, rep.IPv6.Addresses)
	}
}

// abuseResult is what the node child saw when abusing the reflector.
type abuseResult struct {
	Third   string   `json:"third"`
	Flood   []string `json:"flood"`
	Garbage string   `json:"garbage"`
	Long    string   `json:"long"`
}

func TestLabReflectorAbuse(t *testing.T) {
	if lab.Child() {
		ask := func(raw string) string {
			c, err := net.DialTimeout("tcp", "[2001:db8:ff::2]:7007", 2*time.Second)
			if err != nil {
				return "dial: " + err.Error()
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			go func() { _, _ = io.WriteString(c, raw) }()
			b, _ := io.ReadAll(c)
			return string(b)
		}
		nonce := NewNonce()
		var res abuseResult
		res.Third = ask(fmt.Sprintf("NETINIT-PROBE 1 %d %s 198.51.100.77\n", thirdPort, nonce))
		res.Garbage = ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		res.Long = ask(strings.Repeat("x", 1<<20))
		for range 6 {
			res.Flood = append(res.Flood, ask(Request{Port: 40000, Nonce: nonce}.String()+"\n"))
		}
		lab.ChildResult(t, res)
		return
	}
	r := newLab(t, "abus", "", 5)
	var res abuseResult
	lab.RunChild(t, r.node, 30*time.Second, nil, &res)
	if want := "ERR " + ErrNamesAddress.Error() + "\n"; res.Third != want {
		t.Errorf("request naming a third address: got %q, want %q", res.Third, want)
	}
	if strings.Contains(r.refl.Output(), "THIRD-CONN") {
		t.Errorf("the reflector connected to the third address:\n%s", r.refl.Output())
	}
	if res.Garbage != "ERR "+ErrNotProbe.Error()+"\n" {
		t.Errorf("garbage: got %q", res.Garbage)
	}
	if res.Long != "ERR line too long\n" {
		t.Errorf("over-long line: got %q", res.Long)
	}
	// 3 requests spent, 5 per minute: 2 more pass, then the limit.
	for i, a := range res.Flood {
		limited := a == "ERR rate limited\n"
		if limited != (i >= 2) {
			t.Errorf("flood request %d: %q", i, a)
		}
		if !limited && !strings.HasPrefix(a, "FAIL could not connect to [2001:db8:1::2]:40000") {
			t.Errorf("flood request %d not connected back to its source: %q", i, a)
		}
	}
}

func TestLabNoProbes(t *testing.T) {
	if lab.Child() {
		nodeChild(t)
		return
	}
	r := newLab(t, "none", firewalled, 100)
	start := time.Now()
	rep := r.probeNode(t, Config{})
	if took := time.Since(start); took > 3*time.Second || rep.TookMS > 50 {
		t.Errorf("probe without targets took %v (%d ms inside)", took, rep.TookMS)
	}
	if rep.IPv6.Verdict != VerdictPublicUnverified || rep.IPv4.Verdict != VerdictPrivate || rep.Hidden || rep.Probed {
		t.Fatalf("got %+v", rep)
	}
	if !slices.Contains(rep.IPv6.Evidence, "no probe targets or reflectors for this family (address-based verdict)") {
		t.Errorf("evidence does not say why: %q", rep.IPv6.Evidence)
	}
}

// TestLabReflectorHelper is the internet side, started by newLab in the
// internet namespace: the reflector on [::]:7007, a TCP target on
// [::]:8080, and a third party on 198.51.100.77:9999 that reports any
// connection. It runs until killed (at most a minute).
func TestLabReflectorHelper(t *testing.T) {
	pm := os.Getenv(serveEnv)
	if pm == "" {
		t.Skip("helper process for the lab tests")
	}
	perMinute, _ := strconv.Atoi(pm)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	listen := func(addr string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		context.AfterFunc(ctx, func() { ln.Close() })
		return ln
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	acceptEach(&wg, listen(fmt.Sprintf("[::]:%d", targetPort)), func(net.Conn) {})
	acceptEach(&wg, listen(fmt.Sprintf("198.51.100.77:%d", thirdPort)), func(c net.Conn) {
		fmt.Printf("THIRD-CONN from %s\n", c.RemoteAddr())
	})
	refl := listen(fmt.Sprintf("[::]:%d", reflPort))
	s := &Server{PerMinute: perMinute, Window: time.Second, Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
	fmt.Println("READY")
	if err := s.Serve(ctx, refl); err != nil {
		t.Error(err)
	}
}

// sitesResult is what TestLabReflectorSites' child saw.
type sitesResult struct {
	SiteIdle   []string `json:"site_idle"`   // idle connections from 10 /64s of one /48
	SourceIdle []string `json:"source_idle"` // idle connections from one /64
	Other      string   `json:"other"`       // a request from a third /48 meanwhile
	SiteRate   []string `json:"site_rate"`   // requests from 10 /64s of one /48
	OtherRate  string   `json:"other_rate"`  // then one from another /48
}

// TestLabReflectorSites runs a real reflector and real TCP clients from
// many IPv6 source addresses (on lo in a namespace): idle connections
// from one /48 or one /64 cannot take every slot, and one /48 rotating
// through its /64s gets PrefixFactor requests, not one per /64, while
// other networks are still served.
func TestLabReflectorSites(t *testing.T) {
	if lab.Child() {
		a := func(site, n int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(site), 0, byte(n), 15: 1})
		}
		serve := func(s *Server) string {
			ln, err := net.Listen("tcp6", "[2001:db8:ff::1]:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = s.Serve(ctx, ln) }()
			t.Cleanup(func() { cancel(); <-done })
			return ln.Addr().String()
		}
		idle := func(refl string, src netip.Addr) (net.Conn, string) {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 2 * time.Second}
			c, err := d.Dial("tcp6", refl)
			if err != nil {
				return nil, "dial: " + err.Error()
			}
			t.Cleanup(func() { c.Close() })
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			b, _ := io.ReadAll(c)
			return c, string(b)
		}
		ask := func(refl string, src netip.Addr) string {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			ans, err := AskReflector(ctx, "tcp6", src, refl)
			if err != nil {
				return err.Error()
			}
			return ans.Kind
		}
		var res sitesResult
		refl := serve(&Server{PerMinute: 1000, ReadTimeout: 5 * time.Second, Window: 500 * time.Millisecond})
		for n := range 10 {
			_, got := idle(refl, a(0xa, n))
			res.SiteIdle = append(res.SiteIdle, got)
		}
		for range 3 {
			_, got := idle(refl, a(0xb, 0))
			res.SourceIdle = append(res.SourceIdle, got)
		}
		res.Other = ask(refl, a(0xc, 0))
		refl = serve(&Server{PerMinute: 1, Window: 500 * time.Millisecond})
		for n := range 10 {
			res.SiteRate = append(res.SiteRate, ask(refl, a(0xa, n)))
		}
		res.OtherRate = ask(refl, a(0xb, 0))
		lab.ChildResult(t, res)
		return
	}
	lab.Require(t, "ip")
	lab.GuardResolvConf(t)
	ns := lab.NewNS(t, "sites")
	ns.MustExec("ip", "addr", "add", "2001:db8:ff::1/128", "dev", "lo", "nodad")
	for n := range 10 {
		ns.MustExec("ip", "addr", "add", fmt.Sprintf("2001:db8:a:%x::1/128", n), "dev", "lo", "nodad")
	}
	ns.MustExec("ip", "addr", "add", "2001:db8:b::1/128", "dev", "lo", "nodad")
	ns.MustExec("ip", "addr", "add", "2001:db8:c::1/128", "dev", "lo", "nodad")
	var res sitesResult
	lab.RunChild(t, ns, 60*time.Second, nil, &res)
	t.Logf("%+v", res)
	for i, got := range res.SiteIdle {
		if want := map[bool]string{true: "", false: "ERR busy\n"}[i < 8]; got != want {
			t.Errorf("idle connection %d from one /48: %q, want %q", i, got, want)
		}
	}
	for i, got := range res.SourceIdle {
		if want := map[bool]string{true: "", false: "ERR busy\n"}[i < 2]; got != want {
			t.Errorf("idle connection %d from one /64: %q, want %q", i, got, want)
		}
	}
	if res.Other != "OK" {
		t.Errorf("another network while the idle ones hold their slots: %q, want OK", res.Other)
	}
	for i, got := range res.SiteRate {
		if want := map[bool]string{true: "OK", false: "refused: rate limited"}[i < PrefixFactor]; got != want {
			t.Errorf("request %d from /64 number %d of one /48: %q, want %q", i, i, got, want)
		}
	}
	if res.OtherRate != "OK" {
		t.Errorf("another /48 after the flood: %q, want OK", res.OtherRate)
	}
}
