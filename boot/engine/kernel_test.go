package engine

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
)

// fakeKernel is a Kernel held in memory, for unit tests without root.
type fakeKernel struct {
	mu    sync.Mutex
	links map[string]KernelLink
	ops   []string // what was done, in order: "up eth0", "mtu eth0 9000"
}

func newFakeKernel() *fakeKernel { return &fakeKernel{links: map[string]KernelLink{}} }

func (k *fakeKernel) set(name string, kl KernelLink) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.links[name] = kl
}

func (k *fakeKernel) Link(name string) (KernelLink, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl, ok := k.links[name]
	if !ok {
		return KernelLink{}, fmt.Errorf("link %s not found", name)
	}
	return kl, nil
}

func (k *fakeKernel) Carrier(name string) bool {
	kl, err := k.Link(name)
	return err == nil && kl.Carrier
}

// change applies f to link name and records op, as one operation.
func (k *fakeKernel) change(name, op string, f func(*KernelLink)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl, ok := k.links[name]
	if !ok {
		return fmt.Errorf("link %s not found", name)
	}
	f(&kl)
	k.links[name] = kl
	k.ops = append(k.ops, op)
	return nil
}

func (k *fakeKernel) SetUp(name string) error {
	return k.change(name, "up "+name, func(kl *KernelLink) { kl.Up = true })
}

func (k *fakeKernel) SetMTU(name string, mtu int) error {
	return k.change(name, fmt.Sprintf("mtu %s %d", name, mtu), func(kl *KernelLink) { kl.MTU = mtu })
}

func (k *fakeKernel) Bridge(b BridgeSpec) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	kl, ok := k.links[b.NIC]
	if !ok {
		return fmt.Errorf("link %s not found", b.NIC)
	}
	k.links[b.Name] = KernelLink{MTU: kl.MTU, Carrier: kl.Carrier}
	k.ops = append(k.ops, fmt.Sprintf("bridge %s %s %d vlan %d", b.Name, b.NIC, b.MTU, b.VLAN))
	return nil
}

func (k *fakeKernel) HandOver(name string, addrs []netip.Prefix) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, fmt.Sprintf("handover %s %v", name, addrs))
	return nil
}

func (k *fakeKernel) done() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.ops...)
}

// OperUp: a fake link's operstate is up with its carrier.
func (k *fakeKernel) OperUp(ctx context.Context, name string) error {
	if k.Carrier(name) {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}
