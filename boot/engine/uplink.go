package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/state"
)

// electionWindow is how long, after the first candidate, the election
// waits for the other links with carrier to become candidates; probeTime
// bounds the reachability probes that follow (a lost DNS answer or SYN is
// retried within it), and once one candidate proved reachable the others
// get probeLinger more. Together they are the most an election holds the
// boot.
const (
	electionWindow = 3 * time.Second
	probeTime      = 5 * time.Second
	probeLinger    = time.Second
)

// uplinkFor answers boot/route (route.Config.Uplink), which asks before
// it installs routes that only the uplink may have: default routes and
// routes that compete with them. def says they include a default route
// (or one less specific than /8): the first link that asks so is a
// candidate; when it is the only managed link it becomes the uplink at
// once (one NIC: no delay), else the election runs (runElection) and,
// until it is decided, no link installs one. Links without carrier yet
// count: a NIC that negotiates its link a second later (1000BASE-T
// autonegotiation) may be the one that reaches the grid.
func (e *Engine) uplinkFor(link string, def bool) bool {
	e.mu.Lock()
	defer e.unlock()
	if def && !slices.Contains(e.ballot.asked, link) {
		e.ballot.asked = append(e.ballot.asked, link)
		e.ballot.cands = append(e.ballot.cands, candidate{name: link})
		if !e.ballot.decided && !e.electing {
			if e.upFixed || e.contendersLocked() <= 1 {
				e.ballot.decided = true
			} else {
				e.electing = true
				e.logLocked("uplink: %s has a default router, other links are managed: electing", link)
				e.spawn(func() { e.runElection(e.runCtx) })
			}
		}
	}
	e.electLocked()
	if e.uplink == link && e.bridgeElectedLocked() {
		return false // its clients move onto the management bridge
	}
	return e.uplink == link
}

// contendersLocked counts the managed links that could become
// candidates. The caller holds e.mu.
func (e *Engine) contendersLocked() int {
	n := 0
	for _, l := range e.links {
		if l.wants4() || l.wantsRA() {
			n++
		}
	}
	return n
}

// electLocked applies the election to the engine and says when the
// uplink changes. When it changes, the clients of the old and the new
// uplink apply again (once e.mu is let go of): the routes only the uplink
// may have go out of the one and into the other (boot/route), whatever
// moved it (the election, the daemon's re-election, the move onto the
// management bridge, a kept uplink). The caller holds e.mu.
func (e *Engine) electLocked() {
	link, reason, fixed := elect(e.ballot)
	if link == e.uplink && reason == e.upReason {
		return
	}
	if link != e.uplink {
		e.reapplies = append(e.reapplies, slices.DeleteFunc([]string{e.uplink, link}, func(n string) bool { return n == "" })...)
	}
	e.uplink, e.upReason, e.upFixed = link, reason, fixed
	switch reason {
	case reasonFirst:
		e.logLocked("uplink %s (first link with a default route)", link)
	case reasonBootif:
		e.logLocked("uplink %s (BOOTIF %s)", link, e.spec.BootIF)
	case reasonReachable:
		e.logLocked("uplink %s (reaches the probe targets through its own gateway)", link)
	}
}

// runElection waits up to electionWindow for every managed link to become
// a candidate, probes the candidates' reachability in parallel
// (bounded by probeTime), decides, and has the winner's clients install
// their default routes.
func (e *Engine) runElection(ctx context.Context) {
	deadline := time.Now().Add(electionWindow)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		all := e.allAskedLocked()
		e.unlock()
		if all || pause.For(ctx, 50*time.Millisecond) != nil {
			break
		}
	}
	e.mu.Lock()
	cands := e.candidatesLocked()
	targets := e.targets()
	e.unlock()
	if len(cands) > 1 {
		e.probeAll(ctx, cands, targets)
	}
	e.mu.Lock()
	e.updateCandidatesLocked(cands)
	e.ballot.decided = true
	e.electing = false
	e.electLocked() // the winner's clients apply again (unlock)
	e.bridgeElectedLocked()
	e.unlock()
	e.notify()
}

// probeAll probes every candidate in parallel, in place, bounded by
// probeTime, and by probeLinger once one candidate proved reachable (a
// dead-end link would otherwise hold the boot for the whole probeTime).
func (e *Engine) probeAll(ctx context.Context, cands []candidate, targets []string) {
	pctx, cancel := context.WithTimeout(ctx, probeTime)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		linger *time.Timer
	)
	defer func() {
		mu.Lock()
		if linger != nil {
			linger.Stop()
		}
		mu.Unlock()
	}()
	for i := range cands {
		wg.Add(1)
		go func(c *candidate) {
			defer wg.Done()
			c.reach, c.evidence = e.probe(pctx, *c, targets)
			c.probed = true
			if c.reach {
				mu.Lock()
				if linger == nil {
					linger = time.AfterFunc(probeLinger, cancel)
				}
				mu.Unlock()
			}
			e.logf("uplink: candidate %s (gateways %v): reachable %v: %q", c.name, validAddrs(c.gw4, c.gw6), c.reach, c.evidence)
		}(&cands[i])
	}
	wg.Wait()
}

// probeKernel probes c through the kernel (Kernel.Probe).
func (e *Engine) probeKernel(ctx context.Context, c candidate, targets []string) (bool, []string) {
	return e.kernel.Probe(ctx, kernel.Candidate{Link: c.name, GW4: c.gw4, GW6: c.gw6, DNS: c.dns}, targets)
}

// updateCandidatesLocked records what was found out about cs; candidates
// that asked meanwhile are kept. The caller holds e.mu.
func (e *Engine) updateCandidatesLocked(cs []candidate) {
	for _, c := range cs {
		if i := slices.IndexFunc(e.ballot.cands, func(k candidate) bool { return k.name == c.name }); i >= 0 {
			e.ballot.cands[i] = c
		} else {
			e.ballot.cands = append(e.ballot.cands, c)
		}
	}
}

// allAskedLocked reports whether every managed link is a candidate whose
// lease or RA has been reported. The caller holds e.mu.
func (e *Engine) allAskedLocked() bool {
	for _, l := range e.links {
		if !(l.wants4() || l.wantsRA()) {
			continue
		}
		if !slices.Contains(e.ballot.asked, l.name) || !e.hasRouterLocked(l.name) {
			return false
		}
	}
	return true
}

func (e *Engine) hasRouterLocked(name string) bool {
	for _, ls := range e.leasesOf(name) {
		if len(ls.Routers) > 0 {
			return true
		}
	}
	return false
}

// candidatesLocked fills the candidates' addresses, gateways and DNS from
// their leases. The caller holds e.mu.
func (e *Engine) candidatesLocked() []candidate {
	var out []candidate
	for _, name := range e.ballot.asked {
		c := candidate{name: name}
		if i := slices.IndexFunc(e.ballot.cands, func(k candidate) bool { return k.name == name }); i >= 0 {
			c = e.ballot.cands[i]
		}
		c.addr, c.gw4, c.gw6, c.dns = fillCandidate(e.leasesOf(name))
		out = append(out, c)
	}
	return out
}

// fillCandidate reads a candidate's address, gateways and DNS servers from
// its leases (in sourceOrder).
func fillCandidate(leases []lease.Report) (addr, gw4, gw6 netip.Addr, dns []netip.Addr) {
	for _, ls := range leases {
		for _, r := range ls.Routers {
			if r.Is4() && !gw4.IsValid() {
				gw4 = r
			}
			if r.Is6() && !gw6.IsValid() {
				gw6 = r
			}
		}
		for _, a := range ls.Addresses {
			if !addr.IsValid() || (addr.Is6() && a.Prefix.Addr().Is4()) {
				addr = a.Prefix.Addr()
			}
		}
		dns = append(dns, ls.DNS...)
	}
	return addr, gw4, gw6, dns
}

// reapply has the link's clients apply their configuration again, so that
// a new uplink installs its default routes and an old one withdraws them.
func (e *Engine) reapply(name string) {
	e.mu.Lock()
	l := e.links[name]
	e.unlock()
	if l == nil {
		return
	}
	for _, ch := range []chan struct{}{l.reapply4, l.reapply6, l.reapplyStatic} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// candidatesStatus is the status's view of the election.
func candidatesStatus(cs []candidate) []state.CandidateStatus {
	var out []state.CandidateStatus
	for _, c := range cs {
		out = append(out, state.CandidateStatus{Name: c.name, Address: c.addr, Gateways: validAddrs(c.gw4, c.gw6),
			Probed: c.probed, Reachable: c.reach, Evidence: slices.Clone(c.evidence)})
	}
	return out
}

// validAddrs lists the valid addresses among as.
func validAddrs(as ...netip.Addr) []netip.Addr {
	return slices.DeleteFunc(slices.Clone(as), func(a netip.Addr) bool { return !a.IsValid() })
}

// targets are the election's probe targets (spec.Probe.UplinkTargets:
// netinit.probe.targets=, else the grid's).
func (e *Engine) targets() []string { return e.spec.UplinkTargets }

// watchEvery is how often the daemon looks at the uplink's health; its
// reachability is probed at most every probeEvery.
const (
	watchEvery = 10 * time.Second
	probeEvery = time.Minute
)

// watchUplink is the daemon's re-election (issue 11 item 2). The uplink is
// unhealthy when it has no carrier, no usable lease with a default route,
// or (probed at most every probeEvery) no longer reaches the probe
// targets. When it has been unhealthy for reelectGrace and another
// candidate reaches the targets now, the uplink moves there (never more
// than once per reelectGap, see reelect): the old uplink's clients
// withdraw their default routes, the new one's install theirs, and the
// state says why. A fixed uplink (cmdline, BOOTIF) never moves.
func (e *Engine) watchUplink(ctx context.Context, now time.Time) {
	e.mu.Lock()
	if e.upFixed || e.uplink == "" || len(e.ballot.asked) < 2 || e.watching || !e.ballot.decided {
		e.unlock()
		return
	}
	e.watching = true
	up := e.uplink
	cands := e.candidatesLocked()
	healthy, why := e.leaseHealthLocked(up)
	probeUp := healthy && now.Sub(e.probedAt) >= probeEvery
	e.unlock()
	defer func() {
		e.mu.Lock()
		e.watching = false
		e.unlock()
	}()
	if healthy && !e.kernel.Carrier(up) {
		healthy, why = false, "no carrier"
	}
	targets := e.targets()
	if probeUp {
		i := slices.IndexFunc(cands, func(c candidate) bool { return c.name == up })
		pctx, cancel := context.WithTimeout(ctx, probeTime)
		reach, ev := e.probe(pctx, cands[i], targets)
		cancel()
		if !reach {
			healthy, why = false, fmt.Sprintf("no longer reaches the probe targets (%s)", strings.Join(ev, "; "))
		}
		e.mu.Lock()
		e.probedAt = now
		e.unlock()
	}
	e.mu.Lock()
	switch {
	case healthy:
		e.badSince = time.Time{}
	case e.badSince.IsZero():
		e.badSince = now
		e.logLocked("uplink %s unhealthy: %s", up, why)
	}
	bad, last := e.badSince, e.lastMove
	e.unlock()
	if !reelectDue(now, bad, last) {
		return
	}
	others := slices.DeleteFunc(slices.Clone(cands), func(c candidate) bool { return c.name == up })
	e.probeAll(ctx, others, targets)
	e.mu.Lock()
	to, ok := reelect(now, up, e.badSince, e.lastMove, others, e.ballot.asked)
	if ok && e.uplink == up {
		e.updateCandidatesLocked(others)
		e.ballot.moved = to
		e.lastMove, e.badSince, e.probedAt = now, time.Time{}, time.Time{}
		e.electLocked()
		e.problems = append(e.problems, fmt.Sprintf("uplink moved from %s to %s: %s was unhealthy (%s) for %s, %s reaches the probe targets",
			up, to, up, why, now.Sub(bad).Round(time.Second), to))
		e.logLocked("uplink moved from %s to %s (%s unhealthy: %s)", up, to, up, why)
	}
	e.unlock() // the clients of both apply again
	if ok {
		e.notify()
	}
}

// leaseHealthLocked reports whether link has a usable lease with a default
// route, and if not, why. The caller holds e.mu.
func (e *Engine) leaseHealthLocked(link string) (bool, string) {
	for _, ls := range e.leasesOf(link) {
		if ls.Usable() && ls.HasDefault() {
			return true, ""
		}
	}
	return false, "no lease or RA with a default route"
}
