// Package kernel is every change the bring-up engine makes to the kernel,
// and what it reads there: links and their addresses, carrier and
// operstate, the management bridge, VLAN links, the IPv6 sysctls, the
// uplink election's reachability probes and the hostname. It is the Linux
// side of the engine's Kernel interface (boot/engine/kernel.go): its
// functions take names, indexes, netip values and the small specs of this
// file, never the engine's own types, so the engine decides and this
// package does. kerneltest holds the fake the engine's unit tests use.
//
// (The protocol clients own their part of the configuration: addresses
// through boot/addr, routes through boot/route.)
package kernel

import (
	"net"
	"net/netip"
	"path"
	"slices"
	"time"
)

// Link is one link as the kernel has it.
type Link struct {
	Index   int
	MTU     int
	Up      bool // administratively up
	Carrier bool
	Addrs   []Addr
}

// Addr is one address on a link. ValidLft is in seconds; 0 and all ones
// mean infinite.
type Addr struct {
	Prefix   netip.Prefix
	ValidLft uint32
}

// LinkInfo is a link as discovery finds it.
type LinkInfo struct {
	Name     string
	MAC      net.HardwareAddr
	Type     string // netlink's link type: "device", "veth", "bridge", "tuntap" ...
	Encap    string // the link-layer type: "ether", "loopback", "none" ...
	Loopback bool   // IFF_LOOPBACK
	// Device: a device is behind it in sysfs (/sys/class/net/NAME/device),
	// as physical NICs have and veth, bridges, tun/tap, wireguard and the
	// like do not.
	Device bool
	Master int // the index of its master (a bridge, a bond), 0 for none
	// BondPort: a bond's port (its slave data is the bonding driver's):
	// the bond is managed, not the port.
	BondPort bool
	// Ports counts the links whose master it is (a bond's, a bridge's).
	Ports  int
	OperUp bool // RFC 2863 operstate "up"
}

// SkipReason says why the link is not managed by default, or "": ignore
// are netinit.ignore='s globs, vlans the vlan= links (always managed).
func (l LinkInfo) SkipReason(ignore, vlans []string) string {
	if slices.Contains(vlans, l.Name) {
		return ""
	}
	for _, g := range ignore {
		if ok, _ := path.Match(g, l.Name); ok {
			return "netinit.ignore=" + g
		}
	}
	if l.Loopback || l.Name == "lo" {
		return "loopback"
	}
	if l.Encap != "ether" {
		return "not Ethernet (" + l.Encap + ")"
	}
	if l.BondPort {
		return "a bond's port"
	}
	if l.Type == "bond" && l.Ports == 0 {
		// The bonding module makes an empty bond0 when it loads
		// (max_bonds=1): nothing to manage until it has ports.
		return "a bond without ports"
	}
	if !l.Device && l.Type != "bond" {
		return l.Type // veth, bridge, tuntap, wireguard, ...
	}
	return ""
}

// BridgeSpec is the management bridge to make.
type BridgeSpec struct {
	Name, NIC string // the bridge and its port
	MTU       int    // 0: left as is
	VLAN      int    // vlan:priv=: the management VLAN, tagged on the port (0: untagged)
	PubVLAN   int    // vlan:pub=: carried tagged on the port, for networkd's tozos (0: none)
	// Carry moves the port's IPv4 addresses (with their remaining
	// lifetimes) and neighbours onto the bridge before they leave the
	// port (ReleasePort): the NIC had its lease first.
	Carry bool
	// PrepareIPv6 has netinit own IPv6 on the bridge (PrepareIPv6)
	// before it is set up: optimistic DAD from its first address.
	PrepareIPv6 bool
	// Prepare makes only the bridge, set up, without its port yet.
	Prepare bool
}

// Candidate is a link the uplink election probes: its gateways (the zero
// Addr for none) and the DNS servers its names are resolved through.
type Candidate struct {
	Link     string
	GW4, GW6 netip.Addr
	DNS      []netip.Addr
}

// Route is one route in the main table, on a link given by its index.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr // the zero Addr: on-link
	// Src is the preferred source address (a DHCPv4 lease's): the
	// kernel also removes the route when that address goes
	// (fib_sync_down_addr), so nothing points nowhere if netinit dies.
	Src    netip.Addr
	Metric int
	// Proto is the route's protocol (rtm_protocol), who installed it:
	// ProtoDHCP, ProtoRA, ProtoStatic, ProtoBoot.
	Proto int
	// Expires has the kernel remove the route after this long (IPv6,
	// RTA_EXPIRES): a route from an RA is not left behind when netinit
	// stops listening. 0: never.
	Expires time.Duration
}

// Route protocols (rtm_protocol, include/uapi/linux/rtnetlink.h), as
// `ip route` names them.
const (
	ProtoBoot   = 3  // "boot": configured at boot (a static ip=)
	ProtoStatic = 4  // "static": configured by the administrator (the overlays)
	ProtoRA     = 9  // "ra": learnt from a Router Advertisement
	ProtoDHCP   = 16 // "dhcp": from a DHCP lease
)

// BondSpec is a bond to make: its ports by kernel name (the first one
// gives the bond its MAC), the bonding driver's mode and options by
// their kernel names (mode is Mode, not an option).
type BondSpec struct {
	Name    string
	Ports   []string
	Mode    string // "802.3ad", "active-backup", ...
	Options []Option
	MTU     int // 0: the kernel's
}

// Option is one bonding option, name=value as the driver's sysfs file
// takes it.
type Option struct{ Name, Value string }

// Bond is a bond as the kernel has it.
type Bond struct {
	Name  string
	Mode  string
	Ports []BondPort
	// PartnerSystem and PartnerKey: the LACP partner of the active
	// aggregator (IFLA_BOND_AD_INFO; 802.3ad only, nil before heard).
	PartnerSystem net.HardwareAddr
	PartnerKey    int
}

// BondPort is one port of a bond, with its IEEE 802.1AX state.
type BondPort struct {
	Name    string
	MAC     net.HardwareAddr // its own (permanent) MAC
	Carrier bool
	State   string // "active" or "backup" (the driver's words, lower case)
	MII     string // "up", "down", "going_down", "going_back"
	// AggregatorID is the 802.3ad aggregator the port is attached to.
	AggregatorID int
	// Actor and Partner are the LACP port states (IEEE 802.1AX-2014
	// 6.4.2.3 Actor_State: bit 0 activity ... bit 7 expired).
	Actor, Partner uint8
}

// LACP port state bits (IEEE 802.1AX-2014 6.4.2.3).
const (
	LACPActivity     = 1 << 0
	LACPTimeout      = 1 << 1 // short timeout (fast rate)
	LACPAggregation  = 1 << 2
	LACPSync         = 1 << 3
	LACPCollecting   = 1 << 4
	LACPDistributing = 1 << 5
	LACPDefaulted    = 1 << 6
	LACPExpired      = 1 << 7
)

// Bundled reports whether the port carries the bond's traffic in
// 802.3ad: both ends are in sync, collecting and distributing (the Mux
// machine's COLLECTING_DISTRIBUTING state, 802.1AX 6.4.15). The
// partner's state is its last LACPDU's: our end distributes as soon as
// the partner collects, and a frame sent before the partner distributes
// too may find the partner's aggregator not yet passing it up (the lab's
// first DHCPDISCOVER over a bond was lost so).
func (p BondPort) Bundled() bool {
	const want = LACPSync | LACPCollecting | LACPDistributing
	return p.Actor&want == want && p.Partner&want == want
}

// LACPStateWords names the set bits of an LACP port state, in the
// standard's order.
func LACPStateWords(s uint8) []string {
	names := []string{"activity", "short_timeout", "aggregation", "synchronization", "collecting", "distributing", "defaulted", "expired"}
	var out []string
	for i, n := range names {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}
