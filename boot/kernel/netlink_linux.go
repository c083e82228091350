package kernel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Linux kernel, through netlink, sysfs and sysctl.
type Netlink struct{}

// Link returns the kernel's view of the named link.
func (Netlink) Link(name string) (Link, error) {
	nl, err := netlink.LinkByName(name)
	if err != nil {
		return Link{}, err
	}
	kl := Link{Index: nl.Attrs().Index, MTU: nl.Attrs().MTU, Up: nl.Attrs().Flags&net.FlagUp != 0, Carrier: carrier(name)}
	addrs, err := Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nl, netlink.FAMILY_ALL) })
	if err != nil {
		return kl, err
	}
	for _, a := range addrs {
		p, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		ka := Addr{Prefix: netip.PrefixFrom(p.Unmap(), ones)}
		if a.ValidLft > 0 {
			ka.ValidLft = uint32(a.ValidLft)
		}
		kl.Addrs = append(kl.Addrs, ka)
	}
	return kl, nil
}

// Carrier reports whether the named link has carrier.
func (Netlink) Carrier(name string) bool { return carrier(name) }

// SetUp sets the named link administratively up.
func (Netlink) SetUp(name string) error {
	nl, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(nl)
}

// SetMTU sets the named link's MTU.
func (Netlink) SetMTU(name string, mtu int) error {
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

// OperUp returns when the named link's operstate is up (RFC 2863 "up":
// the kernel's linkwatch applied its carrier), or with ctx's error.
func (Netlink) OperUp(ctx context.Context, name string) error {
	// ListExisting: the link's state now comes first, then its changes.
	err := subscribe(ctx, true, func(u netlink.LinkUpdate) bool {
		a := u.Link.Attrs()
		return a.Name == name && a.OperState == netlink.OperUp
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("watching %s: %w", name, err)
	}
	return nil
}

// LinkChanges calls changed after each link message the kernel sends
// (RTM_NEWLINK, RTM_DELLINK: flags, carrier, operstate, master, name)
// until ctx ends; it returns nil then, or the error that ended the
// subscription (the socket's buffer overran: ENOBUFS), for the caller to
// watch again.
func (Netlink) LinkChanges(ctx context.Context, changed func()) error {
	if err := subscribe(ctx, false, func(netlink.LinkUpdate) bool { changed(); return false }); err != nil {
		return fmt.Errorf("watching links: %w", err)
	}
	return nil
}

// subscribe hands each link message to each (with the links there now
// first when existing) until each says done (nil), ctx ends (nil) or the
// subscription does (its error).
func subscribe(ctx context.Context, existing bool, each func(netlink.LinkUpdate) (done bool)) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var (
		mu     sync.Mutex
		subErr error
	)
	opts := netlink.LinkSubscribeOptions{ListExisting: existing, ErrorCallback: func(err error) {
		mu.Lock()
		subErr = err
		mu.Unlock()
	}}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		close(done)
		return err
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
			return nil
		case u, ok := <-updates:
			if !ok {
				mu.Lock()
				defer mu.Unlock()
				return fmt.Errorf("the netlink subscription ended (%v)", subErr)
			}
			if each(u) {
				return nil
			}
		}
	}
}

// Names lists the links under /sys/class/net by name, sorted (as
// os.ReadDir returns them): cheaper than a netlink dump, to tell whether
// a link appeared or went.
func (Netlink) Names() ([]string, error) {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() { // bonding_masters is a file
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Links lists every link with what discovery judges it by. On an error
// it returns what it listed.
func (Netlink) Links() ([]LinkInfo, error) {
	links, err := Dump(netlink.LinkList)
	if err != nil {
		err = fmt.Errorf("listing links: %w", err)
	}
	out := make([]LinkInfo, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		_, derr := os.Stat("/sys/class/net/" + a.Name + "/device")
		_, port := a.Slave.(*netlink.BondSlave)
		out = append(out, LinkInfo{Name: a.Name, MAC: a.HardwareAddr, Type: l.Type(), Encap: a.EncapType,
			Loopback: a.Flags&net.FlagLoopback != 0, Device: derr == nil, Master: a.MasterIndex, BondPort: port,
			OperUp: a.OperState == netlink.OperUp})
	}
	for i := range out {
		out[i].Ports = portsOf(links, links[i].Attrs().Index)
	}
	return out, err
}

// CreateVLAN makes the 802.1Q link name with VLAN id on parent (set up
// first if it is not), unless a link of that name exists: then it
// returns false.
func (Netlink) CreateVLAN(name, parent string, id int) (bool, error) {
	if _, err := netlink.LinkByName(name); err == nil {
		return false, nil
	}
	pl, err := netlink.LinkByName(parent)
	if err != nil {
		return false, fmt.Errorf("parent: %w", err)
	}
	if pl.Attrs().Flags&net.FlagUp == 0 {
		_ = netlink.LinkSetUp(pl)
	}
	vl := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: pl.Attrs().Index}, VlanId: id}
	if err := netlink.LinkAdd(vl); err != nil {
		return false, err
	}
	return true, nil
}

// SetHostname sets the kernel hostname (of the UTS namespace).
func (Netlink) SetHostname(name string) error { return unix.Sethostname([]byte(name)) }

// portsOf counts the links whose master is the link index (a bond's or a
// bridge's ports).
func portsOf(links []netlink.Link, index int) int {
	n := 0
	for _, l := range links {
		if m := l.Attrs().MasterIndex; m != 0 && m == index {
			n++
		}
	}
	return n
}
