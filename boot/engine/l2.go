package engine

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/threefoldtech/netinit/boot/l2"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
)

// The engine's use of what the switch says at the link layer (boot/l2):
// a listener per managed NIC, the neighbours in the status, the boot
// deadline extended for a spanning-tree port, and the VLAN hint when DHCP
// gets no answer. All of it is here; engine.go and link.go call in once
// each.

const (
	// stpGrace is what the deadline keeps after a spanning-tree port
	// starts forwarding: the DHCPv4 client's longest wait between two
	// DISCOVERs while selecting (8 s, +1 s jitter; dhcp4.retransmit), and
	// the exchange.
	stpGrace = 10 * time.Second
	// MaxExtension bounds how far a spanning-tree port can push the boot
	// deadline past the first BPDU (the forward delay is believed up to
	// 802.1D's 30 s): PID 1 waits for the verdict that much longer.
	MaxExtension = 2*l2.MaxForwardDelay + stpGrace
	// kickAfter is how long after a spanning-tree port should forward the
	// link's DHCPv4 client is kicked into sending at once (the first BPDU
	// may have come just after the port came up).
	kickAfter = time.Second
	// hintAfter is how long a link's DHCPv4 goes unanswered (three
	// DISCOVERs: 2, 4, 8 s apart) before the VLAN hint is given.
	hintAfter = 10 * time.Second
	// oneshotListenAfter is how long a oneshot run's link goes without an
	// address before its listener opens (listenL2).
	oneshotListenAfter = time.Second
)

// newL2 is the engine's listener table (netinit.lldp= says what it does
// with LLDP). Its announcements carry the kernel hostname, which netinit
// sets from DHCP at boot.
func (e *Engine) newL2() *l2.Watcher {
	return l2.New(l2.Config{Mode: e.spec.LLDP, Start: e.cfg.Start, Logf: e.cfg.Logf, Changed: e.notify,
		Hostname: func() string {
			h, err := os.Hostname()
			if err != nil || h == "(none)" || h == "localhost" {
				return ""
			}
			return h
		}})
}

// nicOf is the NIC a managed link's frames arrive on: the management
// bridge's port, the link itself otherwise; "" for a vlan= link (its
// parent carries the switch's frames untagged).
func (e *Engine) nicOf(l *linkFacts) string {
	if l.nic != "" {
		return l.nic
	}
	for _, v := range e.spec.VLANs {
		if v.Name == l.name {
			return ""
		}
	}
	return l.name
}

// listenL2 starts the link's listener, ended with the link's clients.
//
// A oneshot run (netinit up --oneshot) ends at the verdict, and there the
// listener serves only a link that waits for an address (the
// spanning-tree wait, the VLAN hint): it opens after oneshotListenAfter
// unless the link has a usable address by then, and stops at the first
// one (stopL2). Closing an AF_PACKET socket waits for an RCU grace period
// (net/packet/af_packet.c packet_release: synchronize_net), 15-20 ms on
// the CI kind of machine, which a listener opened at once added to every
// oneshot run's exit (make bench: v4-ready 30 -> 46 ms). A switch port in
// spanning tree sends a BPDU every hello time (2 s): one opened a second
// late still hears it.
func (e *Engine) listenL2(l *link) {
	e.mu.Lock()
	defer e.unlock()
	nic, ctx := e.nicOf(&l.linkFacts), l.ctx
	if nic == "" {
		return
	}
	if !e.cfg.Oneshot {
		e.spawn(func() { e.l2.Watch(ctx, nic) })
		return
	}
	ctx, l.stopL2 = context.WithCancel(ctx)
	e.spawn(func() {
		select {
		case <-ctx.Done(): // an address first, or the run ended
		case <-time.After(oneshotListenAfter):
			e.l2.Watch(ctx, nic)
		}
	})
}

// l2Status adds what each link's switch said to the status.
func (e *Engine) l2Status(v *view, st *state.NetworkStatus, now time.Time) {
	for i := range st.Links {
		if l := v.link(st.Links[i].Name); l != nil {
			if nic := e.nicOf(l); nic != "" {
				st.Links[i].LLDP, st.Links[i].SpanningTree = e.l2.Status(nic, now)
			}
		}
	}
}

// waitingLocked lists the links without a usable address from any
// client, each with its facts and its NIC (a vlan= link has none: not
// listed). The caller holds e.mu.
func (e *Engine) waitingLocked() []waitingLink {
	var out []waitingLink
	for _, l := range e.links {
		f := l.linkFacts
		f.leases = e.leasesOf(l.name)
		nic := e.nicOf(&f)
		if nic == "" || slices.ContainsFunc(f.leases, func(ls lease.Report) bool { return ls.Usable() || ls.V6OnlyWait > 0 }) {
			continue
		}
		out = append(out, waitingLink{l, f, nic})
	}
	return out
}

type waitingLink struct {
	l   *link
	f   linkFacts
	nic string
}

// stpUntil is how long the boot deadline must be held past now for the
// links without a lease whose switch port runs spanning tree: until 2 x
// its forward delay after the first BPDU, plus stpGrace; 0 when none.
func (e *Engine) stpUntil(now time.Time) time.Duration {
	e.mu.Lock()
	defer e.unlock()
	var until time.Time
	for _, w := range e.waitingLocked() {
		if at := e.l2.ForwardingAt(w.nic); !at.IsZero() && at.Add(stpGrace).After(until) {
			until = at.Add(stpGrace)
		}
	}
	return max(until.Sub(now), 0)
}

// l2Notes says, once per link, that its switch port runs spanning tree
// while it has no lease (and kicks its DHCPv4 client when the port
// forwards), and, when its DHCPv4 goes unanswered while LLDP says the
// port's VLAN is another than the one the link uses, which.
func (e *Engine) l2Notes(now time.Time) {
	var lines []string
	e.mu.Lock()
	for _, w := range e.waitingLocked() {
		l, f, nic := w.l, w.f, w.nic
		b, _, stp := e.l2.SpanningTree(nic)
		fwd := e.l2.ForwardingAt(nic) // zero without BPDUs
		if stp && !l.stpSaid {
			l.stpSaid = true
			lines = append(lines, fmt.Sprintf("%s: switch port runs spanning tree (forward delay %d s): waiting",
				nic, b.ForwardDelay/time.Second))
		}
		if stp && !l.stpKicked && now.After(fwd.Add(kickAfter)) {
			// The port forwards now: the DISCOVER goes at once, not
			// up to 8 s later at the client's next retransmission.
			l.stpKicked = true
			select {
			case l.renew4 <- struct{}{}:
			default:
			}
		}
		n, heard := e.l2.Neighbour(nic, now)
		since := f.carrierAt
		if fwd.After(since) {
			since = fwd // DHCP could not pass before
		}
		if l.vlanSaid || !heard || n.PortVLAN == 0 || !f.wants4() || f.carrierAt.IsZero() || now.Sub(since) < hintAfter {
			continue
		}
		if _, ok := f.lease(lease.SourceDHCP4); ok {
			continue
		}
		tag := 0
		if f.nic != "" {
			tag = e.spec.VLANPriv
		}
		switch {
		case tag == n.PortVLAN:
		case tag == 0:
			lines = append(lines, fmt.Sprintf("%s: no DHCP answer untagged; the switch says this port is VLAN %d — try vlan:priv=%d",
				nic, n.PortVLAN, n.PortVLAN))
		default:
			lines = append(lines, fmt.Sprintf("%s: no DHCP answer on VLAN %d (vlan:priv=%d); the switch says this port is VLAN %d",
				nic, tag, tag, n.PortVLAN))
		}
		l.vlanSaid = true
	}
	e.unlock()
	for _, s := range lines {
		e.logf("%s", s)
	}
}
