package engine

import (
	"fmt"
	"sync"
)

// fakeKernel is a Kernel held in memory, for unit tests without root.
type fakeKernel struct {
	mu    sync.Mutex
	links map[string]KernelLink
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
