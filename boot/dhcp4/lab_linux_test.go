package dhcp4

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/internal/lab"
)

// The lab: a server namespace (s0, 192.0.2.1/24) and a client namespace
// (c0, unconfigured) joined by a veth pair. The client half of every test
// runs Run in the client namespace as a re-executed child (lab.RunChild);
// the parent asserts on the kernel state of the client namespace.

const childConfEnv = "NETINIT_DHCP4_CHILD"

// childConf tells the child how to call Run.
type childConf struct {
	Timeout    time.Duration
	Oneshot    bool
	NoDefault  bool
	MTU        int
	IPv6       bool
	Retransmit time.Duration
	RenewMin   time.Duration
	// DefaultOnce: the link is the uplink the first time only (the
	// uplink moved elsewhere before the first renewal).
	DefaultOnce bool
	// Twice runs a second Oneshot Run after the first, as the next
	// stage does after the handoff.
	Twice bool
	// Carry stops the first Run once it is bound (its lease handed over,
	// Options.Handover) and runs a second one from it (Options.From), as
	// the engine does when the NIC moves onto the management bridge.
	Carry bool
}

// childOut is what the child reports back.
type childOut struct {
	Err     string
	Took    time.Duration
	Reports []lease.Report
	Logs    []string
}

func (o childOut) statuses() []string {
	var s []string
	for _, r := range o.Reports {
		s = append(s, r.Status)
	}
	return s
}

func (o childOut) last(status string) *lease.Report {
	for i := len(o.Reports) - 1; i >= 0; i-- {
		if o.Reports[i].Status == status {
			return &o.Reports[i]
		}
	}
	return nil
}

func (o childOut) logged(s string) bool {
	return slices.ContainsFunc(o.Logs, func(l string) bool { return strings.Contains(l, s) })
}

// child is the in-namespace half: run dhcp4.Run on c0 as configured.
func child(t *testing.T) {
	var conf childConf
	if err := json.Unmarshal([]byte(os.Getenv(childConfEnv)), &conf); err != nil {
		t.Fatalf("child conf: %v", err)
	}
	var (
		mu  sync.Mutex
		out childOut
	)
	start := time.Now() // before the deadline is set: Took is never below it
	ctx, cancel := context.WithTimeout(context.Background(), conf.Timeout)
	defer cancel()
	asked := 0
	o := Options{
		Link: "c0",
		Routes: route.New(route.Config{Uplink: func(string, bool) bool {
			asked++
			return !conf.NoDefault && (!conf.DefaultOnce || asked == 1)
		}}),
		MTU:        conf.MTU,
		IPv6:       conf.IPv6,
		Oneshot:    conf.Oneshot,
		Retransmit: conf.Retransmit,
		RenewMin:   conf.RenewMin,
		Report: func(l lease.Report) {
			mu.Lock()
			defer mu.Unlock()
			out.Reports = append(out.Reports, l)
		},
		Logf: func(f string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			s := fmt.Sprintf(f, a...)
			t.Log(s)
			out.Logs = append(out.Logs, s)
		},
	}
	var err error
	if conf.Carry {
		err = carry(ctx, o)
	} else {
		err = Run(ctx, o)
	}
	if err == nil && conf.Twice {
		err = Run(ctx, o)
	}
	mu.Lock()
	defer mu.Unlock()
	out.Took = time.Since(start)
	if err != nil {
		out.Err = err.Error()
	}
	lab.ChildResult(t, out)
}

// carry runs o until it is bound, then again from the lease it handed
// over (childConf.Carry).
func carry(ctx context.Context, o Options) error {
	first, stop := context.WithCancel(ctx)
	defer stop()
	report := o.Report
	var held *Held
	a := o
	a.Report = func(l lease.Report) {
		report(l)
		if l.Status == "bound" {
			stop()
		}
	}
	a.Handover = func(h *Held) { held = h }
	if err := Run(first, a); err != nil {
		return err
	}
	if held == nil {
		return errors.New("no lease handed over")
	}
	b := o
	b.From = held
	return Run(ctx, b)
}

// rig is one lab.
type rig struct {
	srv, cli *lab.NS
	h        *netlink.Handle // bound to the client namespace
}

// rowRig starts one row of a table test: in the child (the client's
// half, in its namespace) it runs the client and returns nil; in the
// parent it returns a rig of the row's own, in parallel with the others.
func rowRig(t *testing.T, name string) *rig {
	t.Helper()
	if lab.Child() {
		child(t)
		return nil
	}
	t.Parallel()
	return newRig(t, name[:3])
}

func newRig(t *testing.T, tag string) *rig {
	t.Helper()
	lab.GuardResolvConf(t)
	r := &rig{srv: lab.NewNS(t, tag+"s"), cli: lab.NewNS(t, tag+"c")}
	lab.Veth(t, r.srv, "s0", r.cli, "c0")
	r.srv.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "s0")
	r.h = r.cli.Handle()
	return r
}

func (r *rig) runChild(t *testing.T, conf childConf) childOut {
	t.Helper()
	b, _ := json.Marshal(conf)
	var out childOut
	lab.RunChild(t, r.cli, conf.Timeout+20*time.Second, []string{childConfEnv + "=" + string(b)}, &out)
	return out
}

// dnsmasqArgs is a dnsmasq serving 192.0.2.50-99 on s0 with 2 min leases
// (its minimum), no DNS, no ping check before offering.
func dnsmasqArgs(t *testing.T, extra ...string) []string {
	dir := t.TempDir()
	return append([]string{"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=s0", "--bind-interfaces", "--user=root", "--no-ping",
		"--dhcp-range=192.0.2.50,192.0.2.99,255.255.255.0,2m",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=",
		"--log-dhcp", "--log-facility=-"}, extra...)
}

func (r *rig) link(t *testing.T) netlink.Link {
	t.Helper()
	l, err := r.h.LinkByName("c0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// addrs are the IPv4 addresses on c0 in the kernel.
func (r *rig) addrs(t *testing.T) []netlink.Addr {
	t.Helper()
	as, err := r.h.AddrList(r.link(t), netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func (r *rig) addr(t *testing.T, p string) *netlink.Addr {
	t.Helper()
	for _, a := range r.addrs(t) {
		if a.IPNet.String() == p {
			return &a
		}
	}
	return nil
}

// routes are the IPv4 main-table routes on c0, as "dst via gw proto N scope S".
func (r *rig) routes(t *testing.T) []string {
	t.Helper()
	rs, err := r.h.RouteList(r.link(t), netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rt := range rs {
		dst := "0.0.0.0/0"
		if rt.Dst != nil {
			dst = rt.Dst.String()
		}
		s := dst
		if rt.Gw != nil {
			s += " via " + rt.Gw.String()
		}
		s += fmt.Sprintf(" proto %d", rt.Protocol)
		if rt.Src != nil {
			s += " src " + rt.Src.String()
		}
		out = append(out, s)
	}
	return out
}

func hasRoute(rs []string, prefix string) bool {
	return slices.ContainsFunc(rs, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func requireLab(t *testing.T, tools ...string) {
	if !lab.Child() {
		lab.Require(t, append([]string{"ip"}, tools...)...)
	}
}

// bound returns the leased prefix of the last "bound" report, failing
// the test if there is none.
func bound(t *testing.T, out childOut) (*lease.Report, netip.Prefix) {
	t.Helper()
	l := out.last("bound")
	if l == nil || len(l.Addresses) != 1 {
		t.Fatalf("no bound lease reported; statuses %v, logs:\n%s", out.statuses(), strings.Join(out.Logs, "\n"))
	}
	return l, l.Addresses[0].Prefix
}

func TestDnsmasq(t *testing.T) {
	requireLab(t, "dnsmasq")
	dhcpOpts := []string{
		"--dhcp-option=6,192.0.2.53,192.0.2.54",
		"--dhcp-option=42,192.0.2.123",
		"--dhcp-option=26,1400",
		"--dhcp-option=119,lab.example,example.com",
		"--dhcp-option=15,ignored.example",
	}
	for _, tc := range []struct {
		name  string
		conf  childConf
		extra []string
		late  bool
		check func(t *testing.T, r *rig, out childOut, dnsmasq string)
	}{{
		// Option 121 present: it wins over option 3 (RFC 3442), so
		// the default goes via 192.0.2.1 and not via 192.0.2.2.
		name: "basic",
		conf: childConf{Oneshot: true, Timeout: 20 * time.Second},
		extra: []string{"--dhcp-option=3,192.0.2.2",
			"--dhcp-option=121,198.51.100.0/24,192.0.2.254,0.0.0.0/0,192.0.2.1"},
		check: func(t *testing.T, r *rig, out childOut, _ string) {
			l, p := bound(t, out)
			a := r.addr(t, p.String())
			if a == nil {
				t.Fatalf("%s not in the kernel: %v", p, r.addrs(t))
			}
			if !netip.MustParsePrefix("192.0.2.0/24").Contains(p.Addr()) || p.Bits() != 24 {
				t.Errorf("leased %s", p)
			}
			if a.ValidLft < 100 || a.ValidLft > 120 || a.PreferedLft > a.ValidLft {
				t.Errorf("kernel lifetimes valid %d preferred %d, want ~120 s", a.ValidLft, a.PreferedLft)
			}
			if a.Broadcast.String() != "192.0.2.255" {
				t.Errorf("broadcast %v", a.Broadcast)
			}
			rs := r.routes(t)
			src := " proto 16 src " + p.Addr().String()
			for _, want := range []string{"0.0.0.0/0 via 192.0.2.1" + src, "198.51.100.0/24 via 192.0.2.254" + src} {
				if !slices.Contains(rs, want) {
					t.Errorf("route %q missing: %q", want, rs)
				}
			}
			if hasRoute(rs, "0.0.0.0/0 via 192.0.2.2") {
				t.Errorf("option 3 router used although option 121 is present: %q", rs)
			}
			if mtu := r.link(t).Attrs().MTU; mtu != 1400 || l.MTU != 1400 {
				t.Errorf("MTU kernel %d reported %d, want 1400", mtu, l.MTU)
			}
			const want = "[192.0.2.53 192.0.2.54] [192.0.2.123] [lab.example example.com] 192.0.2.1 [192.0.2.2]"
			if got := fmt.Sprintf("%v %v %v %v %v", strs(l.DNS), strs(l.NTP), l.Search, l.Server, strs(l.Routers)); got != want {
				t.Errorf("reported DNS NTP search server routers = %s, want %s", got, want)
			}
			if len(l.Routes) != 2 || l.Addresses[0].Valid < 100*time.Second {
				t.Errorf("reported lease %+v", l)
			}
			if out.Err != "" {
				t.Errorf("Run: %s", out.Err)
			}
		},
	}, {
		// Several routers, the first outside the subnet: on-link host
		// route first, then the default through it; all reported. The
		// MTU override beats option 26.
		name:  "routers",
		conf:  childConf{Oneshot: true, Timeout: 20 * time.Second, MTU: 1300, Twice: true},
		extra: []string{"--dhcp-option=3,203.0.113.1,192.0.2.1"},
		check: func(t *testing.T, r *rig, out childOut, _ string) {
			l, p := bound(t, out)
			rs := r.routes(t)
			src := " proto 16 src " + p.Addr().String()
			for _, want := range []string{"203.0.113.1/32" + src, "0.0.0.0/0 via 203.0.113.1" + src} {
				if !slices.Contains(rs, want) {
					t.Errorf("route %q missing: %q", want, rs)
				}
			}
			if got := fmt.Sprint(strs(l.Routers)); got != "[203.0.113.1 192.0.2.1]" {
				t.Errorf("reported routers %s", got)
			}
			if mtu := r.link(t).Attrs().MTU; mtu != 1300 || l.MTU != 1300 {
				t.Errorf("MTU kernel %d reported %d, want the override 1300", mtu, l.MTU)
			}
			// The second Run (after a "handoff") got the same lease
			// and took over the routes of the first without errors.
			if n := strings.Count(strings.Join(out.Logs, "\n"), "dhcp4 lease "+p.String()); n != 2 {
				t.Errorf("%d leases logged, want 2 (one per Run): %q", n, out.Logs)
			}
			if out.logged("dhcp4 route ") {
				t.Errorf("route trouble on the second Run: %q", out.Logs)
			}
			if len(r.addrs(t)) != 1 || len(rs) != 3 {
				t.Errorf("after two Runs: addresses %v routes %q", r.addrs(t), rs)
			}
		},
	}, {
		name: "nodefault",
		conf: childConf{Oneshot: true, Timeout: 20 * time.Second, NoDefault: true},
		extra: []string{"--dhcp-option=3,192.0.2.1",
			"--dhcp-option=121,198.51.100.0/24,192.0.2.254,0.0.0.0/0,192.0.2.1"},
		check: func(t *testing.T, r *rig, out childOut, _ string) {
			l, p := bound(t, out)
			if r.addr(t, p.String()) == nil {
				t.Fatalf("%s not in the kernel", p)
			}
			rs := r.routes(t)
			if hasRoute(rs, "0.0.0.0/0") || l.HasDefault() {
				t.Errorf("default route installed although the link is not the uplink: %q", rs)
			}
			if !hasRoute(rs, "198.51.100.0/24 via 192.0.2.254") {
				t.Errorf("option 121 route missing: %q", rs)
			}
		},
	}, {
		// The server comes up 4 s after the client starts: the
		// retransmissions carry on and the lease is acquired.
		name:  "late",
		conf:  childConf{Oneshot: true, Timeout: 25 * time.Second},
		extra: []string{"--dhcp-option=3,192.0.2.1"},
		late:  true,
		check: func(t *testing.T, r *rig, out childOut, _ string) {
			_, p := bound(t, out)
			if r.addr(t, p.String()) == nil {
				t.Fatalf("%s not in the kernel", p)
			}
			if out.Took < 3500*time.Millisecond || out.Took > 20*time.Second {
				t.Errorf("took %v; the server started after 4 s", out.Took)
			}
			if !hasRoute(r.routes(t), "0.0.0.0/0 via 192.0.2.1") {
				t.Errorf("no default route: %q", r.routes(t))
			}
		},
	}, {
		// Renewal at T1 (option 58 = 2 s): unicast REQUESTs that
		// dnsmasq ACKs, the address stays (no bounce) with a
		// refreshed lifetime.
		name: "renew",
		conf: childConf{Timeout: 9 * time.Second, RenewMin: time.Second, DefaultOnce: true},
		extra: []string{"--dhcp-option=3,192.0.2.1",
			"--dhcp-option=option:T1,3", "--dhcp-option=option:T2,100"},
		check: func(t *testing.T, r *rig, out childOut, dnsmasq string) {
			_, p := bound(t, out)
			if n := strings.Count(dnsmasq, "DHCPACK(s0)"); n < 3 {
				t.Errorf("dnsmasq sent %d ACKs, want the first and at least 2 renewals:\n%s", n, dnsmasq)
			}
			if !out.logged("renewed lease " + p.String()) {
				t.Errorf("no renewal logged: %q", out.Logs)
			}
			st := out.statuses()
			if i := slices.Index(st, "renewing"); i < 0 || !slices.Contains(st[i:], "bound") {
				t.Errorf("statuses %v, want renewing then bound", st)
			}
			// Only one bound address all along: the same lease was
			// re-applied in place.
			for _, rep := range out.Reports {
				if len(rep.Addresses) > 0 && rep.Addresses[0].Prefix != p {
					t.Errorf("address changed: %+v", rep)
				}
			}
			a := r.addr(t, p.String())
			if a == nil {
				t.Fatalf("%s gone from the kernel after renewals", p)
			}
			// Without renewal the lifetime would be 120 - ~9 s.
			if a.ValidLft < 115 {
				t.Errorf("valid lifetime %d s: not refreshed by the renewals", a.ValidLft)
			}
			// the link stopped being the uplink at the renewals: the default route
			// of the first binding was withdrawn, the rest stays.
			if i := slices.IndexFunc(out.Reports, func(l lease.Report) bool { return l.Status == "bound" }); i < 0 || !out.Reports[i].HasDefault() {
				t.Errorf("first binding had no default route: %+v", out.Reports)
			}
			if l := out.last("bound"); l.HasDefault() || hasRoute(r.routes(t), "0.0.0.0/0") {
				t.Errorf("default route kept after the link stopped being the uplink: %q", r.routes(t))
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rowRig(t, tc.name)
			if r == nil {
				return
			}
			args := dnsmasqArgs(t, append(slices.Clone(dhcpOpts), tc.extra...)...)
			if tc.late {
				args = append([]string{"sh", "-c", `sleep 4; exec "$@"`, "sh"}, args...)
			}
			p := r.srv.Start(args...)
			out := r.runChild(t, tc.conf)
			tc.check(t, r, out, p.Output())
			if t.Failed() {
				t.Logf("dnsmasq:\n%s", p.Output())
			}
		})
	}
}

// TestSilent: nobody answers. Run keeps trying until its context ends,
// returns nil on time and has applied nothing.
func TestSilent(t *testing.T) {
	if lab.Child() {
		child(t)
		return
	}
	requireLab(t)
	r := newRig(t, "sil")
	out := r.runChild(t, childConf{Timeout: 5 * time.Second})
	if out.Err != "" {
		t.Errorf("Run: %s", out.Err)
	}
	if out.Took < 5*time.Second || out.Took > 6*time.Second {
		t.Errorf("Run returned after %v, want at the 5 s deadline", out.Took)
	}
	if as := r.addrs(t); len(as) != 0 {
		t.Errorf("addresses on c0: %v", as)
	}
	if rs := r.routes(t); len(rs) != 0 {
		t.Errorf("routes on c0: %q", rs)
	}
	if st := out.statuses(); !slices.Equal(st, []string{"selecting"}) {
		t.Errorf("statuses %v", st)
	}
}

// goServer is a scripted DHCP server (insomniacslk's server4) in the
// server namespace, for what dnsmasq can't be made to do: NAK a renewal,
// go silent, send garbage.
type goServer struct {
	mu   sync.Mutex
	seen []string // "DISCOVER", "REQUEST", "REQUEST ciaddr=..." in order
	// reply returns the answer to m, the n-th message of its kind
	// (from 0), or nil to stay silent.
	reply func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4
	count map[string]int
}

func startGoServer(t *testing.T, ns *lab.NS, reply func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4) *goServer {
	t.Helper()
	g := &goServer{reply: reply, count: map[string]int{}}
	// The socket must be created inside the server namespace: do it on a
	// locked thread switched there, then switch back. The socket keeps
	// its namespace; the goroutines serving it can run anywhere.
	var conn net.PacketConn
	err := lab.In(ns.Name, func() (err error) {
		conn, err = server4.NewIPv4UDPConn("s0", &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	if err != nil {
		t.Fatalf("go server: %v", err)
	}
	srv, err := server4.NewServer("", nil, g.handle, server4.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve() }()
	t.Cleanup(func() { srv.Close(); <-done })
	return g
}

func (g *goServer) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	kind := m.MessageType().String()
	if !m.ClientIPAddr.IsUnspecified() {
		kind += " ciaddr=" + m.ClientIPAddr.String()
	}
	g.mu.Lock()
	g.seen = append(g.seen, kind)
	n := g.count[m.MessageType().String()]
	g.count[m.MessageType().String()]++
	resp := g.reply(m, n)
	g.mu.Unlock()
	if resp != nil {
		_, _ = conn.WriteTo(resp.ToBytes(), peer)
	}
}

func (g *goServer) log() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen)
}

// answer builds a reply of type mt to req offering ip, with a sane set of
// options, modified by mods.
func answer(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, ip string, lease, t1, t2 uint32, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(net.ParseIP(ip)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1)),
		dhcpv4.WithDNS(net.IPv4(192, 0, 2, 53)),
		dhcpv4.WithLeaseTime(lease),
		dhcpv4.WithGeneric(dhcpv4.OptionRenewTimeValue, u32(t1)),
		dhcpv4.WithGeneric(dhcpv4.OptionRebindingTimeValue, u32(t2)),
	}
	if mt == dhcpv4.MessageTypeNak {
		base = []dhcpv4.Modifier{dhcpv4.WithMessageType(mt),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithOption(dhcpv4.OptMessage("lease gone"))}
	}
	r, err := dhcpv4.NewReplyFromRequest(req, append(base, mods...)...)
	if err != nil {
		panic(err)
	}
	return r
}

// offerOrAck is the answer's type to a DISCOVER (OFFER) or a REQUEST (ACK).
func offerOrAck(req *dhcpv4.DHCPv4) dhcpv4.MessageType {
	if req.MessageType() == dhcpv4.MessageTypeRequest {
		return dhcpv4.MessageTypeAck
	}
	return dhcpv4.MessageTypeOffer
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func TestGoServer(t *testing.T) {
	requireLab(t)
	const (
		first  = "192.0.2.60"
		second = "192.0.2.61"
	)
	for _, tc := range []struct {
		name  string
		conf  childConf
		reply func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4
		check func(t *testing.T, r *rig, out childOut, g *goServer)
	}{{
		// The renewal at T1 is NAKed: the client removes the address
		// and starts over, getting a different one.
		name: "nak",
		conf: childConf{Timeout: 6 * time.Second, RenewMin: 500 * time.Millisecond, Retransmit: 500 * time.Millisecond},
		reply: func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4 {
			ip := first
			if len(m.Options.Get(dhcpv4.OptionRequestedIPAddress)) == 0 && !m.ClientIPAddr.IsUnspecified() {
				// RENEWING (ciaddr set): NAK the first lease.
				if m.ClientIPAddr.String() == first {
					return answer(m, dhcpv4.MessageTypeNak, "", 0, 0, 0)
				}
				return answer(m, dhcpv4.MessageTypeAck, m.ClientIPAddr.String(), 60, 1, 50)
			}
			if m.MessageType() == dhcpv4.MessageTypeDiscover && n > 0 ||
				m.MessageType() == dhcpv4.MessageTypeRequest && n > 0 {
				ip = second
			}
			mt := offerOrAck(m)
			return answer(m, mt, ip, 60, 1, 50)
		},
		check: func(t *testing.T, r *rig, out childOut, g *goServer) {
			if !slices.Contains(out.statuses(), "nak") || !out.logged("NAK from 192.0.2.1 for "+first) {
				t.Errorf("no NAK handled: statuses %v logs %q", out.statuses(), out.Logs)
			}
			if r.addr(t, first+"/24") != nil {
				t.Errorf("NAKed address %s still in the kernel", first)
			}
			if r.addr(t, second+"/24") == nil {
				t.Errorf("new address %s not in the kernel: %v", second, r.addrs(t))
			}
			if _, p := bound(t, out); p.String() != second+"/24" {
				t.Errorf("last bound %s", p)
			}
			if !hasRoute(r.routes(t), "0.0.0.0/0 via 192.0.2.1 proto 16 src "+second) {
				t.Errorf("routes %q", r.routes(t))
			}
		},
	}, {
		// A lease carried over (Options.From) is confirmed at once:
		// RENEWING, unicast with ciaddr, long before its T1 (50 s).
		name: "carried-ack",
		conf: childConf{Timeout: 3 * time.Second, Retransmit: 500 * time.Millisecond, Carry: true},
		reply: func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4 {
			mt := offerOrAck(m)
			return answer(m, mt, first, 100, 50, 80)
		},
		check: func(t *testing.T, r *rig, out childOut, g *goServer) {
			if want := []string{"DISCOVER", "REQUEST", "REQUEST ciaddr=" + first}; !slices.Equal(g.log(), want) {
				t.Errorf("server saw %v, want %v", g.log(), want)
			}
			if st, want := out.statuses(), []string{"selecting", "bound", "bound", "renewing", "bound"}; !slices.Equal(st, want) {
				t.Errorf("statuses %v, want %v", st, want)
			}
			if !out.logged("lease "+first+"/24 carried over from c0") || !out.logged("renewed lease "+first+"/24") {
				t.Errorf("logs %q", out.Logs)
			}
			if r.addr(t, first+"/24") == nil || !hasRoute(r.routes(t), "0.0.0.0/0 via 192.0.2.1 proto 16 src "+first) {
				t.Errorf("carried lease not in the kernel: %v %q", r.addrs(t), r.routes(t))
			}
		},
	}, {
		// The server NAKs the carried lease: it does not linger; the
		// client starts over and gets another address.
		name: "carried-nak",
		conf: childConf{Timeout: 4 * time.Second, Retransmit: 500 * time.Millisecond, Carry: true},
		reply: func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4 {
			if !m.ClientIPAddr.IsUnspecified() {
				return answer(m, dhcpv4.MessageTypeNak, "", 0, 0, 0)
			}
			ip := first
			if n > 0 {
				ip = second
			}
			mt := offerOrAck(m)
			return answer(m, mt, ip, 100, 50, 80)
		},
		check: func(t *testing.T, r *rig, out childOut, g *goServer) {
			if !out.logged("lease "+first+"/24 carried over from c0") || !out.logged("NAK from 192.0.2.1 for "+first) {
				t.Errorf("logs %q", out.Logs)
			}
			if r.addr(t, first+"/24") != nil {
				t.Errorf("the NAKed carried address %s lingers: %v", first, r.addrs(t))
			}
			if _, p := bound(t, out); p.String() != second+"/24" || r.addr(t, second+"/24") == nil {
				t.Errorf("last bound %s, kernel %v", p, r.addrs(t))
			}
			if rs := r.routes(t); !hasRoute(rs, "0.0.0.0/0 via 192.0.2.1 proto 16 src "+second) || hasRoute(rs, "0.0.0.0/0 via 192.0.2.1 proto 16 src "+first) {
				t.Errorf("routes %q", rs)
			}
		},
	}, {
		// One lease of 4 s, then silence: renew at 1 s, rebind at 2 s,
		// removal at 4 s, and back to selecting.
		name: "expiry",
		conf: childConf{Timeout: 6 * time.Second, RenewMin: 400 * time.Millisecond},
		reply: func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4 {
			if n > 0 {
				return nil
			}
			mt := offerOrAck(m)
			return answer(m, mt, first, 4, 1, 2)
		},
		check: func(t *testing.T, r *rig, out childOut, g *goServer) {
			st := out.statuses()
			want := []string{"selecting", "bound", "renewing", "rebinding", "expired", "selecting"}
			if !slices.Equal(st, want) {
				t.Errorf("statuses %v, want %v", st, want)
			}
			if l := out.last("expired"); l == nil || len(l.Addresses) != 0 || len(l.Routes) != 0 {
				t.Errorf("expiry report %+v", l)
			}
			if !out.logged("lease " + first + "/24 expired") {
				t.Errorf("expiry not logged: %q", out.Logs)
			}
			if as := r.addrs(t); len(as) != 0 {
				t.Errorf("addresses left: %v", as)
			}
			if rs := r.routes(t); len(rs) != 0 {
				t.Errorf("routes left: %q", rs)
			}
			// The server saw unicast renewals and broadcast rebinds,
			// both with ciaddr set.
			if n := slices.Index(g.log(), "REQUEST ciaddr="+first); n < 0 {
				t.Errorf("no REQUEST with ciaddr: %q", g.log())
			}
		},
	}, {
		// Garbage first: an offer with a multicast router, one with a
		// 3-byte mask, then an ACK with lease time 0; then a sane lease
		// whose informational garbage is dropped.
		name: "hostile",
		conf: childConf{Oneshot: true, Timeout: 20 * time.Second, Retransmit: 300 * time.Millisecond},
		reply: func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4 {
			if m.MessageType() == dhcpv4.MessageTypeDiscover {
				switch n {
				case 0:
					return answer(m, dhcpv4.MessageTypeOffer, first, 60, 0, 0, dhcpv4.WithRouter(net.IPv4(224, 0, 0, 1)))
				case 1:
					return answer(m, dhcpv4.MessageTypeOffer, first, 60, 0, 0, dhcpv4.WithGeneric(dhcpv4.OptionSubnetMask, []byte{255, 255, 255}))
				}
				return answer(m, dhcpv4.MessageTypeOffer, first, 60, 0, 0)
			}
			if n == 0 {
				return answer(m, dhcpv4.MessageTypeAck, first, 0, 0, 0)
			}
			return answer(m, dhcpv4.MessageTypeAck, first, 60, 0, 0,
				dhcpv4.WithDNS(net.IPv4(224, 0, 0, 251), net.IPv4(192, 0, 2, 53)),
				dhcpv4.WithOption(dhcpv4.OptHostName("bad_name!")),
				dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{5}))
		},
		check: func(t *testing.T, r *rig, out childOut, g *goServer) {
			for _, want := range []string{"router 224.0.0.1 is multicast", "subnet mask option 1 has 3 bytes",
				"refused ACK from 192.0.2.1: lease time is 0", "224.0.0.251 is multicast", `hostname "bad_name!"`, "MTU option 26 of 1 bytes"} {
				if !out.logged(want) {
					t.Errorf("no log line naming %q: %q", want, out.Logs)
				}
			}
			l, p := bound(t, out)
			if p.String() != first+"/24" || r.addr(t, p.String()) == nil {
				t.Errorf("bound %s; kernel %v", p, r.addrs(t))
			}
			if fmt.Sprint(strs(l.DNS)) != "[192.0.2.53]" || l.Hostname != "" || l.MTU != 0 {
				t.Errorf("garbage reported: %+v", l)
			}
			if st := out.statuses(); slices.Contains(st[:len(st)-1], "bound") {
				t.Errorf("a garbage lease was bound: %v", st)
			}
		},
	}, {
		// Hostile network (issue 13): an MTU of 1000 (legal for IPv4,
		// fatal for IPv6) on a link that runs IPv6, and a search list
		// that tries to add a nameserver line to resolv.conf.
		name: "mtu-ipv6",
		conf: childConf{Oneshot: true, Timeout: 20 * time.Second, IPv6: true},
		reply: func(m *dhcpv4.DHCPv4, n int) *dhcpv4.DHCPv4 {
			mt := offerOrAck(m)
			return answer(m, mt, first, 60, 0, 0,
				dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x03, 0xe8}),
				dhcpv4.WithDomainSearchList("x\nnameserver\t6.6.6.6", "lab.example"))
		},
		check: func(t *testing.T, r *rig, out childOut, g *goServer) {
			l, _ := bound(t, out)
			if mtu := r.link(t).Attrs().MTU; mtu != 1500 || l.MTU != 0 {
				t.Errorf("MTU kernel %d reported %d, want the link's 1500 untouched", mtu, l.MTU)
			}
			if !slices.Equal(l.Search, []string{"lab.example"}) {
				t.Errorf("search %q, want only lab.example", l.Search)
			}
			for _, want := range []string{"ignoring MTU 1000", `ignoring search domain "x\nnameserver\t6.6.6.6"`} {
				if !out.logged(want) {
					t.Errorf("no log line naming %q: %q", want, out.Logs)
				}
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rowRig(t, tc.name)
			if r == nil {
				return
			}
			g := startGoServer(t, r.srv, tc.reply)
			out := r.runChild(t, tc.conf)
			if out.Err != "" {
				t.Errorf("Run: %s", out.Err)
			}
			tc.check(t, r, out, g)
			if t.Failed() {
				t.Logf("server saw: %q", g.log())
			}
		})
	}
}

func strs(as []netip.Addr) []string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return s
}

var _ = unix.RTPROT_DHCP
