// Package overlay decides whether a node needs the overlays and runs them
// inside the process that keeps the network: Yggdrasil (every node
// reachable at a stable 200::/7 address, wherever it sits) and WireGuard
// (IPv6 egress and private overlays through a public node), behind the
// default-deny overlay firewall.
//
// The manager follows the engine's typed status (Follow) and publishes its
// own (Config.Publish); it never reads the state document. The decision is
// taken once, when the bring-up reaches its verdict, from the engine's
// status at that moment plus a bounded connectivity probe (netprobe):
// netinit.ygg= / netinit.wg= "on" and "off" are obeyed; "auto" starts an
// overlay when the node has no public IPv6; Yggdrasil's "auto-inbound"
// starts it unless a reflector proved IPv6 inbound reachability; on a 0-OS
// network-light node (version=v3light|v4) "auto" leaves Yggdrasil off. A
// Yggdrasil started before the verdict, when IPv4 came up, is stopped by
// an "auto" verdict that finds public IPv6, so that the node ends the same
// whichever came first, its lease or its RA. An RA that arrives after the
// verdict upgrades the state but does not stop an overlay that was
// started: taking the overlay down again would make the node unreachable
// for the moment it takes for peers to notice, for no gain.
//
// Yggdrasil is handed over to 0-OS's own instance when that one runs with
// the node's key (handover.go), and taken back when it is gone for good.
package overlay

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/clock"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/identity"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/overlay/firewall"
	"github.com/threefoldtech/netinit/boot/overlay/wg"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

// DefaultKeyDir is where the overlay keys live when netinit.keydir= is
// not given.
const DefaultKeyDir = "/var/cache/netinit/keys"

// Config is what the manager needs.
type Config struct {
	Spec  spec.Overlay // the overlays' keys (netinit.ygg=, netinit.wg=, ...)
	Probe spec.Probe   // where the connectivity probe looks
	// Internet says which addresses count as public (the zero value: the
	// Internet's own rules; the labs count the documentation ranges).
	Internet netprobe.Internet
	NTP      []string // netinit.ntp=: preferred to the servers DHCP gives
	// NTPPool is the clock's fallback: the public pool asked when neither
	// DHCP nor netinit.ntp= names a server (spec.Boot.NTPPool).
	NTPPool []string
	KeyDir  string // DefaultKeyDir when empty (or Spec.KeyDir)
	Logf    console.Logf
	// Publish is given the manager's status after every change (peers,
	// the probe, the clock): the state.Publisher writes the files there.
	// It is never called with the manager's lock held.
	Publish func(*state.OverlayStatus)
	// Start is when netinit started: the overlay milestones (firewall,
	// ygg_up, ygg_first_peer) go into the state's timings relative to it.
	// Zero: no milestones.
	Start time.Time
	// Clock corrects the clock (the system clock when nil; tests give a
	// fake so that the machine's clock is never touched).
	Clock *clock.Syncer
	// FloorFile is where the clock loop saves the time it confirmed
	// (clock.LoopConfig.FloorFile); "" none.
	FloorFile string
	// Bridge is the management bridge the uplink NIC moves onto after
	// its lease ("" = none): Yggdrasil's multicast discovery, started
	// on the NIC, follows it there.
	Bridge string
	// PinDir holds this boot's copy of the overlay keys ("" = none): a
	// later start in the same boot reads it first, so that a mount over
	// KeyDir (0-OS's cache disk over /var/cache) does not change them
	// (keys.PinEd25519).
	PinDir string
	// Light: a 0-OS network-light node (version=v3light|v4), where 0-OS
	// runs no Yggdrasil and the grid reaches the node over Mycelium:
	// netinit.ygg=auto leaves Yggdrasil off.
	Light bool
}

// Manager runs the overlays of one netinit process.
type Manager struct {
	cfg Config
	ctx context.Context

	mu       sync.Mutex
	decided  bool
	decision state.Overlays
	conn     *state.Connectivity
	clock    *clock.Loop // started at the first verdict
	ygg      *ygg.Node
	yggOpts  ygg.Options // what ygg was (or would be) started with; Key always set
	yggAddr  netip.Addr  // the address of yggOpts.Key
	// handover is set while 0-OS's own Yggdrasil carries the key and
	// netinit's is stopped (handover.go); zosGone is when it was found
	// missing, while it stays missing.
	handover *state.YggdrasilHandover
	zosGone  time.Time
	zosErr   string // the last error looking for it, said once
	// zosUnpeered is since when 0-OS's has been seen holding the address
	// without a peering, while netinit's runs (handOverNow).
	zosUnpeered time.Time
	watching    bool // the handover watch runs
	idWatching  bool // the identity watch runs
	// yggIdentity says where Yggdrasil's key came from (state).
	yggIdentity string
	idPath      string     // identity given by the control socket
	idBad       string     // the unusable identity file last reported
	idWarned    string     // the identity file whose mode was reported
	yggMu       sync.Mutex // serialises restarts of ygg (identity)
	wg          *wg.Tunnel
	rules       []string
	fw          *state.FirewallStatus
	early       bool          // Yggdrasil was started before the verdict
	dialled     chan struct{} // closed when the early start has its first peer up, or ended without one
	dialledOnce sync.Once
	marks       map[string]int64 // overlay milestones, ms since Config.Start
	startMu     sync.Mutex       // the early start and the verdict's start, one at a time
	problems    []string
	uplinkKey   string
	last        *state.NetworkStatus // the latest engine status, from the verdict on

	wgr sync.WaitGroup // goroutines owned by the manager

	probing bool // a Probe is running

	// applyFirewall is firewall.Apply, removeFirewall firewall.Remove,
	// probeFn m.connectivity, findZOS findZOSYggdrasil (tests replace
	// them).
	applyFirewall  func(firewall.Rules) error
	removeFirewall func() error
	probeFn        func(*state.NetworkStatus) *state.Connectivity
	findZOS        func(addr netip.Addr, peering bool) (zosYgg, error)
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
		cfg.Logf = console.Discard
	}
	if cfg.Publish == nil {
		cfg.Publish = func(*state.OverlayStatus) {}
	}
	m := &Manager{cfg: cfg, ctx: ctx, applyFirewall: firewall.Apply, removeFirewall: firewall.Remove,
		findZOS: findZOSYggdrasil, dialled: make(chan struct{})}
	m.probeFn = m.connectivity
	return m
}

// Follow has the manager follow the engine's statuses (an
// engine.Subscription's Updates) until its context ends.
func (m *Manager) Follow(updates <-chan *state.NetworkStatus) {
	m.spawn("engine status follower", func() {
		for {
			select {
			case <-m.ctx.Done():
				return
			case st := <-updates:
				m.Update(st)
			}
		}
	})
}

// Update takes a status of the engine (the statuses must not be changed
// after). At the first verdict it decides and starts the overlays (in the
// background: the boot is never held up by them); later it retries
// Yggdrasil's peers at once when the uplink or its addresses change
// (yggdrasil-go by itself can sit in a long backoff after an outage).
func (m *Manager) Update(st *state.NetworkStatus) {
	if st.Phase == state.PhaseStarting {
		m.updateEarly(st)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = st
	key := uplinkKey(st)
	if m.ygg != nil && key != m.uplinkKey {
		m.cfg.Logf("yggdrasil: uplink changed (%s), retrying peers now", key)
		m.ygg.Kick()
	}
	m.uplinkKey = key
	if m.clock != nil {
		m.clock.SetServers(m.cfg.NTP, learnedNTP(st))
	}
	if m.decided {
		return
	}
	m.decided = true
	m.startClock(st)
	m.spawn("overlay start", func() { m.start(st) })
}

// startClock starts the loop that keeps the clock right from now on; its
// first round is the one WireGuard waits for.
func (m *Manager) startClock(st *state.NetworkStatus) {
	m.clock = clock.NewLoop(clock.LoopConfig{Syncer: m.cfg.Clock, Pool: m.cfg.NTPPool,
		FloorFile: m.cfg.FloorFile, Logf: m.cfg.Logf, Changed: m.publish})
	m.clock.SetServers(m.cfg.NTP, learnedNTP(st))
	m.spawn("clock loop", func() { m.clock.Run(m.ctx) })
}

// learnedNTP are the NTP servers the uplink's leases named, each with its
// lease (the clock weighs them by it).
func learnedNTP(st *state.NetworkStatus) []clock.Server {
	var out []clock.Server
	for _, s := range st.NTPLearned {
		kind := clock.KindDHCP4
		if s.Source == lease.SourceDHCP6 {
			kind = clock.KindDHCP6
		}
		out = append(out, clock.Server{Name: s.Addr.String(), Kind: kind, Link: s.Link})
	}
	return out
}

// spawn runs fn in a goroutine the manager owns. A panic in it is
// contained: reported as a problem, the daemon and the network go on.
func (m *Manager) spawn(what string, fn func()) {
	m.wgr.Add(1)
	go func() {
		defer m.wgr.Done()
		defer func() {
			if r := recover(); r != nil {
				m.problem("internal error in %s (contained): %v", what, r)
				m.cfg.Logf("%s", debug.Stack())
				m.publish()
			}
		}()
		fn()
	}()
}

// uplinkKey identifies the uplink and its addresses.
func uplinkKey(st *state.NetworkStatus) string {
	var addrs []string
	for _, a := range st.UplinkAddrs() {
		addrs = append(addrs, a.Prefix.String())
	}
	slices.Sort(addrs)
	return st.Uplink + " " + strings.Join(addrs, ",")
}

// updateEarly starts Yggdrasil before the verdict when it can already
// help: with netinit.ygg=auto, as soon as the uplink has IPv4 and the node
// no public IPv6 (issue 16). A hidden node is reachable only through the
// overlay, and the verdict may still be seconds away (the RA wait,
// netinit.ra_timeout, on an IPv4-only link; the probe). The verdict then
// only records: WireGuard and the connectivity are decided there, and an
// RA that brings public IPv6 later does not stop Yggdrasil (see the
// package comment). auto-inbound needs the probe, so it waits for the
// verdict.
func (m *Manager) updateEarly(st *state.NetworkStatus) {
	if !m.startsEarly(st) {
		return
	}
	m.mu.Lock()
	if m.early || m.decided {
		m.mu.Unlock()
		return
	}
	m.early = true
	m.mu.Unlock()
	m.spawn("early yggdrasil start", func() { m.startEarly(st) })
}

// startsEarly reports whether the engine's status st starts Yggdrasil
// before the verdict (updateEarly).
func (m *Manager) startsEarly(st *state.NetworkStatus) bool {
	return m.cfg.Spec.Ygg == spec.YggAuto && !m.cfg.Light && hiddenOnIPv4(st)
}

// hiddenOnIPv4 reports whether the uplink has an IPv4 address and the node
// no public IPv6 (yet).
func hiddenOnIPv4(st *state.NetworkStatus) bool {
	if st.Uplink == "" || st.PublicIPv6 {
		return false
	}
	return slices.ContainsFunc(st.UplinkAddrs(), func(a state.AddrStatus) bool {
		return a.Prefix.Addr().Is4() && (a.Source == lease.SourceDHCP4 || a.Source == lease.SourceStatic)
	})
}

// startEarly brings up the firewall, then Yggdrasil, before the verdict.
func (m *Manager) startEarly(st *state.NetworkStatus) {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	m.cfg.Logf("overlays: yggdrasil starts now (netinit.ygg=auto: the uplink has IPv4 and the node no public IPv6); the verdict decides the rest")
	if m.firewallUp(overlayRules(m.cfg.Spec, state.Overlays{Yggdrasil: true}),
		"Yggdrasil is NOT started, the node is not reachable through it") != nil {
		m.markDialled()
		return
	}
	if err := m.startYggdrasil(st); err != nil {
		m.problem("yggdrasil: %v", err)
		m.markDialled()
	}
	m.publish()
}

// Dialled returns once Yggdrasil's early start (before the verdict) has
// its first peer up or has ended without one (its first-peer watch gives
// up after a minute), or when ctx ends; at once when there is none: none
// was begun and the engine's status st (the one the engine has now) does
// not begin one. The engine waits for it before it moves the uplink onto
// the management bridge (engine.Config.BeforeMove); st may reach the
// manager's follower only later.
func (m *Manager) Dialled(ctx context.Context, st *state.NetworkStatus) {
	m.mu.Lock()
	early := m.early || !m.decided && m.startsEarly(st)
	m.mu.Unlock()
	if !early {
		return
	}
	select {
	case <-m.dialled:
	case <-ctx.Done():
	}
}

func (m *Manager) markDialled() { m.dialledOnce.Do(func() { close(m.dialled) }) }

// firewallUp applies the overlay firewall and records it. The table goes
// in before ygg0 and wg0 exist (its rules match by name), so there is no
// moment when an overlay address is reachable unfiltered. On failure the
// overlays must stay down (the caller returns): an overlay address is
// reachable from the whole overlay, and an unfiltered one would expose
// every service of the node.
func (m *Manager) firewallUp(rules firewall.Rules, onFail string) error {
	spec := m.cfg.Spec
	err := m.applyFirewall(rules)
	fw := &state.FirewallStatus{Applied: err == nil, Interfaces: rules.Interfaces, Allow: []string{}}
	for _, p := range spec.Allow {
		fw.Allow = append(fw.Allow, p.String())
	}
	if err != nil {
		fw.Error = err.Error()
	}
	m.mu.Lock()
	if err != nil && m.fw != nil && m.fw.Applied {
		// The table applied before stays in force (a failed batch
		// changes nothing): say what failed beside it.
		kept := *m.fw
		kept.Error = fw.Error
		fw = &kept
	}
	m.fw = fw
	if err == nil {
		m.rules = firewall.Describe(rules)
		m.markLocked("firewall")
	}
	m.mu.Unlock()
	if err != nil {
		m.problem("overlay firewall: %v: %s", err, onFail)
		m.publish()
		return err
	}
	m.cfg.Logf("overlay firewall: inbound on %v dropped except established, ICMPv6 and %v; overlay addresses reachable only through them", rules.Interfaces, spec.Allow)
	return nil
}

// markLocked records an overlay milestone once; the caller holds m.mu.
func (m *Manager) markLocked(name string) {
	if m.cfg.Start.IsZero() {
		return
	}
	if m.marks == nil {
		m.marks = map[string]int64{}
	}
	if _, ok := m.marks[name]; !ok {
		m.marks[name] = time.Since(m.cfg.Start).Milliseconds()
	}
}

// start, at the verdict, probes, decides, and starts what was decided
// and is not running yet.
func (m *Manager) start(st *state.NetworkStatus) {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	spec := m.cfg.Spec
	conn := m.probeFn(st)
	d := Decide(spec, m.cfg.Light, st, conn)
	m.mu.Lock()
	running := m.ygg != nil || m.handover != nil
	stop := running && !d.Yggdrasil
	switch {
	case stop:
		// Started at the IPv4 lease, before the verdict, and the
		// verdict found public IPv6 (the RA came after the lease): the
		// node ends as one whose RA came first, which never started
		// it. 0-OS starts its own Yggdrasil later on every node.
		d.YggdrasilReason += " (the instance started before the verdict, when IPv4 came up, is stopped)"
	case running:
		d.YggdrasilReason += " (started before the verdict, when IPv4 came up)"
	}
	m.conn, m.decision = conn, d
	m.mu.Unlock()
	if stop {
		m.stopYggdrasil("the verdict found public IPv6")
		running = false
	}
	m.cfg.Logf("overlays: yggdrasil %s (%s); wireguard %s (%s)", onOff(d.Yggdrasil), d.YggdrasilReason, onOff(d.WireGuard), d.WireGuardReason)
	m.spawn("probe loop", m.probeLoop)
	m.mu.Lock()
	rd := d
	rd.Yggdrasil = d.Yggdrasil && m.handover == nil // 0-OS's instance needs none of netinit's rules
	m.mu.Unlock()
	rules := overlayRules(spec, rd)
	// Applied again when Yggdrasil runs already: the table is replaced in
	// one batch, and WireGuard's rules join it before wg0 exists. If that
	// fails, the early table stays in force for ygg0.
	onFail := fmt.Sprintf("the overlays (%v) are NOT started, the node is not reachable through them", rules.Interfaces)
	if running {
		onFail = "Yggdrasil keeps running behind the table applied when it started; WireGuard is NOT started"
	}
	if len(rules.Interfaces) == 0 {
		m.firewallDown()
	} else if m.firewallUp(rules, onFail) != nil {
		return
	}
	if d.Yggdrasil && !running {
		if err := m.startYggdrasil(st); err != nil {
			m.problem("yggdrasil: %v", err)
		}
	}
	if d.WireGuard {
		if err := m.startWireGuard(st); err != nil {
			m.problem("wireguard: %v", err)
		}
	}
	if d.Yggdrasil || d.WireGuard {
		m.spawn("peer status loop", m.peerLoop)
	}
	m.publish()
}

// overlayRules is the firewall for the overlays d starts: their inbound
// rules, and their addresses (Yggdrasil's whole 200::/7, which holds the
// node's address and its 300::/8 subnet, and each WireGuard address)
// reachable only through them.
func overlayRules(o spec.Overlay, d state.Overlays) firewall.Rules {
	r := firewall.Rules{Allow: o.Allow}
	if d.Yggdrasil {
		r.Interfaces = append(r.Interfaces, ygg.DefaultIfName)
		r.Owned = append(r.Owned, firewall.Owned{Interface: ygg.DefaultIfName, Prefix: YggdrasilPrefix})
	}
	if d.WireGuard {
		r.Interfaces = append(r.Interfaces, wg.DefaultIfName)
		for _, a := range o.WGAddress {
			r.Owned = append(r.Owned, firewall.Owned{Interface: wg.DefaultIfName, Prefix: netip.PrefixFrom(a.Addr(), a.Addr().BitLen())})
		}
	}
	return r
}

// YggdrasilPrefix holds every Yggdrasil address (200::/8) and subnet
// (300::/8).
var YggdrasilPrefix = netip.MustParsePrefix("200::/7")

// connectivity runs netprobe, bounded, from the managed links' addresses.
func (m *Manager) connectivity(st *state.NetworkStatus) *state.Connectivity {
	var addrs []netip.Addr
	for _, l := range st.Links {
		for _, a := range l.Addrs {
			addrs = append(addrs, a.Prefix.Addr())
		}
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	defer cancel()
	r := netprobe.Probe(ctx, addrs, netprobe.Config{Targets: m.cfg.Probe.ProbeTargets, Reflectors: m.cfg.Probe.ProbeReflectors,
		Internet: m.cfg.Internet})
	fam := func(f netprobe.Family) state.Family {
		return state.Family{Verdict: string(f.Verdict), Evidence: f.Evidence}
	}
	return &state.Connectivity{IPv4: fam(r.IPv4), IPv6: fam(r.IPv6), Hidden: r.Hidden, Probed: r.Probed, TookMS: r.TookMS}
}

// Decide is the overlay decision, from the cmdline/config modes, the
// engine's status at the verdict and the probe.
// light is a 0-OS network-light node (Config.Light).
func Decide(o spec.Overlay, light bool, st *state.NetworkStatus, conn *state.Connectivity) state.Overlays {
	var d state.Overlays
	switch {
	case o.Ygg == spec.YggOn:
		d.Yggdrasil, d.YggdrasilReason = true, "netinit.ygg=on"
	case o.Ygg == spec.YggOff:
		d.YggdrasilReason = "netinit.ygg=off"
	case light:
		// zosbase docs/internals/network-light: "Yggdrasil: Not
		// available"; the node's overlay is Mycelium, which 0-OS runs.
		d.YggdrasilReason = "0-OS network-light node (version=v3light or v4): 0-OS runs no Yggdrasil there and the grid reaches it over Mycelium (netinit.ygg=on starts it)"
	case o.Ygg == spec.YggAutoInbound:
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
	case o.WG == spec.WGOff:
		d.WireGuardReason = "netinit.wg=off"
	case len(o.WGPeers) == 0:
		d.WireGuardReason = "no netinit.wg.peer= configured"
	case o.WG == spec.WGOn:
		d.WireGuard, d.WireGuardReason = true, "netinit.wg=on"
	case st.PublicIPv6:
		d.WireGuardReason = "public IPv6: not needed for egress"
	default:
		d.WireGuard, d.WireGuardReason = true, "no public IPv6: IPv6 egress through the gateway"
	}
	return d
}

// yggOptions are the Yggdrasil node's options. NodeInfo is answered to
// any node of the whole network that asks, so it carries nothing: not the
// hostname DHCP gave (it often names the farm or the farmer), not the
// netinit version (it would tell an attacker which nodes run a vulnerable
// one). A node is known on the network by its public key; whoever needs
// more asks the grid, not the node.
func (m *Manager) yggOptions(st *state.NetworkStatus) (ygg.Options, *identity.Identity) {
	spec := m.cfg.Spec
	id := m.nodeIdentity()
	peers := spec.YggPeers
	if own := ownPrefixes(st); len(own) > 0 {
		ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
		var dropped []string
		peers, dropped = peersOutsideOwn(ctx, peers, own, lookupHost)
		cancel()
		if len(dropped) > 0 {
			m.cfg.Logf("yggdrasil: not peering with %q: inside the node's own prefixes %v", redactAll(dropped), own)
		}
	}
	opts := ygg.Options{
		Peers:     peers,
		Listen:    yggListen(spec.YggListen, st),
		Multicast: spec.YggMulticast && st.Uplink != "",
		LANPeers:  spec.YggLANPeers,
		Logf:      m.cfg.Logf,
	}
	if st.Uplink != "" {
		opts.MulticastLinks = []string{"^" + st.Uplink + "$"}
		if b := m.cfg.Bridge; b != "" && b != st.Uplink {
			opts.MulticastLinks = append(opts.MulticastLinks, "^"+b+"$")
		}
	}
	return opts, id
}

// startYggdrasil starts netinit's Yggdrasil, unless 0-OS's own runs with
// the same key (a worker restarted after the handover): then it records
// the handover. Either way the handover watch runs from then on.
func (m *Manager) startYggdrasil(st *state.NetworkStatus) error {
	opts, id := m.yggOptions(st)
	m.yggMu.Lock()
	defer m.yggMu.Unlock()
	origin, err := m.yggKey(&opts, id)
	if err != nil {
		return err
	}
	addr := ygg.AddressOf(opts.Key)
	m.mu.Lock()
	m.yggOpts, m.yggAddr, m.yggIdentity = opts, addr, origin
	m.mu.Unlock()
	m.watchHandover()
	if id == nil {
		m.watchIdentity()
	}
	if h, _ := m.zosHolds(addr, true); h != nil {
		m.mu.Lock()
		m.handover = h
		m.mu.Unlock()
		m.markDialled()
		m.cfg.Logf("yggdrasil: not started: 0-OS's own instance (%s in netns %s) holds this node's address %s", h.Interface, h.Namespace, addr)
		return m.overlayFirewall(false)
	}
	n, err := ygg.Start(m.ctx, opts)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.ygg = n
	m.problems = append(m.problems, n.Problems()...)
	m.markLocked("ygg_up")
	m.mu.Unlock()
	m.spawn("first peer watch", m.watchFirstPeer)
	m.cfg.Logf("yggdrasil: up, address %s (%s), %d peers configured, listening on %v", n.Address(), origin, len(opts.Peers), redactAll(opts.Listen))
	return nil
}

func (m *Manager) startWireGuard(st *state.NetworkStatus) error {
	spec := m.cfg.Spec
	// Set the clock first: a WireGuard peer drops handshake initiations
	// whose timestamp is not newer than the last it saw for this key, so a
	// node that reboots with an earlier clock would be ignored.
	// The clock loop's first round is that setting.
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	r, _ := m.clock.First(ctx)
	cancel()
	switch {
	case r.Measured:
		// `netinit up`: the host keeps its clock; only a wrong one is
		// worth a word.
		// After the handoff, 0-OS's ntpd keeps it.
		if r.Offset.Abs() > clock.AgreeWithin {
			keeper := r.Owner
			if keeper == "" {
				keeper = "the host"
			}
			m.problem("clock: this host's clock is %s off (ntp %s), left to %s: WireGuard handshakes may be ignored by peers that saw a later clock",
				r.Offset.Round(time.Millisecond), r.Server, keeper)
		}
	case !r.Set:
		m.problem("clock: NOT set by NTP before WireGuard (%s): handshakes may be ignored by peers that saw a later clock", orNone(r.Err))
	}
	var peers []wg.Peer
	for _, p := range spec.WGPeers {
		peers = append(peers, wg.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: spec.WGAllowed})
	}
	t, err := wg.Start(m.ctx, wg.Options{KeyDir: m.cfg.KeyDir, PinDir: m.pinDir(), Addresses: spec.WGAddress, Peers: peers,
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

// Probe runs netprobe again now (the control socket's "probe"), in the
// background; the status is published when it is done. Requests that come
// while a probe runs are coalesced into it: each probe makes connections
// to the reflectors and targets, and the control socket must not be a
// way to multiply them.
func (m *Manager) Probe() {
	m.mu.Lock()
	st := m.last
	if st == nil || m.probing {
		m.mu.Unlock()
		return // not decided yet (the first probe is still to come), or running
	}
	m.probing = true
	m.mu.Unlock()
	m.spawn("probe", func() {
		defer func() {
			m.mu.Lock()
			m.probing = false
			m.mu.Unlock()
		}()
		conn := m.probeFn(st)
		m.mu.Lock()
		m.conn = conn
		m.mu.Unlock()
		m.cfg.Logf("probe: IPv4 %s, IPv6 %s, hidden %v", conn.IPv4.Verdict, conn.IPv6.Verdict, conn.Hidden)
		m.publish()
	})
}

// probeLoop probes again every ProbeEvery: reachability changes
// (a router's firewall, a new prefix) without any event the node sees.
func (m *Manager) probeLoop() {
	m.every(ProbeEvery, func() bool { m.Probe(); return true })
}

// every calls fn every d until ctx ends or fn returns false.
func (m *Manager) every(d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}

// ProbeEvery is how often the daemon probes connectivity again.
const ProbeEvery = 15 * time.Minute

// wgMTU fits the tunnel inside the uplink: WireGuard adds 80 bytes with
// an IPv6 outer header (60 with IPv4; 80 covers both). The usual 1420
// assumes a 1500-byte uplink; on a smaller one (DHCP option 26, PPPoE)
// the encrypted packets would not fit and the tunnel would crawl.
func wgMTU(st *state.NetworkStatus) int {
	if l := st.Link(st.Uplink); l != nil && l.MTU > 0 && l.MTU-80 < wg.DefaultMTU {
		return max(l.MTU-80, 1280) // IPv6's minimum
	}
	return 0 // wg.DefaultMTU
}

// peerLoop publishes the status every 10 s while overlays run, so peers
// coming and going show in the state file.
func (m *Manager) peerLoop() {
	m.every(10*time.Second, func() bool { m.publish(); return true })
}

// publish hands the manager's status to Config.Publish.
func (m *Manager) publish() { m.cfg.Publish(m.Status()) }

// Status is what the manager decided and runs, now.
func (m *Manager) Status() *state.OverlayStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &state.OverlayStatus{}
	if m.decided && m.decision != (state.Overlays{}) {
		d := m.decision
		st.Decision = &d
	}
	st.Connectivity = m.conn
	if m.clock != nil {
		st.Clock = m.clock.State()
	}
	st.Firewall = slices.Clone(m.rules)
	if m.fw != nil {
		fw := *m.fw
		fw.Interfaces, fw.Allow = slices.Clone(fw.Interfaces), slices.Clone(fw.Allow)
		st.FirewallStatus = &fw
	}
	if m.ygg != nil {
		st.Yggdrasil = m.ygg.State()
		st.Yggdrasil.Identity = m.yggIdentity
	}
	if m.handover != nil {
		h := *m.handover
		st.YggHandover = &h
	}
	if m.wg != nil {
		st.WireGuard = m.wg.State()
		st.Problems = append(st.Problems, m.wg.Problems()...)
	}
	st.Problems = append(st.Problems, m.problems...)
	st.Timings = maps.Clone(m.marks)
	return st
}

// watchFirstPeer records when Yggdrasil has its first peer up (the
// ygg_first_peer milestone: from then on the node can be reached), bounded
// by a minute; the status is published at once.
func (m *Manager) watchFirstPeer() {
	end := time.Now().Add(time.Minute)
	m.every(50*time.Millisecond, func() bool {
		m.mu.Lock()
		n := m.ygg
		m.mu.Unlock()
		up := n != nil && n.AnyPeerUp()
		if up {
			m.mu.Lock()
			m.markLocked("ygg_first_peer")
			m.mu.Unlock()
			m.publish()
		}
		return !up && time.Now().Before(end)
	})
	m.markDialled()
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
