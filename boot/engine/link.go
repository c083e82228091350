package engine

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/dhcp4"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/spec"
)

// link is one managed link and what runs on it. Its plain values
// (linkFacts) are guarded by the engine's mutex.
type link struct {
	linkFacts
	dhcp6Active bool

	// The running DHCPv6 client: its mode, how to stop it, and which
	// start it is (a stopped client must not touch its successor's state).
	dhcp6Managed bool
	dhcp6Stop    context.CancelFunc
	dhcp6Gen     int
	dhcp6At      time.Time // when it was started

	// renew4, renew6 and renewDHCP6 kick the link's DHCPv4 client, router
	// solicitation and DHCPv6 client (control socket "renew").
	renew4, renew6, renewDHCP6 chan struct{}
	// reapply4, reapply6 and reapplyStatic have the clients apply their
	// configuration again (the uplink changed).
	reapply4, reapply6, reapplyStatic chan struct{}

	// ctx ends the link's clients (stop); clients counts them, so that
	// moving an elected uplink onto the bridge waits for them to end.
	ctx     context.Context
	stop    context.CancelFunc
	clients sync.WaitGroup
	// released: handed over to the next stage (handOver); its DHCPv4
	// client gives the lease back when it stops.
	released bool
	// held is the DHCPv4 lease the link's client held when it stopped;
	// from is the one a link starts with (moveToBridge carried it over
	// from the NIC). bridged: the management bridge is made already.
	held, from *dhcp4.Held
	bridged    bool
	// leased4 is closed at the link's first usable DHCPv4 lease (or the
	// server's IPv6-only answer, RFC 8925): the DHCPv4 exchange is over.
	leased4 chan struct{}
	// stpSaid, vlanSaid: the spanning-tree wait and the VLAN hint were
	// said for the link; stpKicked: its DHCPv4 client was kicked when the
	// port forwards (l2.go).
	stpSaid, vlanSaid, stpKicked bool
	// stopL2 ends the link's listener early (a oneshot run: listenL2).
	stopL2 context.CancelFunc
}

// newLink is a link to manage named name (nic: the bridge's port, or ""),
// its clients bounded by ctx.
func (e *Engine) newLink(ctx context.Context, name, nic string, mac net.HardwareAddr) *link {
	dev := nic // the ip= of a bridge are its port's
	if dev == "" {
		dev = name
	}
	ipcs := ipConfigFor(e.spec, dev)
	l := &link{linkFacts: linkFacts{name: name, nic: nic, mac: mac, ipc: ipcs[0], ipcs: ipcs},
		renew4: make(chan struct{}, 1), renew6: make(chan struct{}, 1), renewDHCP6: make(chan struct{}, 1),
		reapply4: make(chan struct{}, 1), reapply6: make(chan struct{}, 1), reapplyStatic: make(chan struct{}, 1),
		leased4: make(chan struct{})}
	l.ctx, l.stop = context.WithCancel(ctx)
	return l
}

// leased closes l.leased4 once (a link made without newLink has none).
// The caller holds the engine's mutex.
func (l *link) leased() {
	if l.leased4 == nil {
		return
	}
	select {
	case <-l.leased4:
	default:
		close(l.leased4)
	}
}

// spawnClient starts one of l's protocol clients.
func (e *Engine) spawnClient(l *link, fn func()) {
	l.clients.Add(1)
	e.spawn(func() {
		defer l.clients.Done()
		fn()
	})
}

// ipConfigFor picks the ip= that apply to a link: those naming it, else
// those naming no device, else the default (DHCPv4 + RA, DHCPv6 when the
// RA asks for it). A client address given with a DHCP method (dracut
// accepts it) is not applied: the method wins.
func ipConfigFor(s *spec.Spec, name string) []spec.IPConfig {
	var mine, all []spec.IPConfig
	for _, c := range s.IP {
		switch c.Device {
		case name:
			mine = append(mine, c)
		case "":
			all = append(all, c)
		}
	}
	if len(mine) > 0 {
		return mine
	}
	if len(all) > 0 {
		return all
	}
	return []spec.IPConfig{{Method: spec.MethodOn}}
}

// adopt starts managing a link.
// only says it is the only link to manage (bridgeFor). A NIC that gets the
// management bridge is managed under the bridge's name.
func (e *Engine) adopt(ctx context.Context, a kernel.LinkInfo, only bool) {
	e.mu.Lock()
	if e.handedOverBeforeLocked(a.Name) {
		e.handedOver[a.Name] = true
		e.unlock()
		e.logf("%s: handed over to the next stage before this restart: left alone", a.Name)
		return
	}
	name, nic, later := a.Name, "", ""
	switch br := e.bridgeFor(a.Name, a.MAC, only); {
	case br != "" && e.leaseFirst(a):
		later = br
	case br != "":
		name, nic = br, a.Name
	}
	l := e.newLink(ctx, name, nic, a.MAC)
	l.toBridge = later
	e.links[l.name] = l
	if e.ballot.cmdline == a.Name {
		e.ballot.cmdline = l.name
	}
	if e.ballot.bootif == "" && len(e.spec.BootIF) > 0 && bytes.Equal(e.spec.BootIF, a.MAC) {
		e.ballot.bootif = l.name
	}
	e.electLocked()
	e.unlock()
	e.spawn(func() { e.manage(l.ctx, l) })
}

// manage brings one link up and runs its clients until ctx ends.
func (e *Engine) manage(ctx context.Context, l *link) {
	if l.nic != "" && !l.bridged {
		e.makeBridge(l)
	}
	name := l.name
	if l.wantsRA() {
		// Before the link goes up: the engine owns IPv6 on it (accept_ra
		// off) and DAD is optimistic (RFC 4429), so the link-local address
		// is usable at once.
		if err := e.kernel.PrepareIPv6(name); err != nil {
			e.problem("%s: preparing IPv6: %v", name, err)
		}
	}
	kl, err := e.kernel.Link(name)
	if err != nil {
		e.problem("%s: %v", name, err)
		return
	}
	if mtu := e.mtuFor(l); mtu > 0 && mtu != kl.MTU {
		if err := e.kernel.SetMTU(name, mtu); err != nil {
			e.problem("%s: mtu %d: %v", name, mtu, err)
		}
	}
	if kl.Up {
		// Never bounce a link that is up: a PXE-booted NIC that goes down
		// restarts the switch's spanning-tree timer (30-50 s).
		e.logf("%s: already up, left as is", name)
	} else if err := e.kernel.SetUp(name); err != nil {
		e.problem("%s: set up: %v", name, err)
		return
	} else {
		e.logf("%s: link up (%s)", name, l.mac)
	}
	e.listenL2(l)
	if l.toBridge != "" {
		// The lease first on the NIC itself, then onto the bridge
		// (moveToBridge), at the latest operWait from now: without
		// carrier by then, the bridge is made before any client runs.
		until := time.Now().Add(operWait)
		cctx, cancel := context.WithDeadline(ctx, until)
		up := e.waitCarrier(cctx, l)
		cancel()
		if !up {
			if ctx.Err() == nil {
				e.moveToBridge(l, l.toBridge, until)
			}
			return
		}
		defer e.spawn(func() { e.moveToBridge(l, l.toBridge, until) })
	} else if !e.waitCarrier(ctx, l) {
		return
	}
	if l.static() {
		e.spawnClient(l, func() {
			err := e.cfg.Clients.Static(ctx, Client{Link: name, IP: l.ipc, Routes: e.routes,
				Reapply: l.reapplyStatic, Report: e.report, Logf: e.cfg.Logf})
			if err != nil && ctx.Err() == nil {
				e.problem("%s: static ip=: %v", name, err)
			}
		})
	}
	mtu := e.mtuFor(l)
	if l.wants4() {
		e.spawnClient(l, func() {
			err := e.cfg.Clients.DHCP4(ctx, Client{
				Link:    name,
				Routes:  e.routes,
				MTU:     mtu,
				IPv6:    l.wantsRA() || l.wantsDHCP6(),
				Kick:    l.renew4,
				Reapply: l.reapply4,
				// RFC 8925: a link that runs IPv6 too may be told to go
				// without IPv4.
				IPv6OnlyPreferred: l.wantsRA(),
				ReleaseOnStop: func() bool {
					e.mu.Lock()
					defer e.unlock()
					return l.released
				},
				Handover: func(h *dhcp4.Held) {
					e.mu.Lock()
					l.held = h
					e.unlock()
				},
				From:   l.from,
				Report: e.report,
				Logf:   e.cfg.Logf,
			})
			if err != nil && ctx.Err() == nil {
				e.problem("dhcp4 on %s: %v", name, err)
			}
		})
	}
	if l.wantsRA() {
		e.spawnClient(l, func() {
			err := e.cfg.Clients.RA(ctx, Client{
				Link:      name,
				Routes:    e.routes,
				Protected: e.spec.WGAddress, // the tunnel subnets; Yggdrasil's are always protected
				MTU:       mtu,
				Kick:      l.renew6,
				Reapply:   l.reapply6,
				Report:    e.report,
				Logf:      e.cfg.Logf,
			})
			if err != nil && ctx.Err() == nil {
				e.problem("ra on %s: %v", name, err)
			}
		})
	}
	if l.wantsDHCP6() {
		e.startDHCP6(name, true, true)
	}
}

// makeBridge builds the management bridge for l before its clients start.
// When that fails the NIC is managed as itself (the node keeps its
// network; networkd will say what it misses) and the state says why.
func (e *Engine) makeBridge(l *link) {
	e.mu.Lock()
	br, nic := l.name, l.nic
	e.bridgeTried = true
	e.unlock()
	err := e.kernel.Bridge(kernel.BridgeSpec{Name: br, NIC: nic, MTU: e.mtuFor(l), VLAN: e.spec.VLANPriv, PubVLAN: e.spec.VLANPub})
	if err == nil {
		err = e.releasePort(br, nic, false)
	}
	if err == nil {
		e.bridgeMade(br, nic, l.mac)
		e.mu.Lock()
		e.mark("bridge")
		e.unlock()
		return
	}
	e.mu.Lock()
	delete(e.links, br)
	l.name, l.nic = nic, ""
	e.links[nic] = l
	if e.ballot.cmdline == br {
		e.ballot.cmdline = nic
	}
	if e.ballot.bootif == br {
		e.ballot.bootif = nic
	}
	e.electLocked()
	msg := e.withoutBridgeLocked(err, nic)
	e.unlock()
	e.logf("%s", msg)
}

// withoutBridgeLocked records that the management bridge could not be
// made (err) and the NIC nic is used as itself, and returns what to log
// once the caller has let go of e.mu.
func (e *Engine) withoutBridgeLocked(err error, nic string) string {
	msg := fmt.Sprintf("%v: %s is used without it", err, nic)
	e.problems = append(e.problems, msg)
	return msg
}

// bridgeMade says that the management bridge br is made with port nic.
func (e *Engine) bridgeMade(br, nic string, mac net.HardwareAddr) {
	vlan := "untagged"
	if e.spec.VLANPriv > 0 {
		vlan = fmt.Sprintf("VLAN %d tagged", e.spec.VLANPriv)
	}
	if e.spec.VLANPub > 0 {
		vlan += fmt.Sprintf(", public VLAN %d tagged", e.spec.VLANPub)
	}
	e.logf("%s: management bridge with port %s (%s), %s", br, nic, mac, vlan)
}

// startDHCP6 starts the DHCPv6 client on a link when an RA asks for it
// (M: addresses, O: other configuration) or ip=dhcp6 did. The RA's flags
// may change (RFC 4861 section 6.3.4: hosts follow the latest RA): when M
// changes the client is restarted in the new mode at once, and a client
// that ended (an error) is started again by the next RA that asks, at
// most every dhcp6Restart. ip=dhcp6 always means stateful.
func (e *Engine) startDHCP6(name string, managed, other bool) {
	const dhcp6Restart = 30 * time.Second
	e.mu.Lock()
	l := e.links[name]
	if l != nil && l.wantsDHCP6() {
		managed, other = true, true
	}
	if l == nil || l.dhcp6Active && l.dhcp6Managed == managed ||
		!l.dhcp6Active && l.dhcp6Managed == managed && time.Since(l.dhcp6At) < dhcp6Restart {
		e.unlock()
		return
	}
	switch {
	case l.dhcp6Gen > 0 && l.dhcp6Managed != managed:
		e.logLocked("%s: dhcp6: the router's M flag is now %v: restarting the client", name, managed)
	case l.dhcp6Gen > 0:
		e.logLocked("%s: dhcp6: restarting the client, which ended", name)
	}
	if l.dhcp6Active {
		l.dhcp6Stop()
	}
	ctx, stop := context.WithCancel(l.ctx)
	l.dhcp6Gen++
	gen := l.dhcp6Gen
	l.dhcp6Active, l.dhcp6Managed, l.dhcp6Stop, l.dhcp6Done, l.dhcp6At = true, managed, stop, false, time.Now()
	e.unlock()
	e.spawnClient(l, func() {
		defer stop()
		err := e.cfg.Clients.DHCP6(ctx, Client{
			Link: name, Managed: managed, Other: other, Kick: l.renewDHCP6,
			Protected: e.spec.WGAddress, // as the RA's
			Report:    e.report, Logf: e.cfg.Logf,
		})
		e.mu.Lock()
		current := l.dhcp6Gen == gen
		if current {
			l.dhcp6Active, l.dhcp6Done = false, true
			e.stamp6Locked(name)
		}
		e.unlock()
		if err != nil && ctx.Err() == nil {
			e.problem("dhcp6 on %s: %v", name, err)
		}
		if current {
			e.notify()
		}
	})
}

// mtuFor is the MTU precedence: ip= for the link, then netinit.mtu=; 0
// leaves it to DHCP/RA and the kernel default.
func (e *Engine) mtuFor(l *link) int {
	if l.ipc.MTU > 0 {
		return l.ipc.MTU
	}
	return e.spec.MTU
}

// waitCarrier waits for the link's carrier, bounded by ctx. It says once
// when the carrier is late, and returns false only when ctx ended.
func (e *Engine) waitCarrier(ctx context.Context, l *link) bool {
	start := time.Now()
	warned := false
	for {
		if e.kernel.Carrier(l.name) {
			e.mu.Lock()
			if l.carrierAt.IsZero() { // else carried over from the bridge's port (moveToBridge)
				l.carrierAt = time.Now()
			}
			e.mark("carrier")
			e.unlock()
			e.logf("%s: carrier after %dms", l.name, time.Since(start).Milliseconds())
			e.notify()
			return true
		}
		if !warned && time.Since(start) > 5*time.Second {
			warned = true
			e.problem("%s: no carrier after 5s (cable? switch port?), still waiting", l.name)
		}
		wait := 20 * time.Millisecond
		if time.Since(start) > time.Second {
			wait = 200 * time.Millisecond
		}
		if pause.For(ctx, wait) != nil {
			return false
		}
	}
}

// createVLANs creates the vlan= links before discovery picks them up.
func (e *Engine) createVLANs() error {
	var errs []string
	for _, v := range e.spec.VLANs {
		made, err := e.kernel.CreateVLAN(v.Name, v.Parent, v.ID)
		if err != nil {
			errs = append(errs, fmt.Sprintf("vlan=%s:%s: %v", v.Name, v.Parent, err))
			continue
		}
		if made {
			e.logf("vlan %s (id %d on %s) created", v.Name, v.ID, v.Parent)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (e *Engine) vlanNames() []string {
	var out []string
	for _, v := range e.spec.VLANs {
		out = append(out, v.Name)
	}
	return out
}
