// Package kerneltest is a kernel held in memory, for the engine's unit
// tests: the decisions are tested without root and without namespaces, as
// wireguard-go tests against tun/tuntest. It records what was done to it,
// in order, so that a test checks what the engine asked of the kernel.
package kerneltest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/threefoldtech/netinit/boot/kernel"
)

// Kernel is the fake. Its links are what Set put there; a link's
// operstate is up with its carrier.
type Kernel struct {
	mu     sync.Mutex
	links  map[string]kernel.Link
	info   map[string]kernel.LinkInfo
	routes map[int][]kernel.Route // by link index, in installation order
	ops    []string               // "up eth0", "mtu eth0 9000", "bridge zos eth0 0 vlan 0" ...
	bonds  map[string]kernel.BondSpec
	// watchers are LinkChanges' callers, told after a link changed.
	watchers []func()

	// BridgeErr, if set, is what Bridge returns (nothing is made).
	BridgeErr error
	// Reach is what Probe answers for a link (false when not there).
	Reach map[string]bool
	// LACP is the actor state BondStatus gives a bond's port, by name.
	LACP map[string]uint8
}

// New returns a kernel without links.
func New() *Kernel {
	return &Kernel{links: map[string]kernel.Link{}, info: map[string]kernel.LinkInfo{}, routes: map[int][]kernel.Route{},
		Reach: map[string]bool{}, LACP: map[string]uint8{}, bonds: map[string]kernel.BondSpec{}}
}

// Set puts the link name there, as kl, replacing what was (kl.Index 0:
// its index, or the next one).
func (k *Kernel) Set(name string, kl kernel.Link) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.put(name, kl)
}

// put adds or replaces a link; the caller holds k.mu.
func (k *Kernel) put(name string, kl kernel.Link) {
	if kl.Index == 0 {
		kl.Index = k.links[name].Index
	}
	if kl.Index == 0 {
		kl.Index = len(k.links) + 2 // 1 is lo
	}
	k.links[name] = kl
	k.tell()
	if _, ok := k.info[name]; !ok {
		k.info[name] = kernel.LinkInfo{Name: name, Type: "device", Encap: "ether", Device: true}
	}
}

// Ops lists what was done, in order.
func (k *Kernel) Ops() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

func (k *Kernel) Link(name string) (kernel.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl, ok := k.links[name]
	if !ok {
		return kernel.Link{}, fmt.Errorf("link %s not found", name)
	}
	kl.Addrs = slices.Clone(kl.Addrs)
	return kl, nil
}

func (k *Kernel) Names() ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var names []string
	for n := range k.info {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (k *Kernel) Links() ([]kernel.LinkInfo, error) {
	names, _ := k.Names()
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []kernel.LinkInfo
	for _, n := range names {
		out = append(out, k.info[n])
	}
	return out, nil
}

func (k *Kernel) Carrier(name string) bool {
	kl, err := k.Link(name)
	return err == nil && kl.Carrier
}

// change applies f to link name and records op, as one operation.
func (k *Kernel) change(name, op string, f func(*kernel.Link)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl, ok := k.links[name]
	if !ok {
		return fmt.Errorf("link %s not found", name)
	}
	f(&kl)
	k.links[name] = kl
	k.tell()
	k.ops = append(k.ops, op)
	return nil
}

func (k *Kernel) record(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, fmt.Sprintf(format, args...))
}

func (k *Kernel) SetUp(name string) error {
	return k.change(name, "up "+name, func(kl *kernel.Link) { kl.Up = true })
}

func (k *Kernel) SetMTU(name string, mtu int) error {
	return k.change(name, fmt.Sprintf("mtu %s %d", name, mtu), func(kl *kernel.Link) { kl.MTU = mtu })
}

// PrepareIPv6 changes nothing the fake shows.
func (k *Kernel) PrepareIPv6(name string) error { return nil }

func (k *Kernel) CreateVLAN(name, parent string, id int) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.links[name]; ok {
		return false, nil
	}
	p, ok := k.links[parent]
	if !ok {
		return false, fmt.Errorf("parent: link %s not found", parent)
	}
	k.put(name, kernel.Link{MTU: p.MTU, Carrier: p.Carrier})
	k.info[name] = kernel.LinkInfo{Name: name, Type: "vlan", Encap: "ether"}
	k.ops = append(k.ops, fmt.Sprintf("vlan %s %s %d", name, parent, id))
	return true, nil
}

func (k *Kernel) Bridge(b kernel.BridgeSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl, ok := k.links[b.NIC]
	if !ok {
		return fmt.Errorf("link %s not found", b.NIC)
	}
	if k.BridgeErr != nil {
		return k.BridgeErr
	}
	k.put(b.Name, kernel.Link{MTU: kl.MTU, Carrier: kl.Carrier})
	k.ops = append(k.ops, fmt.Sprintf("bridge %s %s %d vlan %d", b.Name, b.NIC, b.MTU, b.VLAN))
	return nil
}

func (k *Kernel) ReleasePort(br, nic string) error {
	k.record("port %s %s", br, nic)
	return nil
}

func (k *Kernel) HandOver(name string, addrs []netip.Prefix) error {
	k.record("handover %s %v", name, addrs)
	return nil
}

// OperUp: a fake link's operstate is up with its carrier.
func (k *Kernel) OperUp(ctx context.Context, name string) error {
	if k.Carrier(name) {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// tell calls the watchers (non-blocking callbacks); the caller holds k.mu.
func (k *Kernel) tell() {
	for _, w := range k.watchers {
		w()
	}
}

// LinkChanges calls changed after every change the fake makes to a link
// (Set, SetUp, SetMTU, ...), until ctx ends.
func (k *Kernel) LinkChanges(ctx context.Context, changed func()) error {
	k.mu.Lock()
	k.watchers = append(k.watchers, changed)
	k.mu.Unlock()
	<-ctx.Done()
	return nil
}

// Probe answers Reach[c.Link], with "fake" as the evidence.
func (k *Kernel) Probe(_ context.Context, c kernel.Candidate, _ []string) (bool, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.Reach[c.Link], []string{"fake"}
}

func (k *Kernel) SetHostname(name string) error {
	k.record("hostname %s", name)
	return nil
}

// Routes lists the routes on the link index, in installation order.
func (k *Kernel) Routes(index int) []kernel.Route {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.routes[index])
}

// same is the kernel's key of an IPv4 route (table, destination, TOS,
// metric: any link); an IPv6 route's has its link and next hop too.
func same(ai int, a kernel.Route, bi int, b kernel.Route) bool {
	if a.Dst != b.Dst || a.Metric != b.Metric {
		return false
	}
	return a.Dst.Addr().Is4() || ai == bi && a.Via == b.Via
}

// AddRoute adds r, unless an equal route is there: replaced when it is
// on this link with r's protocol, else an error (as kernel.Netlink).
func (k *Kernel) AddRoute(index int, r kernel.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, rs := range k.routes {
		for j, e := range rs {
			if !same(i, e, index, r) {
				continue
			}
			if i != index || e.Proto != r.Proto {
				return fmt.Errorf("an equal route that is not ours exists (%s on %d)", e.Dst, i)
			}
			k.routes[i][j] = r
			k.ops = append(k.ops, fmt.Sprintf("route replace %d %s", index, r.Dst))
			return nil
		}
	}
	k.routes[index] = append(k.routes[index], r)
	k.ops = append(k.ops, fmt.Sprintf("route add %d %s", index, r.Dst))
	return nil
}

// ReplaceRoute puts r in place of an equal route, wherever it is.
func (k *Kernel) ReplaceRoute(index int, r kernel.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, fmt.Sprintf("route replace %d %s", index, r.Dst))
	if i := slices.IndexFunc(k.routes[index], func(e kernel.Route) bool { return same(index, e, index, r) }); i >= 0 {
		k.routes[index][i] = r
		return nil
	}
	k.drop(index, r)
	k.routes[index] = append(k.routes[index], r)
	return nil
}

// DelRoute removes r; one that is not there is no error.
func (k *Kernel) DelRoute(index int, r kernel.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.drop(index, r)
	k.ops = append(k.ops, fmt.Sprintf("route del %d %s", index, r.Dst))
	return nil
}

func (k *Kernel) drop(index int, r kernel.Route) {
	for i, rs := range k.routes {
		k.routes[i] = slices.DeleteFunc(rs, func(e kernel.Route) bool { return same(i, e, index, r) })
	}
}

// CreateBond makes the bond a link of type "bond" with the carrier of
// any port; its ports become bond ports (discovery skips them).
func (k *Kernel) CreateBond(b kernel.BondSpec) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.links[b.Name]; ok {
		return false, nil
	}
	up := false
	for _, p := range b.Ports {
		pl, ok := k.links[p]
		if !ok {
			return false, fmt.Errorf("port %s: link %s not found", p, p)
		}
		up = up || pl.Carrier
	}
	k.put(b.Name, kernel.Link{MTU: b.MTU, Carrier: up})
	k.info[b.Name] = kernel.LinkInfo{Name: b.Name, MAC: k.info[b.Ports[0]].MAC, Type: "bond", Encap: "ether", Ports: len(b.Ports)}
	for _, p := range b.Ports {
		i := k.info[p]
		i.BondPort, i.Master = true, k.links[b.Name].Index
		k.info[p] = i
		pl := k.links[p]
		pl.Up = false
		k.links[p] = pl
	}
	k.bonds[b.Name] = b
	k.ops = append(k.ops, fmt.Sprintf("bond %s %s %v", b.Name, b.Mode, b.Ports))
	return true, nil
}

// DeleteBond removes the bond; its ports are plain links again.
func (k *Kernel) DeleteBond(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.bonds[name]
	if !ok {
		return fmt.Errorf("%s: not a bond", name)
	}
	for _, p := range b.Ports {
		i := k.info[p]
		i.BondPort, i.Master = false, 0
		k.info[p] = i
	}
	delete(k.bonds, name)
	delete(k.links, name)
	delete(k.info, name)
	k.ops = append(k.ops, "bond del "+name)
	return nil
}

// BondStatus gives each port LACP[port] as its actor's and its partner's
// state (0 when not set: never bundled).
func (k *Kernel) BondStatus(name string) (kernel.Bond, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.bonds[name]
	if !ok {
		return kernel.Bond{}, fmt.Errorf("%s: not a bond", name)
	}
	out := kernel.Bond{Name: name, Mode: b.Mode}
	for _, p := range b.Ports {
		out.Ports = append(out.Ports, kernel.BondPort{Name: p, MAC: k.info[p].MAC, Carrier: k.links[p].Carrier,
			State: "active", MII: "up", Actor: k.LACP[p], Partner: k.LACP[p]})
	}
	return out, nil
}

// SetInfo replaces what discovery sees of a link (its MAC, type ...).
func (k *Kernel) SetInfo(i kernel.LinkInfo) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.info[i.Name] = i
}
