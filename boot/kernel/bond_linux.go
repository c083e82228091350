package kernel

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// CreateBond makes the bond b with its options, its ports enslaved (each
// set down first, as the bonding driver wants a port it takes over:
// bonding.rst section 3), unless a link named b.Name exists: then it
// returns false and changes nothing — unless it is an empty bond that
// is down (the bonding module makes bond0 so when it loads): that one is
// made again. The bond is left down: the engine
// owns IPv6 on it before it goes up. A bond that cannot take every port
// is removed again.
func (Netlink) CreateBond(b BondSpec) (bool, error) {
	if l, err := netlink.LinkByName(b.Name); err == nil {
		// The bonding module's own bond0 (max_bonds=1), empty and down,
		// is made again as asked; a bond with ports was made before.
		if _, ok := l.(*netlink.Bond); !ok {
			return false, fmt.Errorf("%s exists and is a %s", b.Name, l.Type())
		}
		if n, err := bondPortCount(l.Attrs().Index); err != nil || n > 0 || l.Attrs().Flags&net.FlagUp != 0 {
			return false, err
		}
		if err := netlink.LinkDel(l); err != nil {
			return false, fmt.Errorf("removing the empty %s: %w", b.Name, err)
		}
	}
	var ports []netlink.Link
	for _, p := range b.Ports {
		l, err := netlink.LinkByName(p)
		if err != nil {
			return false, fmt.Errorf("port %s: %w", p, err)
		}
		ports = append(ports, l)
	}
	nb := netlink.NewLinkBond(netlink.LinkAttrs{Name: b.Name, MTU: b.MTU})
	mode, ok := netlink.StringToBondModeMap[b.Mode]
	if !ok {
		return false, fmt.Errorf("mode %q: not a bonding mode", b.Mode)
	}
	nb.Mode = mode
	var rest []Option // written through sysfs
	for _, o := range b.Options {
		n, err := strconv.Atoi(o.Value)
		switch {
		case o.Name == "miimon" && err == nil:
			nb.Miimon = n
		case o.Name == "updelay" && err == nil:
			nb.UpDelay = n
		case o.Name == "downdelay" && err == nil:
			nb.DownDelay = n
		case o.Name == "min_links" && err == nil:
			nb.MinLinks = n
		case o.Name == "lacp_rate" && slices.Contains([]string{"slow", "fast"}, o.Value):
			nb.LacpRate = netlink.StringToBondLacpRate(o.Value)
		case o.Name == "xmit_hash_policy" && netlink.StringToBondXmitHashPolicy(o.Value) != netlink.BOND_XMIT_HASH_POLICY_UNKNOWN:
			nb.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(o.Value)
		default:
			rest = append(rest, o)
		}
	}
	if err := netlink.LinkAdd(nb); err != nil {
		return false, fmt.Errorf("creating: %w", err)
	}
	undo := func(err error) (bool, error) {
		if l, lerr := netlink.LinkByName(b.Name); lerr == nil {
			_ = netlink.LinkDel(l)
		}
		return false, err
	}
	// The options netlink.Bond does not carry go through the driver's
	// sysfs files, before any port (mode-dependent ones need the bond
	// down and empty).
	for _, o := range rest {
		path := filepath.Join("/sys/class/net", b.Name, "bonding", o.Name)
		if err := os.WriteFile(path, []byte(o.Value), 0o644); err != nil {
			return undo(fmt.Errorf("option %s=%s: %w", o.Name, o.Value, err))
		}
	}
	bl, err := netlink.LinkByName(b.Name)
	if err != nil {
		return undo(err)
	}
	for _, p := range ports {
		if err := netlink.LinkSetDown(p); err != nil {
			return undo(fmt.Errorf("port %s down: %w", p.Attrs().Name, err))
		}
		if err := netlink.LinkSetMasterByIndex(p, bl.Attrs().Index); err != nil {
			return undo(fmt.Errorf("port %s: %w", p.Attrs().Name, err))
		}
	}
	return true, nil
}

// DeleteBond removes the bond name; its ports are released (down, their
// own MAC back: the driver's __bond_release_one).
func (Netlink) DeleteBond(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if _, ok := l.(*netlink.Bond); !ok {
		return fmt.Errorf("%s is a %s, not a bond", name, l.Type())
	}
	return netlink.LinkDel(l)
}

// BondStatus reads the bond name and its ports as the kernel has them
// (IFLA_BOND_* and each port's IFLA_BOND_SLAVE_* attributes).
func (Netlink) BondStatus(name string) (Bond, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return Bond{}, err
	}
	nb, ok := l.(*netlink.Bond)
	if !ok {
		return Bond{}, fmt.Errorf("%s is a %s, not a bond", name, l.Type())
	}
	b := Bond{Name: name, Mode: nb.Mode.String()}
	if nb.Mode == netlink.BOND_MODE_802_3AD {
		// IFLA_BOND_AD_INFO is not parsed by vishvananda/netlink: the
		// driver's sysfs files say the same.
		b.PartnerSystem, b.PartnerKey = adPartner(name)
	}
	links, err := Dump(netlink.LinkList)
	if err != nil {
		return b, fmt.Errorf("listing links: %w", err)
	}
	for _, p := range links {
		a := p.Attrs()
		s, ok := a.Slave.(*netlink.BondSlave)
		if a.MasterIndex != nb.Index || !ok {
			continue
		}
		mac := a.HardwareAddr
		if len(s.PermHardwareAddr) > 0 {
			mac = s.PermHardwareAddr
		}
		b.Ports = append(b.Ports, BondPort{Name: a.Name, MAC: slices.Clone(mac), State: strings.ToLower(s.State.String()),
			MII: strings.ToLower(s.MiiStatus.String()), AggregatorID: int(s.AggregatorId),
			Actor: s.AdActorOperPortState, Partner: uint8(s.AdPartnerOperPortState), Carrier: carrier(a.Name)})
	}
	if len(b.Ports) == 0 {
		return b, errors.New("no ports")
	}
	return b, nil
}

// bondPortCount counts the links whose master is the link index.
func bondPortCount(index int) (int, error) {
	links, err := Dump(netlink.LinkList)
	if err != nil {
		return 0, err
	}
	return portsOf(links, index), nil
}

// adPartner reads the 802.3ad partner of the bond's active aggregator
// from the driver's sysfs files (nil before one is heard).
func adPartner(name string) (net.HardwareAddr, int) {
	dir := filepath.Join("/sys/class/net", name, "bonding")
	b, err := os.ReadFile(filepath.Join(dir, "ad_partner_mac"))
	if err != nil {
		return nil, 0
	}
	mac, err := net.ParseMAC(strings.TrimSpace(string(b)))
	if err != nil || isZero(mac) {
		return nil, 0
	}
	b, _ = os.ReadFile(filepath.Join(dir, "ad_partner_key"))
	key, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return mac, key
}

func isZero(mac net.HardwareAddr) bool {
	for _, c := range mac {
		if c != 0 {
			return false
		}
	}
	return true
}
