package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// Kernel is what the engine itself reads from and does to the kernel: one
// link's MTU, state, carrier and addresses; setting a link up and its MTU.
// (The protocol clients own their part of the kernel configuration.) The
// Linux implementation uses netlink and sysfs; unit tests hand the engine a
// fake (kernel_test.go), so the merge of leases and kernel state is tested
// without root.
type Kernel interface {
	// Link returns the kernel's view of the named link.
	Link(name string) (KernelLink, error)
	// Carrier reports whether the named link has carrier.
	Carrier(name string) bool
	// SetUp sets the named link administratively up.
	SetUp(name string) error
	// SetMTU sets the named link's MTU.
	SetMTU(name string, mtu int) error
	// Bridge makes the management bridge with its port, or completes one
	// found already there (bridge.go).
	Bridge(b BridgeSpec) error
	// HandOver leaves a link that is not the uplink to the next stage:
	// addrs (netinit's) removed, IPv6 autoconfiguration the kernel's own
	// again (bridge.go).
	HandOver(name string, addrs []netip.Prefix) error
	// OperUp returns when the named link's operstate is up (RFC 2863
	// "up": the kernel's linkwatch applied its carrier), or with ctx's
	// error.
	OperUp(ctx context.Context, name string) error
}

// BridgeSpec is the management bridge to make.
type BridgeSpec struct {
	Name, NIC string // the bridge and its port
	MTU       int    // 0: left as is
	VLAN      int    // vlan:priv=: the management VLAN, tagged on the port (0: untagged)
	PubVLAN   int    // vlan:pub=: carried tagged on the port, for networkd's tozos (0: none)
	// Carry moves the port's IPv4 addresses (with their remaining
	// lifetimes) and routes onto the bridge before they leave the port:
	// the NIC had its lease first (bridge.go).
	Carry bool
	// PrepareIPv6 has the engine own IPv6 on the bridge (ra.Prepare)
	// before it is set up: optimistic DAD from its first address.
	PrepareIPv6 bool
	// Prepare makes only the bridge, set up, without its port yet.
	Prepare bool
}

// KernelLink is one link as the kernel has it.
type KernelLink struct {
	MTU     int
	Up      bool // administratively up
	Carrier bool
	Addrs   []KernelAddr
}

// KernelAddr is one address on a link. ValidLft is in seconds; 0 and all
// ones mean infinite.
type KernelAddr struct {
	Prefix   netip.Prefix
	ValidLft uint32
}

// netlinkKernel is the Linux Kernel.
type netlinkKernel struct{}

func (netlinkKernel) Link(name string) (KernelLink, error) {
	nl, err := netlink.LinkByName(name)
	if err != nil {
		return KernelLink{}, err
	}
	kl := KernelLink{MTU: nl.Attrs().MTU, Up: nl.Attrs().Flags&net.FlagUp != 0, Carrier: carrier(name)}
	addrs, err := netlink.AddrList(nl, netlink.FAMILY_ALL)
	if err != nil {
		return kl, err
	}
	for _, a := range addrs {
		p, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		ka := KernelAddr{Prefix: netip.PrefixFrom(p.Unmap(), ones)}
		if a.ValidLft > 0 {
			ka.ValidLft = uint32(a.ValidLft)
		}
		kl.Addrs = append(kl.Addrs, ka)
	}
	return kl, nil
}

func (netlinkKernel) Carrier(name string) bool { return carrier(name) }

func (netlinkKernel) SetUp(name string) error {
	nl, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(nl)
}

func (netlinkKernel) SetMTU(name string, mtu int) error {
	nl, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetMTU(nl, mtu)
}

func carrier(name string) bool {
	b, err := os.ReadFile("/sys/class/net/" + name + "/carrier")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (netlinkKernel) OperUp(ctx context.Context, name string) error {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	// ListExisting: the link's state now comes first, then its changes.
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{ListExisting: true}); err != nil {
		close(done)
		return fmt.Errorf("watching %s: %w", name, err)
	}
	// Closing done closes the subscription's socket; its reader then
	// ends and closes updates (drained so that it is never stuck
	// sending).
	defer func() {
		close(done)
		for range updates {
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-updates:
			if !ok {
				return fmt.Errorf("watching %s: the netlink subscription ended", name)
			}
			if a := u.Link.Attrs(); a.Name == name && a.OperState == netlink.OperUp {
				return nil
			}
		}
	}
}
