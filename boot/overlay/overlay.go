// Package overlay decides whether a node needs the overlays and runs them
// inside the process that keeps the network: Yggdrasil (every node
// reachable at a stable 200::/7 address, wherever it sits) and WireGuard
// (IPv6 egress and private overlays through a public node), behind the
// default-deny overlay firewall.
//
// The decision is taken once, when the bring-up reaches its verdict, from
// the state at that moment plus a bounded connectivity probe (netprobe):
// netinit.ygg= / netinit.wg= "on" and "off" are obeyed; "auto" starts an
// overlay when the node has no public IPv6; Yggdrasil's "auto-inbound"
// starts it unless a reflector proved IPv6 inbound reachability. An RA that
// arrives after the verdict upgrades the state but does not stop an overlay
// that was started: taking the overlay down again would make the node
// unreachable for the moment it takes for peers to notice, for no gain.
package overlay

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/clock"
	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/overlay/firewall"
	"github.com/threefoldtech/netinit/boot/overlay/wg"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

// DefaultKeyDir is where the overlay keys live when netinit.keydir= is
// not given.
const DefaultKeyDir = "/var/cache/netinit/keys"

// Config is what the manager needs.
type Config struct {
	Spec   *cmdline.Spec
	KeyDir string // DefaultKeyDir when empty (or Spec.KeyDir)
	Logf   func(format string, args ...any)
	// Refresh asks the engine to rewrite the state (peers changed).
	Refresh func()
	// Version goes into the Yggdrasil NodeInfo.
	Version string
}

// Manager runs the overlays of one netinit process.
type Manager struct {
	cfg Config
	ctx context.Context

	mu        sync.Mutex
	decided   bool
	decision  state.Overlays
	conn      *state.Connectivity
	clk       *state.Clock
	ygg       *ygg.Node
	wg        *wg.Tunnel
	rules     []string
	problems  []string
	uplinkKey string
	last      *state.State // the latest state observed

	wgr sync.WaitGroup // goroutines owned by the manager
}

// New returns a manager whose overlays live until ctx ends (then Close).
func New(ctx context.Context, cfg Config) *Manager {
	if cfg.KeyDir == "" {
		cfg.KeyDir = cfg.Spec.KeyDir
	}
	if cfg.KeyDir == "" {
		cfg.KeyDir = DefaultKeyDir
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Refresh == nil {
		cfg.Refresh = func() {}
	}
	return &Manager{cfg: cfg, ctx: ctx}
}

// Observe is called with every state the engine writes. At the first
// verdict it decides and starts the overlays (in the background: the boot
// is never held up by them); later it retries Yggdrasil's peers at once
// when the uplink or its addresses change (yggdrasil-go by itself can sit
// in a long backoff after an outage).
func (m *Manager) Observe(st *state.State) {
	if st.Phase == state.PhaseStarting {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	snapshot := *st
	m.last = &snapshot
	key := uplinkKey(st)
	if m.ygg != nil && key != m.uplinkKey {
		m.cfg.Logf("yggdrasil: uplink changed (%s), retrying peers now", key)
		m.ygg.Kick()
	}
	m.uplinkKey = key
	if m.decided {
		return
	}
	m.decided = true
	snap := *st
	m.wgr.Add(1)
	go func() {
		defer m.wgr.Done()
		m.start(&snap)
	}()
}

// uplinkKey identifies the uplink and its addresses.
func uplinkKey(st *state.State) string {
	var addrs []string
	for _, ifc := range st.Interfaces {
		if ifc.Name != st.Uplink {
			continue
		}
		for _, a := range ifc.Addresses {
			if a.Source != state.SourceLinkLocal {
				addrs = append(addrs, a.CIDR)
			}
		}
	}
	slices.Sort(addrs)
	return st.Uplink + " " + strings.Join(addrs, ",")
}

// start probes, decides, and starts what was decided.
func (m *Manager) start(st *state.State) {
	spec := m.cfg.Spec
	conn := m.probe(st)
	d := Decide(spec, st, conn)
	m.mu.Lock()
	m.conn, m.decision = conn, d
	m.mu.Unlock()
	m.cfg.Logf("overlays: yggdrasil %s (%s); wireguard %s (%s)", onOff(d.Yggdrasil), d.YggdrasilReason, onOff(d.WireGuard), d.WireGuardReason)
	m.wgr.Add(1)
	go func() { defer m.wgr.Done(); m.reprobeLoop() }()
	var ifaces []string
	if d.Yggdrasil {
		if err := m.startYggdrasil(st); err != nil {
			m.problem("yggdrasil: %v", err)
		} else {
			ifaces = append(ifaces, ygg.DefaultIfName)
		}
	}
	if d.WireGuard {
		if err := m.startWireGuard(st); err != nil {
			m.problem("wireguard: %v", err)
		} else {
			ifaces = append(ifaces, wg.DefaultIfName)
		}
	}
	if len(ifaces) > 0 {
		rules := firewall.Rules{Interfaces: ifaces, Allow: spec.Allow}
		if err := firewall.Apply(rules); err != nil {
			m.problem("overlay firewall: %v (inbound on %v is NOT filtered)", err, ifaces)
		} else {
			m.mu.Lock()
			m.rules = firewall.Describe(rules)
			m.mu.Unlock()
			m.cfg.Logf("overlay firewall: inbound on %v dropped except established, ICMPv6 and %v", ifaces, spec.Allow)
		}
		m.wgr.Add(1)
		go func() { defer m.wgr.Done(); m.refreshLoop() }()
	}
	m.cfg.Refresh()
}

// probe runs netprobe, bounded, from the managed links' addresses.
func (m *Manager) probe(st *state.State) *state.Connectivity {
	var addrs []netip.Addr
	for _, ifc := range st.Interfaces {
		for _, a := range ifc.Addresses {
			if p, err := netip.ParsePrefix(a.CIDR); err == nil {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	spec := m.cfg.Spec
	r := netprobe.Probe(ctx, addrs, netprobe.Config{Targets: spec.ProbeTargets, Reflectors: spec.ProbeReflectors})
	fam := func(f netprobe.Family) state.Family {
		return state.Family{Verdict: string(f.Verdict), Evidence: f.Evidence}
	}
	return &state.Connectivity{IPv4: fam(r.IPv4), IPv6: fam(r.IPv6), Hidden: r.Hidden, Probed: r.Probed, TookMS: r.TookMS}
}

// Decide is the overlay decision, from the cmdline/config modes, the state
// at the verdict and the probe.
func Decide(spec *cmdline.Spec, st *state.State, conn *state.Connectivity) state.Overlays {
	var d state.Overlays
	switch spec.Ygg {
	case "on":
		d.Yggdrasil, d.YggdrasilReason = true, "netinit.ygg=on"
	case "off":
		d.YggdrasilReason = "netinit.ygg=off"
	case "auto-inbound":
		if conn != nil && conn.IPv6.Verdict == string(netprobe.VerdictPublicInbound) {
			d.YggdrasilReason = "a reflector proved inbound IPv6 (netinit.ygg=auto-inbound)"
		} else {
			d.Yggdrasil, d.YggdrasilReason = true, "inbound IPv6 not proven (netinit.ygg=auto-inbound)"
		}
	default: // auto
		if st.PublicIPv6 {
			d.YggdrasilReason = "public IPv6: " + st.PublicIPv6Reason
		} else {
			d.Yggdrasil, d.YggdrasilReason = true, "no public IPv6: "+st.PublicIPv6Reason
		}
	}
	switch {
	case spec.WG == "off":
		d.WireGuardReason = "netinit.wg=off"
	case len(spec.WGPeers) == 0:
		d.WireGuardReason = "no netinit.wg.peer= configured"
	case spec.WG == "on":
		d.WireGuard, d.WireGuardReason = true, "netinit.wg=on"
	case st.PublicIPv6:
		d.WireGuardReason = "public IPv6: not needed for egress"
	default:
		d.WireGuard, d.WireGuardReason = true, "no public IPv6: IPv6 egress through the gateway"
	}
	return d
}

func (m *Manager) startYggdrasil(st *state.State) error {
	spec := m.cfg.Spec
	opts := ygg.Options{
		KeyDir:    m.cfg.KeyDir,
		Seed:      spec.YggSeed,
		Peers:     spec.YggPeers,
		Multicast: spec.YggMulticast && st.Uplink != "",
		LANPeers:  spec.YggLANPeers,
		NodeInfo:  map[string]any{"name": st.Hostname, "netinit": m.cfg.Version},
		Logf:      m.cfg.Logf,
	}
	if st.Uplink != "" {
		opts.MulticastLinks = []string{"^" + st.Uplink + "$"}
	}
	n, err := ygg.Start(m.ctx, opts)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.ygg = n
	m.problems = append(m.problems, n.Problems()...)
	m.mu.Unlock()
	m.cfg.Logf("yggdrasil: up, address %s, %d peers configured", n.Address(), len(spec.YggPeers))
	return nil
}

func (m *Manager) startWireGuard(st *state.State) error {
	spec := m.cfg.Spec
	// Set the clock first: a WireGuard peer drops handshake initiations
	// whose timestamp is not newer than the last it saw for this key, so a
	// node that reboots with an earlier clock would be ignored.
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	r := clock.Sync(ctx, st.NTP, m.cfg.Logf)
	cancel()
	clk := &state.Clock{Server: r.Server, OffsetMS: r.Offset.Milliseconds(), Set: r.Set, Error: r.Err}
	m.mu.Lock()
	m.clk = clk
	m.mu.Unlock()
	if !r.Set {
		m.problem("clock: NOT set by NTP before WireGuard (%s): handshakes may be ignored by peers that saw a later clock", orNone(r.Err))
	}
	var peers []wg.Peer
	for _, p := range spec.WGPeers {
		peers = append(peers, wg.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: spec.WGAllowed})
	}
	t, err := wg.Start(m.ctx, wg.Options{KeyDir: m.cfg.KeyDir, Addresses: spec.WGAddress, Peers: peers,
		MTU: wgMTU(st), Logf: m.cfg.Logf})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.wg = t
	m.mu.Unlock()
	m.cfg.Logf("wireguard: up on %s, %d peers", wg.DefaultIfName, len(peers))
	return nil
}

// Reprobe runs netprobe again now (the control socket's "probe"), in the
// background; the state is rewritten when it is done.
func (m *Manager) Reprobe() {
	m.mu.Lock()
	st := m.last
	m.mu.Unlock()
	if st == nil {
		return // not decided yet: the first probe is still to come
	}
	m.wgr.Add(1)
	go func() {
		defer m.wgr.Done()
		conn := m.probe(st)
		m.mu.Lock()
		m.conn = conn
		m.mu.Unlock()
		m.cfg.Logf("probe: IPv4 %s, IPv6 %s, hidden %v", conn.IPv4.Verdict, conn.IPv6.Verdict, conn.Hidden)
		m.cfg.Refresh()
	}()
}

// reprobeLoop probes again every ReprobeEvery: reachability changes
// (a router's firewall, a new prefix) without any event the node sees.
func (m *Manager) reprobeLoop() {
	t := time.NewTicker(ReprobeEvery)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.Reprobe()
		}
	}
}

// ReprobeEvery is how often the daemon probes connectivity again.
const ReprobeEvery = 15 * time.Minute

// wgMTU fits the tunnel inside the uplink: WireGuard adds 80 bytes with
// an IPv6 outer header (60 with IPv4; 80 covers both). The usual 1420
// assumes a 1500-byte uplink; on a smaller one (DHCP option 26, PPPoE)
// the encrypted packets would not fit and the tunnel would crawl.
func wgMTU(st *state.State) int {
	for _, ifc := range st.Interfaces {
		if ifc.Name == st.Uplink && ifc.MTU > 0 && ifc.MTU-80 < wg.DefaultMTU {
			return max(ifc.MTU-80, 1280) // IPv6's minimum
		}
	}
	return 0 // wg.DefaultMTU
}

// refreshLoop has the state rewritten every 10 s while overlays run, so
// peers coming and going show in the state file.
func (m *Manager) refreshLoop() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.cfg.Refresh()
		}
	}
}

// Decorate fills the overlay parts of a state the engine is building.
func (m *Manager) Decorate(st *state.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.decided && m.decision != (state.Overlays{}) {
		d := m.decision
		st.Overlays = &d
	}
	st.Connectivity = m.conn
	st.Clock = m.clk
	st.Firewall = slices.Clone(m.rules)
	if m.ygg != nil {
		st.Yggdrasil = m.ygg.State()
	}
	if m.wg != nil {
		st.WireGuard = m.wg.State()
		st.Problems = append(st.Problems, m.wg.Problems()...)
	}
	st.Problems = append(st.Problems, m.problems...)
}

// Close stops the overlays (at the end of the process; the boot-time
// daemon never does).
func (m *Manager) Close() {
	m.wgr.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ygg != nil {
		m.ygg.Close()
	}
	if m.wg != nil {
		m.wg.Close()
	}
}

func (m *Manager) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.problems = append(m.problems, msg)
	m.mu.Unlock()
	m.cfg.Logf("ERROR %s", msg)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func orNone(s string) string {
	if s == "" {
		return "no server answered"
	}
	return s
}
