package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/addr"
)

// Bridge makes the bridge b.Name with b.NIC as its only port, or
// completes one found (a daemon restart, or 0-OS's own) as 0-OS's
// `internet` module makes it: type bridge with VLAN filtering (always, as
// zosbase's bridge.New), the NIC's MAC, IPv6 on and not forwarding on the
// bridge, and the VLANs of VLANPlan(b.VLAN, b.PubVLAN) (vlanplan.go;
// ReleasePort then leaves IPv6 off, no address and the port up): with
// vlan:priv= the management traffic is tagged on the wire, the bridge itself PVID and
// untagged in that VLAN, the port carrying it tagged; vlan:pub= is
// carried tagged too, and with both the port leaves the default VLAN 1.
// On a kernel without bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING,
// which kernel-config requires: only a test host lacks it) a bridge
// without VLANs is made unfiltered, one with VLANs fails. The bridge
// itself is set up by the caller, like any managed link. With b.Prepare
// only the bridge is made (its MAC, IPv6, up) and nothing is done to the
// port: the engine has it up before the NIC joins.
func (Netlink) Bridge(b BridgeSpec) error {
	br, nic := b.Name, b.NIC
	port, err := netlink.LinkByName(nic)
	if err != nil {
		return fmt.Errorf("bridge %s: port %s: %w", br, nic, err)
	}
	mac := port.Attrs().HardwareAddr
	plan := VLANPlan(b.VLAN, b.PubVLAN)
	// A kernel without bridge VLAN filtering refuses the attribute
	// itself, even 0 (br_changelink): without VLANs to carry, the bridge
	// is made as it can be.
	unfiltered := func(err error) bool { return errors.Is(err, unix.EOPNOTSUPP) && len(plan) == 0 }
	bl, err := netlink.LinkByName(br)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.HardwareAddr = br, mac
		if b.MTU > 0 {
			attrs.MTU = b.MTU
		}
		filtering := true
		err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs, VlanFiltering: &filtering})
		if unfiltered(err) {
			err = netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
		}
		if err != nil {
			return fmt.Errorf("bridge %s: creating: %w", br, err)
		}
		if bl, err = netlink.LinkByName(br); err != nil {
			return fmt.Errorf("bridge %s: %w", br, err)
		}
	case err != nil:
		return fmt.Errorf("bridge %s: %w", br, err)
	case bl.Type() != "bridge":
		return fmt.Errorf("bridge %s: a link of type %s has that name", br, bl.Type())
	default:
		if f := bl.(*netlink.Bridge).VlanFiltering; f == nil || !*f {
			if err := setVLANFiltering(bl.Attrs().Index); err != nil && !unfiltered(err) {
				return fmt.Errorf("bridge %s: VLAN filtering: %w", br, err)
			}
		}
	}
	// IPv6 on the bridge, never forwarding (it is a host, and 0-OS's
	// DefaultBridgeValid checks it).
	for _, key := range [][2]string{{"disable_ipv6", "0"}, {"forwarding", "0"}} {
		if err := SetIPv6Conf(br, key[0], key[1]); err != nil {
			return fmt.Errorf("bridge %s: %w", br, err)
		}
	}
	if !bytes.Equal(bl.Attrs().HardwareAddr, mac) {
		if err := netlink.LinkSetHardwareAddr(bl, mac); err != nil {
			return fmt.Errorf("bridge %s: MAC %s: %w", br, mac, err)
		}
	}
	if b.PrepareIPv6 {
		if err := PrepareIPv6(br); err != nil {
			return fmt.Errorf("bridge %s: %w", br, err)
		}
	}
	if b.Prepare {
		if err := netlink.LinkSetUp(bl); err != nil {
			return fmt.Errorf("bridge %s: up: %w", br, err)
		}
		return nil
	}
	if b.MTU > 0 && port.Attrs().MTU != b.MTU {
		if err := netlink.LinkSetMTU(port, b.MTU); err != nil {
			return fmt.Errorf("bridge %s: port %s mtu %d: %w", br, nic, b.MTU, err)
		}
	}
	if port.Attrs().MasterIndex != bl.Attrs().Index {
		if err := netlink.LinkSetMaster(port, bl); err != nil {
			return fmt.Errorf("bridge %s: enslaving %s: %w", br, nic, err)
		}
	}
	if err := bridgeVLANs(bl, port, plan); err != nil {
		return fmt.Errorf("bridge %s: %w", br, err)
	}
	// Carried over once the port forwards: until the routes move, the
	// host still sends through the port itself, and what arrives through
	// the bridge is for an address the host has (RFC 1122 section
	// 3.3.4.2, the weak host model): no packet waits for the bridge.
	if b.Carry {
		if err := carryIPv4(port, bl); err != nil {
			return fmt.Errorf("bridge %s: carrying %s's IPv4 over: %w", br, nic, err)
		}
	}
	return nil
}

// ReleasePort leaves the port nic to the bridge br, once its IPv4
// configuration is carried over (the engine moves the routes, boot/route,
// between Bridge and this): an IPv4 address left on the port (netinit ran
// on it before, or an older process did) would answer ARP for the
// bridge's; IPv6 goes off on it; it is set up.
func (Netlink) ReleasePort(br, nic string) error {
	port, err := netlink.LinkByName(nic)
	if err != nil {
		return fmt.Errorf("bridge %s: port %s: %w", br, nic, err)
	}
	if addrs, err := Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(port, netlink.FAMILY_V4) }); err == nil {
		for _, a := range addrs {
			if err := netlink.AddrDel(port, &a); err != nil {
				return fmt.Errorf("bridge %s: removing %s from port %s: %w", br, a.IPNet, nic, err)
			}
		}
	}
	// IPv6 off on the port: its addresses and RAs belong to the bridge
	// (after the enslaving: the bridge forwards the sooner).
	if err := SetIPv6Conf(nic, "disable_ipv6", "1"); err != nil {
		return fmt.Errorf("bridge %s: %w", br, err)
	}
	if err := netlink.LinkSetUp(port); err != nil {
		return fmt.Errorf("bridge %s: port %s up: %w", br, nic, err)
	}
	return nil
}

// setVLANFiltering turns VLAN filtering on for the bridge with index idx,
// up or not: an RTM_NEWLINK with the index and that attribute only.
// (netlink.BridgeSetVlanFiltering also sends the link's name, and the
// kernel refuses any name for a link that is up, its own included:
// net/core/dev.c dev_change_name says EBUSY before it compares them.)
func setVLANFiltering(idx int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.IFLA_BR_VLAN_FILTERING, []byte{1})
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// carryIPv4 puts the port's IPv4 addresses (with their remaining
// lifetimes) on the bridge, which is set up for it; the prefix routes
// come with the addresses; the port's neighbours too. The routes of
// netinit's clients are moved by boot/route; ReleasePort then removes the
// addresses from the port.
func carryIPv4(port, bl netlink.Link) error {
	if err := netlink.LinkSetUp(bl); err != nil {
		return fmt.Errorf("setting the bridge up: %w", err)
	}
	addrs, err := Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(port, netlink.FAMILY_V4) })
	if err != nil {
		return err
	}
	to := addr.Link{Index: bl.Attrs().Index, Name: bl.Attrs().Name}
	for _, a := range addrs {
		p, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		na := addr.Addr{Prefix: netip.PrefixFrom(p, ones), Valid: lifetime(a.ValidLft), Preferred: lifetime(a.PreferedLft)}
		if b, ok := netip.AddrFromSlice(a.Broadcast.To4()); ok {
			na.Broadcast = b
		}
		if err := to.Replace(na); err != nil {
			return err
		}
	}
	// The neighbours the port knows (its gateway's MAC): the bridge's
	// first packets need no ARP round (stale: the kernel confirms them,
	// RFC 4861 section 7.3.3's states, which IPv4 shares).
	neighs, err := Dump(func() ([]netlink.Neigh, error) { return netlink.NeighList(port.Attrs().Index, netlink.FAMILY_V4) })
	if err != nil {
		return err
	}
	for _, n := range neighs {
		if len(n.HardwareAddr) == 0 || n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) == 0 {
			continue
		}
		nn := netlink.Neigh{LinkIndex: bl.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_STALE, IP: n.IP, HardwareAddr: n.HardwareAddr}
		if err := netlink.NeighSet(&nn); err != nil {
			return fmt.Errorf("neighbour %s: %w", n.IP, err)
		}
	}
	return nil
}

// lifetime is a kernel address lifetime (seconds, all ones: forever).
func lifetime(s int) time.Duration {
	if s < 0 || uint32(s) == math.MaxUint32 {
		return addr.Forever
	}
	return time.Duration(s) * time.Second
}

// bridgeVLANs applies the VLAN plan to the bridge bl and its port.
// Adding a VLAN that is there changes nothing; removing VLAN 1 that is
// gone already (a restart) is not an error.
func bridgeVLANs(bl, port netlink.Link, plan []VLANStep) error {
	for _, s := range plan {
		dev := port
		if s.Self {
			dev = bl
		}
		if s.Del {
			_ = netlink.BridgeVlanDel(dev, uint16(s.VID), s.PVID, s.Untagged, s.Self, false)
			continue
		}
		if err := netlink.BridgeVlanAdd(dev, uint16(s.VID), s.PVID, s.Untagged, s.Self, false); err != nil {
			return fmt.Errorf("VLAN %d on %s: %w", s.VID, dev.Attrs().Name, err)
		}
	}
	return nil
}

// HandOver removes addrs from the link and sets its IPv6 router discovery
// and autoconfiguration back to the kernel's defaults (what a link that
// netinit never touched has).
func (Netlink) HandOver(name string, addrs []netip.Prefix) error {
	nl, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, p := range addrs {
		al := addr.Link{Index: nl.Attrs().Index, Name: name}
		if err := al.Remove(p); err != nil {
			return err
		}
	}
	for _, key := range []string{"accept_ra", "autoconf"} {
		def, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv6/conf/default", key))
		if err != nil {
			return err
		}
		if err := SetIPv6Conf(name, key, string(bytes.TrimSpace(def))); err != nil {
			return err
		}
	}
	return nil
}
