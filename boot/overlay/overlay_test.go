package overlay

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/clock"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/overlay/firewall"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

func TestDecide(t *testing.T) {
	pub := &state.NetworkStatus{PublicIPv6: true, PublicIPv6Reason: "global address 2001:db8::5"}
	hidden := &state.NetworkStatus{PublicIPv6Reason: "no global IPv6 address"}
	inbound := &state.Connectivity{IPv6: state.Family{Verdict: "public-inbound"}}
	outbound := &state.Connectivity{IPv6: state.Family{Verdict: "public-outbound"}}
	peer := []spec.WGPeer{{PublicKey: "k", Endpoint: "gw:51820"}}
	for _, tc := range []struct {
		name    string
		ygg, wg string
		peers   []spec.WGPeer
		st      *state.NetworkStatus
		conn    *state.Connectivity
		wantYgg bool
		wantWG  bool
		yggWhy  string
		wgWhy   string
		light   bool
	}{
		{"auto hidden", "auto", "auto", nil, hidden, nil, true, false, "no public IPv6", "no netinit.wg.peer", false},
		{"auto public", "auto", "auto", peer, pub, nil, false, false, "public IPv6", "not needed", false},
		{"auto hidden with gateway", "auto", "auto", peer, hidden, nil, true, true, "no public IPv6", "egress", false},
		{"on public", "on", "on", peer, pub, nil, true, true, "=on", "=on", false},
		{"off hidden", "off", "off", peer, hidden, nil, false, false, "=off", "=off", false},
		{"on without peer", "auto", "on", nil, hidden, nil, true, false, "no public IPv6", "no netinit.wg.peer", false},
		{"auto-inbound firewalled", "auto-inbound", "auto", nil, pub, outbound, true, false, "not proven", "no netinit.wg.peer", false},
		{"auto-inbound proven", "auto-inbound", "auto", nil, pub, inbound, false, false, "proved", "no netinit.wg.peer", false},
		{"auto-inbound unprobed", "auto-inbound", "auto", nil, pub, nil, true, false, "not proven", "no netinit.wg.peer", false},
		{"auto on a light node", "auto", "auto", peer, hidden, nil, false, true, "network-light", "egress", true},
		{"auto-inbound on a light node", "auto-inbound", "auto", nil, hidden, nil, false, false, "network-light", "no netinit.wg.peer", true},
		{"on on a light node", "on", "auto", nil, pub, nil, true, false, "=on", "no netinit.wg.peer", true},
		{"off on a light node", "off", "auto", nil, hidden, nil, false, false, "=off", "no netinit.wg.peer", true},
	} {
		if tc.yggWhy == "" || tc.wgWhy == "" {
			t.Fatalf("%s: an empty reason matches any reason", tc.name)
		}
		o := spec.Defaults().Overlay
		var yggErr, wgErr error
		o.Ygg, yggErr = spec.ParseYggMode(tc.ygg)
		o.WG, wgErr = spec.ParseWGMode(tc.wg)
		if err := errors.Join(yggErr, wgErr); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		o.WGPeers = tc.peers
		d := Decide(o, tc.light, tc.st, tc.conn)
		if d.Yggdrasil != tc.wantYgg || d.WireGuard != tc.wantWG ||
			!strings.Contains(d.YggdrasilReason, tc.yggWhy) || !strings.Contains(d.WireGuardReason, tc.wgWhy) {
			t.Errorf("%s: got %+v", tc.name, d)
		}
	}
}

func TestUplinkKey(t *testing.T) {
	st := &state.NetworkStatus{Uplink: "eth0", Links: []state.LinkStatus{
		{Name: "eth0", Addrs: []state.AddrStatus{{Prefix: netip.MustParsePrefix("192.0.2.5/24"), Source: lease.SourceDHCP4}, {Prefix: netip.MustParsePrefix("fe80::1/64"), Source: lease.SourceLinkLocal}}},
		{Name: "eth1", Addrs: []state.AddrStatus{{Prefix: netip.MustParsePrefix("198.51.100.5/24"), Source: lease.SourceDHCP4}}},
	}}
	a := uplinkKey(st)
	st.Links[1].Addrs[0].Prefix = netip.MustParsePrefix("198.51.100.6/24") // another link: no change
	if uplinkKey(st) != a {
		t.Errorf("a change on another link changed the uplink key")
	}
	st.Links[0].Addrs[0].Prefix = netip.MustParsePrefix("192.0.2.6/24")
	if uplinkKey(st) == a {
		t.Errorf("a new uplink address did not change the key")
	}
}

// TestFirewallFailClosed: when the overlay firewall cannot be applied, no
// overlay interface is created and the state says so; the rules asked for
// guard the overlay addresses on every interface.
func TestFirewallFailClosed(t *testing.T) {
	o := spec.Defaults().Overlay
	o.Ygg, o.WG = spec.YggOn, spec.WGOn
	o.WGPeers = []spec.WGPeer{{PublicKey: "k", Endpoint: "192.0.2.1:51820"}}
	o.WGAddress = []netip.Prefix{netip.MustParsePrefix("2001:db8:77::5/64"), netip.MustParsePrefix("198.51.100.7/24")}
	ctx, cancel := context.WithCancel(context.Background())
	m := New(ctx, Config{Spec: o, KeyDir: t.TempDir()})
	var got firewall.Rules
	m.applyFirewall = func(r firewall.Rules) error {
		got = r
		return errors.New("nf_tables: operation not supported")
	}
	m.start(&state.NetworkStatus{Phase: state.PhaseReady})
	cancel()
	m.Close()
	wantOwned := []firewall.Owned{
		{Interface: "ygg0", Prefix: netip.MustParsePrefix("200::/7")},
		{Interface: "wg0", Prefix: netip.MustParsePrefix("2001:db8:77::5/128")},
		{Interface: "wg0", Prefix: netip.MustParsePrefix("198.51.100.7/32")},
	}
	if !slices.Equal(got.Interfaces, []string{"ygg0", "wg0"}) || !slices.Equal(got.Owned, wantOwned) {
		t.Errorf("rules asked for: %+v", got)
	}
	st := m.Status()
	if st.Yggdrasil != nil || st.WireGuard != nil || m.ygg != nil || m.wg != nil {
		t.Errorf("an overlay was started without its firewall: ygg %+v wg %+v", st.Yggdrasil, st.WireGuard)
	}
	if len(st.Firewall) != 0 {
		t.Errorf("rules reported although none applied: %q", st.Firewall)
	}
	if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.Contains(p, "NOT started") }) {
		t.Errorf("problems %q do not say the overlays are down", st.Problems)
	}
}

// TestPanicContained: a panic in the overlay start goroutine is reported
// as a problem; the process goes on.
func TestPanicContained(t *testing.T) {
	o := spec.Defaults().Overlay
	o.Ygg = spec.YggOn
	ntp := []string{"127.0.0.1"} // nothing answers on Port 1: no pool queried
	ctx, cancel := context.WithCancel(context.Background())
	var refreshed atomic.Int32
	m := New(ctx, Config{Spec: o, NTP: ntp, KeyDir: t.TempDir(), Publish: func(*state.OverlayStatus) { refreshed.Add(1) }, Clock: fakeClock()})
	m.applyFirewall = func(firewall.Rules) error { panic("injected") }
	m.Update(&state.NetworkStatus{Phase: state.PhaseReady})
	cancel()
	m.Close()
	st := m.Status()
	if !slices.ContainsFunc(st.Problems, func(p string) bool {
		return strings.Contains(p, "internal error in overlay start") && strings.Contains(p, "injected")
	}) || refreshed.Load() == 0 {
		t.Errorf("panic not reported: problems %q, %d refreshes", st.Problems, refreshed.Load())
	}
}

// TestProbeCoalesced: many probe requests while one runs make one run.
func TestProbeCoalesced(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, Config{Spec: spec.Defaults().Overlay})
	m.decided, m.last = true, &state.NetworkStatus{Phase: state.PhaseReady}
	var runs atomic.Int32
	release := make(chan struct{})
	m.probeFn = func(*state.NetworkStatus) *state.Connectivity {
		runs.Add(1)
		<-release
		return &state.Connectivity{}
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); m.Probe() }()
	}
	wg.Wait()
	close(release)
	m.wgr.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("50 concurrent probe requests made %d probe runs, want 1", n)
	}
	m.Probe() // a request after the run: a new run
	m.wgr.Wait()
	if n := runs.Load(); n != 2 {
		t.Fatalf("a later request made %d runs in all, want 2", n)
	}
}

// TestNodeInfoPublishesNothing: the Yggdrasil NodeInfo, answered to the
// whole network, carries neither the DHCP hostname nor the version.
func TestNodeInfoPublishesNothing(t *testing.T) {
	m := New(context.Background(), Config{Spec: spec.Defaults().Overlay})
	opts, _ := m.yggOptions(&state.NetworkStatus{Hostname: "farm-of-alice-7", Uplink: "eth0"})
	if len(opts.NodeInfo) != 0 {
		t.Errorf("NodeInfo published: %v", opts.NodeInfo)
	}
	if opts.MulticastLinks[0] != "^eth0$" {
		t.Errorf("multicast links %q", opts.MulticastLinks)
	}
}

// TestPeerSecretsNotLogged (issue 29): the line that says a configured
// peer is not used names it with its password redacted, as the state
// file does.
func TestPeerSecretsNotLogged(t *testing.T) {
	var logs lab.Logs
	o := spec.Defaults().Overlay
	o.YggPeers = []string{"tls://[2001:db8:1::5]:443?password=hunter2", "tcp://198.51.100.1:9943"}
	m := New(context.Background(), Config{Spec: o, Logf: logs.Logf})
	st := &state.NetworkStatus{Uplink: "eth0", Links: []state.LinkStatus{{Name: "eth0", Addrs: []state.AddrStatus{
		{Prefix: netip.MustParsePrefix("2001:db8:1::10/64"), Source: lease.SourceSLAAC, Public: true}}}}}
	opts, _ := m.yggOptions(st)
	if !slices.Equal(opts.Peers, []string{"tcp://198.51.100.1:9943"}) {
		t.Fatalf("peers %q: the one inside the node's own prefix should be dropped", opts.Peers)
	}
	got := logs.String()
	if strings.Contains(got, "hunter2") || !strings.Contains(got, `not peering with ["tls://[2001:db8:1::5]:443?password=REDACTED"]`) {
		t.Errorf("log:\n%s", got)
	}
}

// TestMulticastFollowsBridge: Yggdrasil started on the NIC before it
// moves onto the management bridge (its lease first) keeps discovering
// LAN peers there: the bridge's name is matched too.
func TestMulticastFollowsBridge(t *testing.T) {
	m := New(context.Background(), Config{Spec: spec.Defaults().Overlay, Bridge: "zos"})
	opts, _ := m.yggOptions(&state.NetworkStatus{Uplink: "eth0"})
	if !slices.Equal(opts.MulticastLinks, []string{"^eth0$", "^zos$"}) {
		t.Errorf("multicast links %q, want eth0 and zos", opts.MulticastLinks)
	}
	opts, _ = m.yggOptions(&state.NetworkStatus{Uplink: "zos", UplinkNIC: "eth0"})
	if !slices.Equal(opts.MulticastLinks, []string{"^zos$"}) {
		t.Errorf("on the bridge: multicast links %q", opts.MulticastLinks)
	}
}

// fakeClock is a Syncer that never touches the machine's clock.
func fakeClock() *clock.Syncer {
	fail := errors.New("fake clock")
	return &clock.Syncer{Port: 1, Timeout: 200 * time.Millisecond,
		Set: func(time.Time) error { return fail }, Adjust: func(time.Duration) error { return fail }}
}

// TestClockLoopWired: the clock loop starts at the verdict even without
// overlays, its rounds show in the state, and NTP servers a later state
// names start a round at once.
func TestClockLoopWired(t *testing.T) {
	o := spec.Defaults().Overlay
	o.Ygg, o.WG = spec.YggOff, spec.WGOff
	ctx, cancel := context.WithCancel(context.Background())
	m := New(ctx, Config{Spec: o, NTP: []string{"127.0.0.1"}, KeyDir: t.TempDir(), Clock: fakeClock()})
	m.probeFn = func(*state.NetworkStatus) *state.Connectivity { return &state.Connectivity{} }
	defer func() { cancel(); m.Close() }()
	clockState := func() *state.Clock {
		return m.Status().Clock
	}
	m.Update(&state.NetworkStatus{Phase: state.PhaseReady, NTP: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	if !lab.Eventually(5*time.Second, func() bool { c := clockState(); return c != nil && c.Rounds == 1 }) {
		t.Fatalf("no clock round after the verdict: %+v", clockState())
	}
	if c := clockState(); c.Set || c.Error == "" || !slices.Equal(c.Servers, []string{"127.0.0.1"}) {
		t.Errorf("clock state: %+v", c)
	}
	learned := func(a string) state.NTPServer {
		return state.NTPServer{Addr: netip.MustParseAddr(a), Source: lease.SourceDHCP4, Link: "eth0"}
	}
	m.Update(&state.NetworkStatus{Phase: state.PhaseReady, NTP: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		NTPLearned: []state.NTPServer{learned("127.0.0.1"), learned("127.0.0.2")}})
	if !lab.Eventually(5*time.Second, func() bool { c := clockState(); return c.Rounds == 2 }) {
		t.Fatalf("no round after DHCP named a new server: %+v", clockState())
	}
	if c := clockState(); !slices.Equal(c.Servers, []string{"127.0.0.1", "127.0.0.2"}) || len(c.Sources) != 2 || c.Sources[1].Origin != "dhcp4 on eth0" {
		t.Errorf("servers asked: %q, sources %+v", c.Servers, c.Sources)
	}
}

// TestFollowPublishes: the manager takes the engine's statuses from a
// subscription channel and publishes its own decision, outside its lock
// (Publish reads the manager's status again without deadlock).
func TestFollowPublishes(t *testing.T) {
	o := spec.Defaults().Overlay
	o.Ygg, o.WG = spec.YggOff, spec.WGOff
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan *state.OverlayStatus, 64)
	var m *Manager
	m = New(ctx, Config{Spec: o, NTP: []string{"127.0.0.1"}, KeyDir: t.TempDir(), Clock: fakeClock(), Publish: func(o *state.OverlayStatus) {
		_ = m.Status() // a publisher may ask again: the lock is not held
		select {
		case published <- o:
		default:
		}
	}})
	m.probeFn = func(*state.NetworkStatus) *state.Connectivity { return &state.Connectivity{} }
	defer func() { cancel(); m.Close() }()
	updates := make(chan *state.NetworkStatus, 1)
	m.Follow(updates)
	updates <- &state.NetworkStatus{Phase: state.PhaseReady, PublicIPv6: true, PublicIPv6Reason: "global address"}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case o := <-published:
			if o.Decision != nil {
				if o.Decision.Yggdrasil || o.Decision.YggdrasilReason != "netinit.ygg=off" || o.Connectivity == nil {
					t.Errorf("published %+v %+v", o.Decision, o.Connectivity)
				}
				return
			}
		case <-deadline:
			t.Fatal("no decision published after a ready status")
		}
	}
}
