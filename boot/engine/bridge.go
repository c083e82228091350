package engine

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel"
)

// The management bridge (issue 17 item 1). 0-OS's networkd refuses to
// start ("invalid setup") unless a bridge named zos exists with an IPv6
// default route on it (zosbase pkg/network/bootstrap/bridge.go:
// DefaultBridgeValid); its internet module builds it the same way: the
// uplink NIC is the bridge's only port, the bridge carries the NIC's MAC
// (so DHCP reservations and the node's registration on the chain stay
// valid), IPv6 is off on the port and on (not forwarding) on the bridge.
//
// The NIC takes its lease as itself first (issue 16): the bridge forwards
// through its port only once the port's operstate is up (net/bridge
// br_port_carrier_check → netif_oper_up), and a NIC's operstate follows
// its carrier in the kernel's linkwatch work — for virtio-net a second
// after the probe, while its carrier bit, enough for a DHCP client on the
// NIC, is on at once. So the NIC is the uplink from the start (its lease,
// its default route: Yggdrasil can start), and moveToBridge moves it onto
// the bridge once its operstate is up, its IPv4 configuration carried
// over; the verdict waits for that. A daemon restart (the NIC is the
// bridge's port already), vlan:priv= (only the bridge reaches the tagged
// VLAN) and a NIC already up build the bridge before the clients start,
// and they run on the bridge.

// bridgeFor is the bridge the NIC nic (with MAC mac) is enslaved to, or ""
// when it is managed as itself. Only a NIC that is the uplink before any
// client ran gets the bridge: netinit.uplink=, BOOTIF, the NIC an earlier
// process bridged (a daemon restart), or the only link there is to manage
// (only: the sole one asked for, or the sole manageable NIC found in the
// first scan). An elected uplink keeps its own name (not built yet).
func (e *Engine) bridgeFor(nic string, mac []byte, only bool) string {
	br := e.spec.BridgeName()
	if br == "" || br == nic {
		return ""
	}
	fixed := e.spec.Uplink == nic || only ||
		len(e.spec.BootIF) > 0 && bytes.Equal(e.spec.BootIF, mac) ||
		e.cfg.Previous != nil && e.cfg.Previous.UplinkNIC == nic
	if !fixed {
		return ""
	}
	for _, l := range e.links {
		if l.nic != "" || l.toBridge != "" {
			return "" // one management bridge
		}
	}
	return br
}

// operWait bounds the wait for the NIC's operstate before it moves onto
// the management bridge anyway.
const operWait = 2 * time.Second

// settleWait bounds Config.BeforeMove: the move onto the bridge waits at
// most that long for the overlays to have dialled their peers.
const settleWait = time.Second

// leaseFirst reports whether the NIC a, which gets the management bridge,
// is managed as itself first (its lease, then the move: moveToBridge).
// Not when it is the bridge's port already (a daemon restart), when its
// operstate is up already (left up by the firmware: the bridge forwards
// through it at once), or when the management traffic is tagged
// (vlan:priv=): only the bridge reaches that VLAN.
func (e *Engine) leaseFirst(a kernel.LinkInfo) bool {
	return e.spec.VLANPriv == 0 && a.Master == 0 && !a.OperUp &&
		(e.cfg.Previous == nil || e.cfg.Previous.UplinkNIC != a.Name)
}

// clientsStop bounds the wait for an elected uplink's clients to end
// before it moves onto the bridge.
const clientsStop = 5 * time.Second

// bridgeElectedLocked is called once the uplink is decided by the
// election (or as the only candidate, without one): when a management
// bridge is wanted and none was built, the uplink is moved onto it
// (moveToBridge, in its own goroutine since a client may be the caller)
// and true is returned: the NIC's clients must not install default routes
// meanwhile. The caller holds e.mu.
func (e *Engine) bridgeElectedLocked() bool {
	br := e.spec.BridgeName()
	l := e.links[e.uplink]
	if e.moving != "" && e.moving == e.uplink {
		return true
	}
	// A NIC managed as itself first moves when its operstate is up
	// (manage), keeping its default route until then.
	if br == "" || e.bridgeTried || l == nil || l.nic != "" || l.toBridge != "" || l.name == br || !e.ballot.decided {
		return false
	}
	e.bridgeTried, e.moving = true, l.name
	e.spawn(func() {
		e.logf("%s: elected uplink: moving it onto the management bridge %s", l.name, br)
		e.moveToBridge(l, br, time.Now().Add(operWait))
	})
	return true
}

// moveToBridge moves the uplink NIC old onto the management bridge br:
// the one that had its lease first (manage), or the elected one
// (bridgeElectedLocked). It waits for the NIC's operstate to be up
// (until at the latest): the bridge forwards through a port only then
// (net/bridge br_port_carrier_check), and a NIC's operstate follows its
// carrier only in the kernel's linkwatch work, up to a second later.
// With its lease in, it then waits (at most settleWait) for
// Config.BeforeMove: Yggdrasil dialling its peers goes first. Then
// the NIC's clients stop (they leave their configuration), the bridge is
// made with the NIC's IPv4 addresses and routes carried over (the default
// route is replaced in place: a connection over the lease, Yggdrasil's
// peering, goes on), and the link is managed again as the bridge, its
// DHCPv4 client starting from the NIC's lease (dhcp4.Options.From: the
// bridge has the NIC's MAC, so the server confirms it). IPv6 on the port
// goes off (Bridge); the bridge's RA client forms SLAAC again. A bridge
// that cannot be made leaves the NIC managed as itself, with its lease.
func (e *Engine) moveToBridge(old *link, br string, until time.Time) {
	nic := old.name
	ctx, cancel := context.WithDeadline(old.ctx, until)
	err := e.kernel.OperUp(ctx, nic)
	leased := true
	if err == nil && old.toBridge != "" && old.wants4() {
		// The NIC's lease first: an exchange cut short by the move
		// would start over on the bridge. (An elected uplink has its
		// lease or RA: the election waited for it.)
		select {
		case <-old.leased4:
		case <-ctx.Done():
			leased = false
		}
	}
	cancel()
	if err == nil && leased && e.cfg.BeforeMove != nil {
		sctx, cancel := context.WithTimeout(old.ctx, settleWait)
		e.cfg.BeforeMove(sctx, e.Status())
		cancel()
	}
	// The bridge is made, up, before the NIC joins it (its failure is
	// the full Bridge's to report): a port that joins a bridge that is
	// down does not forward until the bridge is up, and the carried
	// addresses would be on a link that cannot send.
	_ = e.kernel.Bridge(kernel.BridgeSpec{Name: br, NIC: nic, Prepare: true, PrepareIPv6: old.wantsRA()})
	switch {
	case old.ctx.Err() != nil:
		e.mu.Lock()
		e.moving = ""
		e.unlock()
		return
	case err != nil:
		e.logf("%s: operstate not up (%v): moving it onto the management bridge %s anyway", nic, err, br)
	case !leased:
		e.logf("%s: operstate up, no DHCPv4 lease yet: moving it onto the management bridge %s", nic, br)
	default:
		e.logf("%s: operstate up: moving it onto the management bridge %s, its IPv4 configuration carried over", nic, br)
	}
	e.mu.Lock()
	e.bridgeTried, e.moving = true, nic
	e.unlock()
	e.stopClients(old)
	err = e.kernel.Bridge(kernel.BridgeSpec{Name: br, NIC: nic, MTU: e.mtuFor(old), VLAN: e.spec.VLANPriv, PubVLAN: e.spec.VLANPub,
		Carry: true, PrepareIPv6: old.wantsRA()})
	if err == nil {
		err = e.releasePort(br, nic, true)
	}
	e.mu.Lock()
	e.moving = ""
	if e.runCtx.Err() != nil || e.links[nic] != old {
		e.unlock()
		return
	}
	name, port, without := br, nic, ""
	if err != nil {
		name, port = nic, ""
		without = e.withoutBridgeLocked(err, nic)
	}
	l := e.newLink(e.runCtx, name, port, old.mac)
	l.from, l.bridged = old.held, err == nil
	// The same wire: the RA wait and the DHCPv4 grace (ready) go on
	// from the NIC's carrier and IPv6, not from the move.
	l.carrierAt, l.full6At = old.carrierAt, old.full6At
	delete(e.links, nic)
	e.links[name] = l
	e.dropLeasesLocked(nic)
	if err == nil {
		e.mark("bridge")
		rename := func(s *string) {
			if *s == nic {
				*s = br
			}
		}
		for i := range e.ballot.asked {
			rename(&e.ballot.asked[i])
		}
		for i := range e.ballot.cands {
			rename(&e.ballot.cands[i].name)
		}
		for _, s := range []*string{&e.ballot.cmdline, &e.ballot.bootif, &e.ballot.kept, &e.ballot.moved} {
			rename(s)
		}
	}
	e.electLocked()
	e.unlock()
	if err != nil {
		e.logf("%s", without)
	} else {
		e.bridgeMade(br, nic, old.mac)
	}
	e.spawn(func() { e.manage(l.ctx, l) })
	e.notify()
}

// releasePort completes the management bridge br once Bridge made it:
// with carry, the NIC nic's IPv4 routes move onto the bridge first
// (boot/route: the default route is replaced in place, never missing),
// then the port is left to the bridge (its addresses removed, IPv6 off).
func (e *Engine) releasePort(br, nic string, carry bool) error {
	if carry {
		kl, err := e.kernel.Link(br)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", br, err)
		}
		if err := e.routes.Move(nic, br, kl.Index); err != nil {
			return fmt.Errorf("bridge %s: %w", br, err)
		}
	}
	return e.kernel.ReleasePort(br, nic)
}

// stopClients stops l's clients and waits for them, bounded by
// clientsStop (a client stuck in a syscall must not hold the engine).
func (e *Engine) stopClients(l *link) {
	l.stop()
	done := make(chan struct{})
	go func() { l.clients.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(clientsStop):
		e.logf("%s: clients still running after %s; going on", l.name, clientsStop)
	}
}

// handOverOthers leaves every managed link that is not the uplink to the
// next stage, once the uplink is on the management bridge and the
// election is over (issue 11 item 4): 0-OS's networkd picks its public
// NIC (br-pub) as the first unattached NIC that gets a global SLAAC
// address by itself, so those links must carry none of netinit's
// addresses and must run the kernel's own router discovery. Their probe
// leases are given back (DHCPRELEASE). It returns when they are handed
// over (bounded by clientsStop each).
func (e *Engine) handOverOthers() {
	e.mu.Lock()
	up := e.links[e.uplink]
	if up == nil || up.nic == "" || !e.ballot.decided || e.moving != "" {
		e.unlock()
		return
	}
	var out []*link
	for _, l := range e.links {
		if l != up && l.nic == "" && !l.released {
			l.released = true
			out = append(out, l)
		}
	}
	e.unlock()
	for _, l := range out {
		e.handOver(l)
	}
	if len(out) > 0 {
		e.notify()
	}
}

// portMTU raises the bridge's port to the MTU a client applied to the
// bridge (DHCP option 26, the RA's MTU option): a port with a smaller MTU
// would drop the bridge's larger frames. A larger port MTU is harmless
// and left as is.
func (e *Engine) portMTU(port string, mtu int) {
	kl, err := e.kernel.Link(port)
	if err != nil || kl.MTU >= mtu {
		return
	}
	if err := e.kernel.SetMTU(port, mtu); err != nil {
		e.problem("%s: mtu %d (the bridge's): %v", port, mtu, err)
		return
	}
	e.logf("%s: mtu %d, as the bridge's", port, mtu)
}

// handedOverBeforeLocked reports whether the process before this one (a
// daemon restart: Config.Previous) had its uplink on the bridge and had
// handed the NIC name over: it was not among its links. Managing it again
// would take a lease only to release it. The caller holds e.mu.
func (e *Engine) handedOverBeforeLocked(name string) bool {
	p := e.cfg.Previous
	if p == nil || p.UplinkNIC == "" || p.UplinkNIC == name || e.spec.BridgeName() == "" {
		return false
	}
	return !slices.Contains(p.Links, name)
}

// handOver stops l's clients (its DHCPv4 client releases the lease), then
// removes its other addresses and gives its IPv6 back to the kernel.
func (e *Engine) handOver(l *link) {
	e.stopClients(l)
	e.mu.Lock()
	var addrs []netip.Prefix
	for _, ls := range e.leasesOf(l.name) {
		for _, a := range ls.Addresses {
			addrs = append(addrs, a.Prefix)
		}
	}
	delete(e.links, l.name)
	e.dropLeasesLocked(l.name)
	e.ballot.asked = slices.DeleteFunc(e.ballot.asked, func(n string) bool { return n == l.name })
	e.handedOver[l.name] = true
	e.unlock()
	e.routes.Forget(l.name)
	if err := e.kernel.HandOver(l.name, addrs); err != nil {
		e.problem("%s: handing it over to the next stage: %v", l.name, err)
		return
	}
	e.logf("%s: not the uplink: left to the next stage (no address of netinit's, the kernel's own IPv6 autoconfiguration)", l.name)
}

// dropLeasesLocked forgets every lease of the link named name. The caller
// holds e.mu.
func (e *Engine) dropLeasesLocked(name string) {
	for k := range e.leases {
		if k.link == name {
			delete(e.leases, k)
		}
	}
}
