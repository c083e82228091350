package engine

import (
	"context"
	"net/netip"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/route"
)

// Kernel is what the engine reads from and does to the kernel: links,
// their state and addresses; setting a link up and its MTU; the
// management bridge, vlan= links, the election's probes, the hostname,
// and the routes of boot/route.
// (The protocol clients own their part of the configuration.) The Linux
// one is kernel.Netlink; unit tests hand the engine kerneltest.Kernel,
// so that its decisions are tested without root.
type Kernel interface {
	// Link returns the kernel's view of the named link.
	Link(name string) (kernel.Link, error)
	// Names lists the links' names, sorted; Links lists the links with
	// what discovery judges them by.
	Names() ([]string, error)
	Links() ([]kernel.LinkInfo, error)
	// Carrier reports whether the named link has carrier.
	Carrier(name string) bool
	// SetUp sets the named link administratively up.
	SetUp(name string) error
	// SetMTU sets the named link's MTU.
	SetMTU(name string, mtu int) error
	// PrepareIPv6 has netinit own IPv6 on the named link (before it is
	// set up): no router discovery of the kernel's, optimistic DAD.
	PrepareIPv6(name string) error
	// CreateVLAN makes the vlan= link name (VLAN id on parent) unless it
	// exists: false then.
	CreateVLAN(name, parent string, id int) (bool, error)
	// CreateBond makes the bond with its ports enslaved, left down,
	// unless a link of its name exists: false then. DeleteBond removes
	// one (its ports released); BondStatus reads it and its ports' LACP
	// state.
	CreateBond(b kernel.BondSpec) (bool, error)
	DeleteBond(name string) error
	BondStatus(name string) (kernel.Bond, error)
	// Bridge makes the management bridge with its port, or completes one
	// found already there; ReleasePort then leaves the port to it.
	Bridge(b kernel.BridgeSpec) error
	ReleasePort(br, nic string) error
	// HandOver leaves a link that is not the uplink to the next stage:
	// addrs (netinit's) removed, IPv6 autoconfiguration the kernel's own
	// again.
	HandOver(name string, addrs []netip.Prefix) error
	// OperUp returns when the named link's operstate is up (RFC 2863
	// "up": the kernel's linkwatch applied its carrier), or with ctx's
	// error.
	OperUp(ctx context.Context, name string) error
	// LinkChanges calls changed after each change of a link (RTM_NEWLINK,
	// RTM_DELLINK: flags, carrier, operstate, master) until ctx ends, or
	// returns the error that ended its watch.
	LinkChanges(ctx context.Context, changed func()) error
	// Probe checks whether a candidate reaches one of the targets through
	// its own gateways, and says how in words.
	Probe(ctx context.Context, c kernel.Candidate, targets []string) (bool, []string)
	// SetHostname sets the kernel hostname.
	SetHostname(name string) error
	// The routes of the clients go in through boot/route's Installer.
	route.Kernel
}
