package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/l2"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// Bonds enter the engine before discovery's first scan, as vlan= links
// do: every bond= is made as soon as its ports exist (createBonds, each
// scan until made), and with netinit.bond=auto the NICs are listened to
// for LACP once (formLACPBonds). A bond is then a link like a NIC: a
// candidate for the uplink, the management bridge's port; its ports are
// the bonding driver's and never managed (kernel.LinkInfo.BondPort). One
// port losing carrier leaves the bond's carrier up (the driver's), so
// nothing above it notices; all of them gone is a NIC without carrier.

// HearLACP listens on links for LACPDUs for at most window: l2.HearLACP,
// a fake in the engine's unit tests.
type HearLACP func(ctx context.Context, links []string, window time.Duration, logf console.Logf) map[string]l2.Partner

// The LACP listening's bounds. The window is opened only when 2+ NICs
// have carrier, and ends as soon as each of them heard a partner: a node
// cabled to an LACP switch waits about one LACPDU interval (1 s at the
// fast rate; a switch sends at once when its port comes up, 802.1AX-2014
// 6.4.4), a node with several plain NICs the whole window.
var (
	// lacpCarrierWait bounds the wait for the NICs' carrier (the
	// autonegotiation of a NIC just set up takes 1-3 s).
	lacpCarrierWait = 3 * time.Second
	// lacpWindow bounds the listening.
	lacpWindow = 3 * time.Second
	// lacpBundleWait bounds the wait for an auto bond's ports to reach
	// collecting/distributing (802.1AX 6.4.15: with the fast rate
	// the partners agree within a few LACPDUs of 1 s); a bond that does
	// not is removed and its first port used alone.
	lacpBundleWait = 10 * time.Second
)

// autoBondOptions are the options of a bond netinit forms from LACP: the
// fast rate (a failed port is noticed in 3 s rather than 90 s, 802.1AX
// 6.4.4) and link monitoring every 100 ms (bonding.rst: without miimon
// or arp_interval a port's failure is never noticed).
var autoBondOptions = []kernel.Option{{Name: "lacp_rate", Value: "fast"}, {Name: "miimon", Value: "100"}}

// createBonds makes the bond= bonds whose ports exist, once each: a port
// named by MAC is found by it. It returns what is still failing.
func (e *Engine) createBonds(links []kernel.LinkInfo) error {
	var errs []string
	for _, b := range e.spec.Bonds {
		e.mu.Lock()
		made := e.bondsMade[b.Name]
		e.unlock()
		if made {
			continue
		}
		ports, err := bondPorts(b, links)
		if err != nil {
			errs = append(errs, fmt.Sprintf("bond=%s: %v", b.Name, err))
			continue
		}
		var opts []kernel.Option
		for _, o := range b.Options {
			if o.Name != "mode" {
				opts = append(opts, kernel.Option{Name: o.Name, Value: o.Value})
			}
		}
		created, err := e.kernel.CreateBond(kernel.BondSpec{Name: b.Name, Ports: ports, Mode: b.Mode(), Options: opts, MTU: b.MTU})
		if err != nil {
			errs = append(errs, fmt.Sprintf("bond=%s: %v", b.Name, err))
			continue
		}
		e.mu.Lock()
		e.bondsMade[b.Name] = true
		e.unlock()
		if created {
			e.logf("%s: %s bond of %s (bond=)", b.Name, b.Mode(), strings.Join(ports, ", "))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// bondPorts resolves a bond='s ports to kernel names: a port named by MAC
// is the link with that MAC that is no bond, bridge or bond port (a
// bond's ports all carry the bond's MAC; a bond made already is not
// resolved again).
func bondPorts(b spec.Bond, links []kernel.LinkInfo) ([]string, error) {
	var out []string
	for _, p := range b.Ports {
		if !strings.Contains(p, ":") {
			if !slices.ContainsFunc(links, func(l kernel.LinkInfo) bool { return l.Name == p }) {
				return nil, fmt.Errorf("port %s not found", p)
			}
			out = append(out, p)
			continue
		}
		i := slices.IndexFunc(links, func(l kernel.LinkInfo) bool {
			return l.MAC.String() == p && l.Type != "bond" && l.Type != "bridge" && !l.BondPort
		})
		if i < 0 {
			return nil, fmt.Errorf("no link with MAC %s", p)
		}
		out = append(out, links[i].Name)
	}
	return out, nil
}

// bondPortNames are the ports of every bond= that resolve now.
func (e *Engine) bondPortNames(links []kernel.LinkInfo) []string {
	var out []string
	for _, b := range e.spec.Bonds {
		ps, _ := bondPorts(b, links)
		out = append(out, ps...)
	}
	return out
}

// hearLACP listens on each of nics for its partner from before they are
// set up (a switch port sends at once when it sees ours come up, then
// fast for 3 s, and then at most every 30 s: 802.1AX-2014 6.4.12-13), up
// to lacpCarrierWait for their carrier, and when two or more have it, up
// to lacpWindow more, ending as soon as each of those heard its partner
// (or said it cannot aggregate). It returns what was heard and the NICs
// with carrier. Each NIC has a listener of its own, so that one without
// a cable does not hold the window open; all of them have ended when it
// returns.
func (e *Engine) hearLACP(ctx context.Context, nics []string) (map[string]l2.Partner, []string) {
	hear := e.cfg.HearLACP
	if hear == nil {
		hear = l2.HearLACP
	}
	type hearing struct {
		link string
		p    l2.Partner
		ok   bool
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan hearing, len(nics))
	for _, n := range nics {
		e.spawn(func() {
			got := hear(lctx, []string{n}, lacpCarrierWait+lacpWindow, e.cfg.Logf)
			p, ok := got[n]
			results <- hearing{n, p, ok}
		})
	}
	heard := map[string]l2.Partner{}
	done := map[string]bool{}
	collect := func(h hearing) {
		done[h.link] = true
		if h.ok {
			heard[h.link] = h.p
		}
	}
	// The listeners drained: each ends at once when lctx does.
	defer func() {
		cancel()
		for len(done) < len(nics) {
			collect(<-results)
		}
	}()
	for _, n := range nics {
		if kl, err := e.kernel.Link(n); err == nil && kl.Up {
			continue // never bounced (manage)
		}
		e.upBeforeManage(n)
	}
	var up []string
	until := time.Now().Add(lacpCarrierWait)
	for {
		up = slices.DeleteFunc(slices.Clone(nics), func(n string) bool { return !e.kernel.Carrier(n) })
		if len(up) == len(nics) || time.Now().After(until) || pause.For(ctx, 20*time.Millisecond) != nil {
			break
		}
	}
	if len(up) < 2 {
		return nil, up
	}
	window := time.NewTimer(lacpWindow)
	defer window.Stop()
	for slices.ContainsFunc(up, func(n string) bool { return !done[n] }) {
		select {
		case h := <-results:
			collect(h)
		case <-window.C:
			return heard, up
		case <-ctx.Done():
			return heard, up
		}
	}
	return heard, up
}

// formLACPBonds is netinit.bond=auto: the physical NICs not given to a
// bond= are set up; when two or more have carrier they are listened to
// for LACPDUs, and the links one partner (system and key) answers on
// become one 802.3ad bond each, made before any client runs. A bond none
// of whose ports reaches collecting/distributing in lacpBundleWait is
// removed: its first port is used alone, the others are left unmanaged
// (the switch keeps them out of its aggregation anyway).
func (e *Engine) formLACPBonds(ctx context.Context) {
	if e.spec.LACP != spec.LACPAuto || len(e.cfg.Links) > 0 || e.cfg.Previous != nil {
		return
	}
	links, err := e.kernel.Links()
	if err != nil {
		e.logf("LACP: %v", err)
		return
	}
	taken := e.bondPortNames(links)
	var nics []string
	for _, l := range links {
		if l.SkipReason(e.spec.Ignore, nil) != "" || !l.Device || l.Master != 0 || slices.Contains(taken, l.Name) ||
			slices.Contains(e.vlanNames(), l.Name) {
			continue
		}
		nics = append(nics, l.Name)
	}
	if len(nics) < 2 {
		return
	}
	start := time.Now()
	heard, up := e.hearLACP(ctx, nics)
	if len(up) < 2 {
		return
	}
	e.mu.Lock()
	e.mark("lacp") // the listening ended
	e.unlock()
	groups := l2.Groups(heard)
	if len(groups) == 0 {
		e.logf("LACP: no partner on 2+ of %s after %dms: no bond", strings.Join(up, ", "), time.Since(start).Milliseconds())
		return
	}
	// A name taken by a link, or by a bond=; not by the bonding
	// module's empty bond0 (kernel.CreateBond makes it again).
	names := map[string]bool{}
	for _, l := range links {
		names[l.Name] = l.Type != "bond" || l.Ports > 0
	}
	for _, b := range e.spec.Bonds {
		names[b.Name] = true
	}
	var made []string
	for _, g := range groups {
		name := ""
		for i := 0; name == "" || names[name]; i++ {
			name = fmt.Sprintf("bond%d", i)
		}
		names[name] = true
		e.logf("%s: LACP partner %s → %s 802.3ad", strings.Join(g.Links, ", "), g.Partner, name)
		if _, err := e.kernel.CreateBond(kernel.BondSpec{Name: name, Ports: g.Links, Mode: "802.3ad", Options: autoBondOptions}); err != nil {
			e.problem("%s: LACP bond of %s: %v: its ports are used as plain NICs", name, strings.Join(g.Links, ", "), err)
			continue
		}
		e.upBeforeManage(name)
		made = append(made, name)
	}
	// The partners agree on the aggregation: each bond waits until every
	// port with carrier is collecting/distributing at both ends, all of
	// them within one bound; a bond with one such port then is kept.
	until := time.Now().Add(lacpBundleWait)
	for len(made) > 0 {
		over := time.Now().After(until)
		made = slices.DeleteFunc(made, func(name string) bool {
			b, err := e.kernel.BondStatus(name)
			var in, out []string
			for _, p := range b.Ports {
				if p.Bundled() {
					in = append(in, p.Name)
				} else if p.Carrier {
					out = append(out, p.Name)
				}
			}
			if err != nil || len(in) == 0 || len(out) > 0 && !over {
				return false
			}
			msg := fmt.Sprintf("%s: %s collecting and distributing after %dms", name, strings.Join(in, ", "), time.Since(start).Milliseconds())
			if len(out) > 0 {
				msg += fmt.Sprintf(" (%s not)", strings.Join(out, ", "))
			}
			e.logf("%s", msg)
			e.mu.Lock()
			e.mark("bond") // the first LACP bond bundled
			e.unlock()
			return true
		})
		if len(made) == 0 || over || pause.For(ctx, 50*time.Millisecond) != nil {
			break
		}
	}
	for _, name := range made {
		b, _ := e.kernel.BondStatus(name)
		if err := e.kernel.DeleteBond(name); err != nil {
			e.problem("%s: no port collecting/distributing after %s, and removing the bond failed: %v", name, lacpBundleWait, err)
			continue
		}
		var ports []string
		for _, p := range b.Ports {
			ports = append(ports, p.Name)
		}
		if len(ports) == 0 {
			continue
		}
		e.mu.Lock()
		for _, p := range ports[1:] {
			e.benched[p] = name
		}
		e.unlock()
		e.problem("%s: no port reached collecting/distributing within %s: bond removed, %s used alone", name, lacpBundleWait, ports[0])
	}
}

// upBeforeManage sets a link up before discovery manages it (LACP needs
// carrier), IPv6 prepared first as manage does (the engine owns it);
// what fails is said, and manage tries again.
func (e *Engine) upBeforeManage(name string) {
	if err := e.kernel.PrepareIPv6(name); err != nil {
		e.logf("%s: preparing IPv6: %v", name, err)
	}
	if err := e.kernel.SetUp(name); err != nil {
		e.logf("%s: set up: %v", name, err)
	}
}

// bondsStatus reads the bonds the node runs on from the kernel: each
// managed link or bridge port that is a bond.
func (e *Engine) bondsStatus(v *view) []state.Bond {
	var out []state.Bond
	seen := map[string]bool{}
	for _, l := range v.links {
		for _, n := range []string{l.name, l.nic} {
			if n == "" || seen[n] {
				continue
			}
			seen[n] = true
			b, err := e.kernel.BondStatus(n)
			if err != nil {
				continue
			}
			origin := "auto"
			if slices.ContainsFunc(e.spec.Bonds, func(s spec.Bond) bool { return s.Name == n }) {
				origin = "bond="
			}
			sb := state.Bond{Name: n, Mode: b.Mode, Origin: origin, Ports: []state.BondPort{}}
			if len(b.PartnerSystem) > 0 {
				sb.PartnerSystem, sb.PartnerKey = b.PartnerSystem.String(), b.PartnerKey
			}
			for _, p := range b.Ports {
				sp := state.BondPort{Name: p.Name, MAC: p.MAC.String(), Carrier: p.Carrier, State: p.State, MIIStatus: p.MII}
				if b.Mode == "802.3ad" {
					sp.AggregatorID, sp.Bundled = p.AggregatorID, p.Bundled()
					sp.ActorState, sp.PartnerState = kernel.LACPStateWords(p.Actor), kernel.LACPStateWords(p.Partner)
				}
				sb.Ports = append(sb.Ports, sp)
			}
			out = append(out, sb)
		}
	}
	return out
}

// unmadeBonds reports whether a bond= is still to be made.
func (e *Engine) unmadeBonds() bool {
	e.mu.Lock()
	defer e.unlock()
	return slices.ContainsFunc(e.spec.Bonds, func(b spec.Bond) bool { return !e.bondsMade[b.Name] })
}

// benchedBy is the LACP bond that left the port name unmanaged, or "".
func (e *Engine) benchedBy(name string) string {
	e.mu.Lock()
	defer e.unlock()
	return e.benched[name]
}
