// Package engine is netinit's network bring-up: one engine used by PID 1 at
// boot and by `netinit up` in any network namespace. It finds the links,
// brings them up in parallel, runs the protocol clients on each (dhcp4, ra
// and dhcp6, or a static ip=), chooses the uplink, decides readiness, and
// publishes what it knows as a typed state.NetworkStatus: to Config.Publish
// (the state.Publisher that writes the files) from the verdict on, and to
// every Subscription (the overlays) after every change.
//
// The protocol clients act on the kernel and report what they applied as a
// lease.Report; the engine never configures addresses itself (except a
// static ip=). It observes the reports and the kernel, and decides.
package engine

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/l2"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

// Config is what the engine is asked to do.
type Config struct {
	Spec *spec.Spec
	// Links names the links to manage. Empty means every physical Ethernet
	// link (not loopback, not virtual, not matched by netinit.ignore=),
	// including those that appear while the engine runs.
	Links []string
	// SetHostname makes the engine set the kernel hostname from DHCP (PID 1
	// only).
	SetHostname bool
	// Oneshot makes Run return once the verdict is written; otherwise it
	// keeps the network until ctx ends.
	Oneshot bool
	// Problems are reported in the state (bad cmdline tokens, ...).
	Problems []string
	// Start is when netinit started; timings are relative to it.
	Start time.Time
	// Timings are milestones measured before the engine ran (modules).
	Timings map[string]int64
	// Modules is what the coldplug loaded (PID 1 only).
	Modules *state.Modules
	// Logf prints one event line.
	Logf console.Logf
	// Publish, if set, is given the status at the verdict and after every
	// change from then on (at most every 100 ms), before Run goes on:
	// the state.Publisher writes the files there. It is never called with
	// the engine's lock held.
	Publish func(*state.NetworkStatus)
	// Kernel is where the engine reads and changes links (nil: kernel.Netlink).
	Kernel Kernel
	// Clients runs the protocol clients (cmd/netinit: clients.Linux;
	// nil: none runs).
	Clients Clients
	// Internet says which addresses count as public (the zero value: the
	// Internet's own rules; the labs count the documentation ranges).
	Internet netprobe.Internet
	// HearLACP listens for LACPDUs for netinit.bond=auto (nil:
	// l2.HearLACP).
	HearLACP HearLACP
	// Previous is what an earlier process left (the daemon gets PID
	// 1's): the uplink it elected stays the uplink, with its candidates,
	// instead of a second election that could pick another link while
	// the first one's default route is still in the kernel. Only the
	// daemon's re-election moves it then.
	Previous *Previous
	// BeforeMove, if set, is called when the uplink NIC, its lease in, is
	// about to move onto the management bridge, with the status then; the
	// move waits until it returns or settleWait has passed (its ctx ends
	// then). The daemon passes the overlays' Dialled: the move changes
	// the uplink under the connections Yggdrasil is making and, on a
	// one-CPU node, takes the CPU they need, and a hidden node is
	// reachable only once they are made.
	BeforeMove func(ctx context.Context, st *state.NetworkStatus)
}

// Previous is the engine's memory of an earlier process's run: the uplink
// it elected, its election, and the links it managed. Its caller reads it
// from wherever that process left it (cmd/netinit: the state file PID 1
// wrote); addresses and gateways are the leases' again.
type Previous struct {
	Uplink, UplinkReason string
	// UplinkNIC is the management bridge's port when the uplink was the
	// bridge ("" otherwise).
	UplinkNIC  string
	Candidates []PreviousCandidate
	// Links are the links it managed: a NIC it left to the next stage
	// (handed over) is not among them.
	Links []string
}

// PreviousCandidate is one candidate of an earlier election, with what
// its reachability probe found.
type PreviousCandidate struct {
	Name              string
	Probed, Reachable bool
	Evidence          []string
}

// Engine runs one bring-up. Create it with New, run it once with Run.
type Engine struct {
	cfg  Config
	spec *spec.Spec

	kernel Kernel
	// l2 listens to the switch on each managed NIC (l2.go).
	l2 *l2.Watcher
	// routes installs the clients' routes, by its rules: only the uplink
	// installs the default routes and those that compete with them.
	routes *route.Installer
	// probe checks a candidate's reachability (probeKernel; tests fake it).
	probe func(ctx context.Context, c candidate, targets []string) (bool, []string)

	mu       sync.Mutex
	links    map[string]*link
	leases   map[leaseKey]lease.Report
	ballot   election
	electing bool      // the election goroutine runs
	watching bool      // watchUplink runs
	lastMove time.Time // when the daemon last moved the uplink
	badSince time.Time // when the uplink was first seen unhealthy
	probedAt time.Time // when the uplink's reachability was last probed
	uplink   string
	upReason string
	upFixed  bool // chosen by cmdline or BOOTIF: never changes
	// bridgeTried: the management bridge was built or tried (once).
	bridgeTried bool
	moving      string          // the elected uplink being moved onto the bridge
	handedOver  map[string]bool // links left to the next stage (handOver)
	// bondsMade: the bond= bonds made (or found); benched: the ports of
	// an LACP bond that fell back to its first port, left unmanaged
	// (by the bond's name).
	bondsMade map[string]bool
	benched   map[string]string
	timings   map[string]int64
	problems  []string
	phase     state.Phase
	hostname  string

	// events and reapplies wait for unlock: nothing is logged, and no
	// client is asked to apply again, under mu.
	events    []string
	reapplies []string

	changed chan struct{}
	subs    []*Subscription // guarded by mu
	runCtx  context.Context // set once by Run before any goroutine starts
	wg      sync.WaitGroup  // every goroutine the engine starts
}

type leaseKey struct {
	link   string
	source lease.Source
}

// New prepares an engine.
func New(cfg Config) *Engine {
	if cfg.Spec == nil {
		cfg.Spec = spec.Defaults()
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if cfg.Logf == nil {
		cfg.Logf = console.Discard
	}
	if cfg.Kernel == nil {
		cfg.Kernel = kernel.Netlink{}
	}
	if cfg.Clients == nil {
		cfg.Clients = noClients{}
	}
	e := &Engine{
		cfg:        cfg,
		kernel:     cfg.Kernel,
		spec:       cfg.Spec,
		links:      map[string]*link{},
		leases:     map[leaseKey]lease.Report{},
		handedOver: map[string]bool{},
		bondsMade:  map[string]bool{},
		benched:    map[string]string{},
		timings:    map[string]int64{},
		problems:   slices.Clone(cfg.Problems),
		phase:      state.PhaseStarting,
		changed:    make(chan struct{}, 1),
	}
	e.probe = e.probeKernel
	e.routes = route.New(route.Config{Uplink: e.uplinkFor, Protected: cfg.Spec.WGAddress, Logf: cfg.Logf,
		Problem: e.addProblem, Kernel: cfg.Kernel})
	for k, v := range cfg.Timings {
		e.timings[k] = v
	}
	e.l2 = e.newL2()
	e.ballot.cmdline = cfg.Spec.Uplink
	if p := cfg.Previous; p != nil && p.Uplink != "" &&
		slices.Contains([]string{reasonReachable, reasonReelected, reasonFirst}, p.UplinkReason) {
		e.ballot.kept, e.ballot.keptReason = p.Uplink, p.UplinkReason
		for _, c := range p.Candidates {
			e.ballot.cands = append(e.ballot.cands, candidate{name: c.Name, probed: c.Probed, reach: c.Reachable, evidence: slices.Clone(c.Evidence)})
			e.ballot.asked = append(e.ballot.asked, c.Name)
		}
		e.ballot.decided = true
	}
	e.mu.Lock()
	e.electLocked()
	e.unlock()
	return e
}

// Run brings the network up and returns the status at the verdict (ready,
// degraded or offline). With Oneshot it returns right after the verdict
// has been published; otherwise it keeps following leases and RAs, and
// publishing the status on every change, until ctx ends. The protocol
// clients leave their configuration in place when they stop, so the
// network survives the process.
func (e *Engine) Run(ctx context.Context) (*state.NetworkStatus, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		e.wg.Wait()
	}()
	e.runCtx = ctx
	deadline := time.NewTimer(e.spec.Timeout)
	defer deadline.Stop()

	e.logf("bring-up: deadline %s, RA wait %s", e.spec.Timeout, e.spec.RATimeout)
	e.spawn(func() { e.discover(ctx) })

	// Wait for the verdict: ready, or the deadline.
	tick := time.NewTicker(50 * time.Millisecond) // RA-wait bounds are timed, not event-driven
	defer tick.Stop()
	var st *state.NetworkStatus
	for st == nil {
		select {
		case <-ctx.Done():
			st = e.verdict(false)
		case <-deadline.C:
			// A link whose switch port runs spanning tree gets until
			// it forwards, and a DHCP exchange (l2.go).
			if d := e.stpUntil(time.Now()); d > 0 {
				e.logf("bring-up: deadline extended by %.0fs for a spanning-tree port", d.Seconds())
				deadline.Reset(d)
				continue
			}
			st = e.verdict(false)
		case <-e.changed:
			if e.ready() {
				st = e.verdict(true)
			} else if e.subscribed() {
				// The overlays may start before the verdict (a hidden
				// node's Yggdrasil, once IPv4 is up).
				e.offer(e.Status())
			}
		case <-tick.C:
			if e.ready() {
				st = e.verdict(true)
			}
			e.l2Notes(time.Now())
		}
	}
	if e.cfg.Oneshot || ctx.Err() != nil {
		return st, nil
	}
	// Keep the network: publish the status after every change, at most
	// every 100 ms, and every watchEvery (what the kernel shows changes
	// without a report: lifetimes); watch the uplink (re-election). A
	// link's change (carrier, operstate) is a change: the state shows a
	// pulled cable within 100 ms, not at the next watchEvery.
	e.spawn(func() { e.watchLinks(ctx) })
	watch := time.NewTicker(watchEvery)
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return e.Status(), nil
		case <-watch.C:
			e.spawn(func() { e.watchUplink(ctx, time.Now()) })
			e.l2Notes(time.Now())
			e.notify()
		case <-e.changed:
			time.Sleep(100 * time.Millisecond)
			e.handOverOthers()
			e.mu.Lock()
			was := e.phase
			v := e.viewLocked()
			if e.settleLocked(v, ready(v, time.Now())) != was {
				e.logLocked("phase %s -> %s", was, e.phase)
			}
			e.unlock()
			e.publish(e.statusOf(v))
		}
	}
}

// watchLinks has every link change the kernel reports publish the
// status, until ctx ends. A watch that ends (the netlink socket's buffer
// overran) is said once and started again a second later; meanwhile
// watchEvery still publishes.
func (e *Engine) watchLinks(ctx context.Context) {
	said := false
	for ctx.Err() == nil {
		err := e.kernel.LinkChanges(ctx, e.notify)
		if err == nil || ctx.Err() != nil {
			return
		}
		if !said {
			e.logf("%v: watching again (carrier changes show within %s meanwhile)", err, watchEvery)
			said = true
		}
		e.notify() // what changed while nobody watched
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// verdict fixes the phase, publishes the status and says so on the
// console.
func (e *Engine) verdict(ready bool) *state.NetworkStatus {
	e.handOverOthers()
	e.mu.Lock()
	v := e.viewLocked()
	e.settleLocked(v, ready)
	e.unlock()
	st := e.statusOf(v)
	e.publish(st)
	var addrs []netip.Prefix
	for _, a := range st.UplinkAddrs() {
		if a.Source != lease.SourceKernel {
			addrs = append(addrs, a.Prefix)
		}
	}
	pub := "no"
	if st.PublicIPv6 {
		pub = "yes"
	}
	e.logf("%s after %.2fs: uplink %s %v, dns %v, public IPv6: %s", st.Phase,
		time.Since(e.cfg.Start).Seconds(), orNone(st.Uplink), addrs, st.DNS, pub)
	return st
}

// settleLocked sets the phase: ready when ready, else degraded when
// something is usable, else offline; the first time a phase is reached is
// recorded in the timings. v is the view taken under the same hold of
// e.mu, and is brought up to date with the phase and its timing so that
// it can be published. The caller holds e.mu.
func (e *Engine) settleLocked(v *view, isReady bool) state.Phase {
	e.phase = settle(v, isReady)
	e.mark(string(e.phase))
	v.phase = e.phase
	v.timings[string(e.phase)] = e.timings[string(e.phase)]
	return e.phase
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// publish sets the hostname from the status (PID 1), and hands the
// status to Config.Publish and to the subscribers.
func (e *Engine) publish(st *state.NetworkStatus) {
	if e.cfg.SetHostname && st.Hostname != "" && st.Hostname != e.hostname {
		if err := e.kernel.SetHostname(st.Hostname); err != nil {
			e.logf("hostname %q: %v", st.Hostname, err)
		} else {
			e.hostname = st.Hostname
			e.logf("hostname set to %s", st.Hostname)
		}
	}
	if e.cfg.Publish != nil {
		e.cfg.Publish(st)
	}
	e.offer(st)
}

// notify tells the Run loop that something changed.
func (e *Engine) notify() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *Engine) logf(format string, args ...any) { e.cfg.Logf(format, args...) }

// logLocked logs an event once e.mu is let go of (unlock). The caller
// holds e.mu.
func (e *Engine) logLocked(format string, args ...any) {
	e.events = append(e.events, fmt.Sprintf(format, args...))
}

// unlock lets go of e.mu, then logs the events and has the clients apply
// again that were asked for under it.
func (e *Engine) unlock() {
	events, reapplies := e.events, e.reapplies
	e.events, e.reapplies = nil, nil
	e.mu.Unlock()
	for _, ev := range events {
		e.logf("%s", ev)
	}
	for _, name := range reapplies {
		e.reapply(name)
	}
}

// problem records something a farmer must know and prints it.
func (e *Engine) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.problems = append(e.problems, msg)
	e.unlock()
	e.logf("%s", msg)
}

// addProblem records msg (said already) as a problem.
func (e *Engine) addProblem(msg string) {
	e.mu.Lock()
	e.problems = append(e.problems, msg)
	e.unlock()
	e.notify()
}

// mark records a milestone once; the caller holds e.mu.
func (e *Engine) mark(name string) {
	if _, ok := e.timings[name]; !ok {
		e.timings[name] = time.Since(e.cfg.Start).Milliseconds()
	}
}

// report is the lease.Reporter handed to every client.
func (e *Engine) report(l lease.Report) {
	e.mu.Lock()
	k := leaseKey{l.Link, l.Source}
	if lk := e.links[l.Link]; lk != nil && l.Source == lease.SourceDHCP4 {
		if old, ok := e.leases[k]; ok && l.Status == "bound" && (old.Status == "renewing" || old.Status == "rebinding") {
			lk.renewals4++
		}
	}
	if len(l.Addresses) == 0 && len(l.Routes) == 0 && len(l.DNS) == 0 && !l.Managed && !l.Other && l.V6OnlyWait == 0 {
		delete(e.leases, k)
	} else {
		e.leases[k] = l
	}
	if lk := e.links[l.Link]; lk != nil && l.Source == lease.SourceDHCP4 && (l.Usable() || l.V6OnlyWait > 0) {
		lk.leased()
	}
	if l.Usable() {
		if lk := e.links[l.Link]; lk != nil && lk.stopL2 != nil {
			lk.stopL2() // a oneshot run's listener: the link has an address (listenL2)
		}
		switch l.Source {
		case lease.SourceDHCP4:
			e.mark("lease4")
		case lease.SourceSLAAC, lease.SourceDHCP6:
			e.mark("address6")
		}
	}
	if l.Source == lease.SourceSLAAC {
		e.mark("ra")
		if lk := e.links[l.Link]; lk != nil && lk.raAt.IsZero() {
			lk.raAt = time.Now()
		}
	}
	e.stamp6Locked(l.Link)
	port := ""
	if lk := e.links[l.Link]; lk != nil {
		port = lk.nic
	}
	e.unlock()
	if port != "" && l.MTU > 0 {
		e.portMTU(port, l.MTU)
	}
	if l.Source == lease.SourceSLAAC && (l.Managed || l.Other) {
		e.startDHCP6(l.Link, l.Managed, l.Other)
	}
	e.notify()
}

// stamp6Locked records when a link's IPv6 first became complete (the
// start of its DHCPv4 grace period). The caller holds e.mu.
func (e *Engine) stamp6Locked(name string) {
	lk := e.links[name]
	if lk == nil || !lk.full6At.IsZero() {
		return
	}
	f := lk.linkFacts
	f.leases = e.leasesOf(name)
	if complete6(&f, e.spec) {
		lk.full6At = time.Now()
	}
}

// discover finds the links to manage, now and as they appear, until ctx
// ends (or, with an explicit list, until every listed link was found).
func (e *Engine) discover(ctx context.Context) {
	want := e.cfg.Links
	warned := map[string]bool{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	vlansReported, bondsReported := false, false
	first := true
	var names []string // the links the last full scan listed, sorted
	// LACP bonds are formed before the first scan (bond.go).
	e.formLACPBonds(ctx)
	for {
		// bond= bonds, like vlan= links, as soon as their ports exist
		// (first: a vlan= may ride on a bond).
		if e.unmadeBonds() {
			links, _ := e.kernel.Links()
			if err := e.createBonds(links); err != nil && !bondsReported && time.Since(start) > 5*time.Second {
				bondsReported = true
				e.problem("%v (still trying)", err)
			}
		}
		// vlan= links are made as soon as their parent NIC exists (its
		// driver may still be probing); what is still failing after 5 s
		// is reported once, and retried.
		if err := e.createVLANs(); err != nil && !vlansReported && time.Since(start) > 5*time.Second {
			vlansReported = true
			e.problem("%v (still trying)", err)
		}
		// A full scan only when a link appeared or went (by its name
		// under /sys/class/net): listing every link with its attributes
		// every second takes ~6 ms on a node with 300 links (its VMs'
		// taps, its containers' veths), for as long as the daemon runs.
		// Nothing the engine manages or skipped changes otherwise: a
		// managed link stays known, and a skipped one is judged by what
		// does not change (its name, type, device). names are what the
		// last scan listed, not what /sys showed then: a link is in /sys
		// a moment before a netlink dump shows it (register_netdevice),
		// and is then scanned again.
		cur, err := e.kernel.Names()
		if first || err != nil || !slices.Equal(cur, names) {
			links, err := e.kernel.Links()
			if err != nil {
				e.logf("%v", err)
			}
			names = names[:0]
			var found []kernel.LinkInfo
			for _, l := range links {
				name := l.Name
				names = append(names, name)
				if e.known(name) {
					continue
				}
				if len(want) > 0 {
					if !slices.Contains(want, name) {
						continue
					}
				} else if bond := e.benchedBy(name); bond != "" {
					if !warned[name] {
						warned[name] = true
						e.logf("%s: not managed (a port of %s, which fell back to its first port)", name, bond)
					}
					continue
				} else if why := l.SkipReason(e.spec.Ignore, e.vlanNames()); why != "" {
					// Say it for links a farmer may expect to be used.
					if !warned[name] && strings.HasPrefix(why, "netinit.ignore") {
						warned[name] = true
						e.logf("%s: not managed (%s)", name, why)
					}
					continue
				}
				found = append(found, l)
			}
			if err != nil {
				names = nil // scan again
			}
			slices.Sort(names)
			// The only link to manage is the uplink from the start (it
			// may get the management bridge): the sole one asked for,
			// or the sole NIC of the first scan.
			only := len(found) == 1 && (len(want) == 1 || len(want) == 0 && first)
			first = false
			for _, l := range found {
				e.adopt(ctx, l, only)
			}
		}
		if len(want) > 0 {
			e.mu.Lock()
			n := len(e.links)
			e.unlock()
			if n == len(want) {
				return
			}
			if time.Since(start) > 5*time.Second {
				for _, w := range want {
					e.mu.Lock()
					_, ok := e.links[w]
					e.unlock()
					if !ok && !warned["want:"+w] {
						warned["want:"+w] = true
						e.problem("link %s: not found (still looking)", w)
					}
				}
			}
		}
		if time.Since(start) > 30*time.Second {
			// Links that appear later (a NIC driver loaded late, a USB
			// NIC) are still picked up, at a calmer pace.
			t.Reset(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// known reports whether the link name is managed already, as itself or
// as the management bridge's port.
func (e *Engine) known(name string) bool {
	e.mu.Lock()
	defer e.unlock()
	if _, ok := e.links[name]; ok || e.handedOver[name] {
		return true
	}
	for _, l := range e.links {
		if l.nic == name {
			return true
		}
	}
	return false
}

// Status builds the engine's current status from the leases and the
// kernel. The kernel is read without the engine's lock held.
func (e *Engine) Status() *state.NetworkStatus {
	e.mu.Lock()
	v := e.viewLocked()
	e.unlock()
	return e.statusOf(v)
}

// statusOf builds the status of view v, a fresh copy nothing else holds,
// with the kernel read without the engine's lock held.
func (e *Engine) statusOf(v *view) *state.NetworkStatus {
	kern := map[string]kernel.Link{}
	for _, l := range v.links {
		if kl, err := e.kernel.Link(l.name); err == nil {
			kern[l.name] = kl
		}
	}
	now := time.Now()
	st := merge(v, kern, now)
	e.l2Status(v, st, now)
	st.Bonds = e.bondsStatus(v)
	st.PID = os.Getpid()
	return st
}

// viewLocked copies what the pure core decides on. The caller holds e.mu.
func (e *Engine) viewLocked() *view {
	v := &view{
		spec: e.spec, internet: e.cfg.Internet, uplink: e.uplink, upReason: e.upReason, upFixed: e.upFixed,
		cands: slices.Clone(e.ballot.cands),
		phase: e.phase, problems: slices.Clone(e.problems), modules: e.cfg.Modules,
		timings: maps.Clone(e.timings),
	}
	for _, l := range e.links {
		f := l.linkFacts
		f.leases = e.leasesOf(l.name)
		v.links = append(v.links, f)
	}
	slices.SortFunc(v.links, func(a, b linkFacts) int { return strings.Compare(a.name, b.name) })
	return v
}

// leasesOf lists a link's leases in sourceOrder.
func (e *Engine) leasesOf(link string) []lease.Report {
	var out []lease.Report
	for _, src := range sourceOrder {
		if l, ok := e.leases[leaseKey{link, src}]; ok {
			out = append(out, l)
		}
	}
	return out
}
