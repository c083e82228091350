package overlay

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// Yggdrasil is handed over to 0-OS. After the handoff 0-OS's networkd
// starts its own Yggdrasil with the node identity's key (zosbase
// pkg/network/yggdrasil), the key netinit's instance runs with once it
// found the identity. Two live instances with one key do not make two
// nodes: ironwood keeps one tree entry per key, so the key's place flips
// between them and traffic to the node's 200::/7 address and to its
// 300::/64 workloads lands in netinit's copy in the host namespace, which
// has no route to them, on and off. So netinit's instance steps aside: the
// daemon looks for 0-OS's (findZOSYggdrasil: a ygg0 in the ndmz or public
// namespace holding the node's own address) every HandoverPoll and, once
// it is there and peered, stops its own (TUN, listeners, multicast, its
// firewall rules) and does not start it again while 0-OS's runs, also
// after a worker restart. Until then netinit's keeps the node reachable,
// which is what it is for during the boot. "Peered" matters: networkd
// starts Yggdrasil in ndmz right after it made the namespace, while the
// namespace's own DHCP client (dhcpcd npub4) is still getting its lease
// (zosbase ndmz.Create only probes for one), and yggdrasil-go redials a
// peer that failed with a backoff doubling from a second (link.go); a
// handover at the first sight of 0-OS's TUN left the node off the overlay
// until then (13 s in cmd/netinit's lab, every time traffic was flowing).
// So netinit waits for 0-OS's to hold a connection (yggPeered), for
// HandoverUnpeered at most. When 0-OS's is gone for the take-back
// grace without a break (netinit.ygg.takeback=, spec.DefaultYggTakeBack:
// longer than a zinit or networkd restart, so a stop for good), netinit
// takes the key back; when 0-OS's returns, it is handed over again within
// a poll.

// HandoverPoll is how often the daemon looks for 0-OS's own Yggdrasil:
// the two instances overlap at most this long plus the stop (well within
// 5 s). A poll is a stat per namespace until networkd made one.
const HandoverPoll = time.Second

// HandoverUnpeered is how long netinit's instance stays while 0-OS's holds
// the node's address without a peering netinit can see (its yggdrasil
// process holds no established TCP connection: still without a lease, or
// peered over QUIC only); then it steps aside all the same.
const HandoverUnpeered = time.Minute

// zosYgg is what the handover watch found of 0-OS's own Yggdrasil.
type zosYgg struct {
	NS, IfName string // where it runs; NS "" when there is none
	Peered     bool   // its process holds an established TCP connection
}

// handOverNow decides whether netinit's running instance steps aside for
// 0-OS's, found holding the node's address (z.NS != "") or not, at now;
// unpeered is since when 0-OS's has been seen without a peering (zero:
// not), and its next value.
func handOverNow(z zosYgg, unpeered, now time.Time) (bool, time.Time) {
	switch {
	case z.NS == "":
		return false, time.Time{}
	case z.Peered:
		return true, time.Time{}
	case unpeered.IsZero():
		return false, now
	}
	return now.Sub(unpeered) >= HandoverUnpeered, unpeered
}

// takeBackAfter is how long 0-OS's Yggdrasil must stay gone before
// netinit takes the key back (spec.DefaultYggTakeBack says why).
func (m *Manager) takeBackAfter() time.Duration {
	if d := m.cfg.Spec.YggTakeBack; d > 0 {
		return d
	}
	return spec.DefaultYggTakeBack
}

// watchHandover starts the handover watch once; the caller holds yggMu.
func (m *Manager) watchHandover() {
	m.mu.Lock()
	on := m.watching
	m.watching = true
	m.mu.Unlock()
	if !on {
		m.spawn("yggdrasil handover watch", func() { m.every(HandoverPoll, m.checkHandover) })
	}
}

// zosHolds returns the evidence that 0-OS's own Yggdrasil carries addr,
// nil when it does not, and what was found (an error looking is said once
// per message; found, but not known to be peered, it counts as unpeered).
// Whether it is peered is looked at only when peering asks: the evidence
// netinit steps aside on, or keeps (identity.go, startYggdrasil).
func (m *Manager) zosHolds(addr netip.Addr, peering bool) (*state.YggdrasilHandover, zosYgg) {
	z, err := m.findZOS(addr, peering)
	if err != nil {
		m.mu.Lock()
		seen := m.zosErr == err.Error()
		m.zosErr = err.Error()
		m.mu.Unlock()
		if !seen {
			m.cfg.Logf("yggdrasil: looking for 0-OS's own instance: %v", err)
		}
	}
	if z.NS == "" {
		return nil, z
	}
	return &state.YggdrasilHandover{To: "0-OS", Namespace: z.NS, Interface: z.IfName, Address: addr.String(),
		Peered: z.Peered, Since: time.Now().UTC().Truncate(time.Second), TakeBackAfterS: int64(m.takeBackAfter() / time.Second)}, z
}

// checkHandover is one poll of the handover watch.
func (m *Manager) checkHandover() bool {
	m.mu.Lock()
	addr, running, handed := m.yggAddr, m.ygg != nil, m.handover != nil
	m.mu.Unlock()
	if !addr.IsValid() || !running && !handed {
		return true // stopped by the verdict: nothing to hand over
	}
	// Peered matters only while netinit's runs: once handed over, a poll
	// only looks whether 0-OS's is still there.
	h, z := m.zosHolds(addr, running)
	switch {
	case h != nil && running:
		m.mu.Lock()
		first := m.zosUnpeered.IsZero()
		now, since := handOverNow(z, m.zosUnpeered, time.Now())
		m.zosUnpeered = since
		m.mu.Unlock()
		switch {
		case now && z.Peered:
			m.handOver(h, ", and is peered")
		case now:
			m.handOver(h, fmt.Sprintf(", with no peering seen in %s", HandoverUnpeered))
		case first:
			m.cfg.Logf("yggdrasil: 0-OS's own instance (%s in netns %s) holds this node's address %s but has no peering yet: netinit's keeps the node reachable until it has one (%s at most)",
				h.Interface, h.Namespace, h.Address, HandoverUnpeered)
		}
	case h != nil:
		m.mu.Lock()
		back := !m.zosGone.IsZero()
		m.zosGone = time.Time{}
		if back {
			m.handover.GoneSince = nil
		}
		m.mu.Unlock()
		if back {
			m.cfg.Logf("yggdrasil: 0-OS's own instance is back in netns %s", h.Namespace)
			m.publish()
		}
	case handed:
		m.zosMissing()
	default:
		m.mu.Lock()
		m.zosUnpeered = time.Time{}
		m.mu.Unlock()
	}
	return true
}

// zosMissing counts how long 0-OS's instance has been gone and takes the
// key back after the grace.
func (m *Manager) zosMissing() {
	now := time.Now()
	m.mu.Lock()
	first := m.zosGone.IsZero()
	if first {
		m.zosGone = now
		gone := now.UTC().Truncate(time.Second)
		m.handover.GoneSince = &gone
	}
	since := m.zosGone
	m.mu.Unlock()
	if first {
		m.cfg.Logf("yggdrasil: 0-OS's own instance is gone; netinit takes the key back if it stays gone for %s", m.takeBackAfter())
		m.publish()
		return
	}
	if now.Sub(since) >= m.takeBackAfter() {
		m.takeBack()
	}
}

// handOver stops netinit's Yggdrasil for 0-OS's, which h proves to run
// with the same key; how says what decided it.
func (m *Manager) handOver(h *state.YggdrasilHandover, how string) {
	m.yggMu.Lock()
	defer m.yggMu.Unlock()
	m.stepAside(h, how)
}

// stepAside stops netinit's Yggdrasil, if it runs, for 0-OS's, which h
// proves to run with the node's key; how says how it came to that. The
// caller holds yggMu.
func (m *Manager) stepAside(h *state.YggdrasilHandover, how string) {
	m.mu.Lock()
	n := m.ygg
	m.ygg, m.handover, m.zosGone, m.zosUnpeered = nil, h, time.Time{}, time.Time{}
	m.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			m.cfg.Logf("yggdrasil: %v", err)
		}
	}
	m.cfg.Logf("yggdrasil: handed to 0-OS: its own instance (%s in netns %s) holds this node's address %s%s; netinit's is stopped (its TUN, listeners and firewall rules are gone) and stays stopped while 0-OS's runs",
		h.Interface, h.Namespace, h.Address, how)
	m.overlayFirewall(false)
	freeMemory()
	m.publish()
}

// takeBack starts netinit's Yggdrasil again: 0-OS's has been gone for the
// grace.
func (m *Manager) takeBack() {
	m.mu.Lock()
	st := m.last
	m.mu.Unlock()
	m.cfg.Logf("yggdrasil: 0-OS's own instance has been gone for %s: netinit takes the key back", m.takeBackAfter())
	if st == nil {
		return
	}
	m.startMu.Lock()
	defer m.startMu.Unlock()
	m.mu.Lock()
	m.handover, m.zosGone = nil, time.Time{}
	m.mu.Unlock()
	if m.overlayFirewall(true) != nil {
		m.publish()
		return
	}
	if err := m.startYggdrasil(st); err != nil {
		m.problem("yggdrasil: taking the key back: %v", err)
	}
	m.publish()
}

// stopYggdrasil stops netinit's Yggdrasil (or forgets a handover: then
// none runs) and takes its firewall rules out.
func (m *Manager) stopYggdrasil(why string) {
	m.yggMu.Lock()
	m.mu.Lock()
	n := m.ygg
	m.ygg, m.handover, m.yggAddr = nil, nil, netip.Addr{}
	m.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			m.cfg.Logf("yggdrasil: %v", err)
		}
		m.cfg.Logf("yggdrasil: stopped (%s)", why)
	}
	m.yggMu.Unlock()
	freeMemory()
}

// overlayFirewall installs the firewall for the overlays netinit runs
// now, WireGuard and, if ygg, Yggdrasil, or takes the table out when none
// runs.
func (m *Manager) overlayFirewall(ygg bool) error {
	m.mu.Lock()
	// WireGuard's rules go in before wg0 exists (start).
	d := state.Overlays{Yggdrasil: ygg, WireGuard: m.wg != nil || m.decided && m.decision.WireGuard}
	m.mu.Unlock()
	rules := overlayRules(m.cfg.Spec, d)
	if len(rules.Interfaces) == 0 {
		m.firewallDown()
		return nil
	}
	return m.firewallUp(rules, "the table applied before stays in force")
}

// firewallDown takes the overlay firewall out: no overlay runs.
func (m *Manager) firewallDown() {
	m.mu.Lock()
	had := m.fw != nil
	m.mu.Unlock()
	if !had {
		return
	}
	if err := m.removeFirewall(); err != nil {
		m.cfg.Logf("overlay firewall: %v", err)
		return
	}
	m.mu.Lock()
	m.fw, m.rules = nil, nil
	m.mu.Unlock()
	m.cfg.Logf("overlay firewall: removed (no overlay runs)")
}

// freeMemory gives the memory of a stopped Yggdrasil back to the system
// at once: yggdrasil-go holds 16 MB of TUN buffers, which the runtime
// would otherwise return only over minutes.
func freeMemory() { debug.FreeOSMemory() }
