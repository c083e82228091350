package qemu_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/qemu/guestlab"
)

// The zos bridge's VLANs on a real kernel (issue 25 item 3), in the guest
// lab: NIC 0 is the node's, NIC 1 on the same hub is moved into a
// "switch" namespace, where 8021q VLAN links carry the DHCP servers
// (dnsmasq) and the management RA (radvd) on the VLANs the test says.
// netinit boots as the guest's PID 1 with a 0-OS command line (runmode=,
// so it builds zos), as on a node: the servers are up before its first
// packet, so its DHCP never races them. Then the test binary, its next
// stage, reads what the kernel holds (netlink) and, with vlan:pub=, wires
// networkd's `tozos` veth to zos as zosbase does and takes a lease through
// it on the public VLAN.

// vlanServer is a DHCP server on the switch: on the VLAN (0: untagged on
// its port), serving Subnet.100-150 with Subnet.1 as the router; RA adds
// radvd with 2001:db8:1::/64.
type vlanServer struct {
	VLAN   int
	Subnet string
	RA     bool
}

type zosVLANArgs struct {
	Pub     int // vlan:pub= of the node: the check wires tozos with it
	Servers []vlanServer
	// IPv6Wait bounds the check's wait for the RA's address and default
	// route on zos (networkd's DefaultBridgeValid wants the route, and
	// it comes later than the node's verdict when the first RA is lost
	// to neighbour discovery on the fresh VLAN).
	IPv6Wait time.Duration
	// Unfiltered: before netinit, zos exists without VLAN filtering
	// with the node's NIC as its port (a bridge made before: netinit
	// completes one it finds, as after a daemon restart).
	Unfiltered bool
}

// zosDoc is what the check found.
type zosDoc struct {
	Phase, Uplink, UplinkNIC string
	UplinkVLAN               int
	Port                     string // the node's NIC
	ZOS                      string // "" when zos is a bridge, else what it is
	Filtering                bool
	ZOSMAC, PortMAC          string
	PortOnZOS                bool
	PortIPv6Off, ZOSForward  string // disable_ipv6 of the port, forwarding of zos
	ZOSAddrs                 []string
	ZOSv6Default             bool
	// VLANs: the kernel's bridge VLAN table (`bridge vlan show`) of zos
	// itself ("zos") and of its port ("port"): "VID[ pvid] (un)tagged".
	VLANs map[string][]string
	// PublicAddrs: what networkd's public side (behind tozos) got.
	PublicAddrs []string
	PublicError string
}

var zosVLAN = guestlab.Register(guestlab.Program{Name: "zos-vlan", Setup: zosSwitch, Check: zosCheck})

// zosSwitch is the switch: NIC 1 as sw0, a VLAN link per tagged server.
func zosSwitch(g *guestlab.Guest) error {
	var a zosVLANArgs
	if err := g.Args(&a); err != nil {
		return err
	}
	if a.Unfiltered {
		if err := unfilteredZOS(g.NIC(0)); err != nil {
			return err
		}
	}
	sw, err := g.NewNS("switch")
	if err != nil {
		return err
	}
	// The router's addresses are long established: no DAD (radvd cannot
	// answer while its link-local address is tentative).
	for _, k := range []string{"default", "all"} {
		if err := sw.Sysctl("net/ipv6/conf/"+k+"/accept_dad", "0"); err != nil {
			return err
		}
	}
	if err := sw.Take(g.NIC(1), "sw0"); err != nil {
		return err
	}
	h, err := sw.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	sw0, err := h.LinkByName("sw0")
	if err != nil {
		return err
	}
	for _, s := range a.Servers {
		dev, l := "sw0", sw0
		if s.VLAN > 0 {
			dev = fmt.Sprintf("sw0.%d", s.VLAN)
			if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: dev, ParentIndex: sw0.Attrs().Index}, VlanId: s.VLAN}); err != nil {
				return fmt.Errorf("VLAN link %s: %w", dev, err)
			}
			if l, err = h.LinkByName(dev); err != nil {
				return err
			}
			if err := h.LinkSetUp(l); err != nil {
				return err
			}
		}
		addrs := []string{s.Subnet + ".1/24"}
		if s.RA {
			addrs = append(addrs, "2001:db8:1::1/64")
		}
		for _, a := range addrs {
			na, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			na.Flags = unix.IFA_F_NODAD
			if err := h.AddrAdd(l, na); err != nil {
				return fmt.Errorf("%s on %s: %w", a, dev, err)
			}
		}
		if err := sw.Dnsmasq("dnsmasq-"+dev, dev, "--dhcp-range="+s.Subnet+".100,"+s.Subnet+".150,255.255.255.0,1h",
			"--no-ping", "--dhcp-option=option:router,"+s.Subnet+".1"); err != nil {
			return err
		}
		if s.RA {
			conf := "interface " + dev + ` {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	AdvRASolicitedUnicast on;
	prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; };
	RDNSS 2001:db8:1::53 { };
};
`
			if err := sw.Radvd("radvd-"+dev, conf); err != nil {
				return err
			}
		}
	}
	return nil
}

// unfilteredZOS makes zos without VLAN filtering, nic its port, both up.
func unfilteredZOS(nic string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "zos"
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		return err
	}
	br, err := netlink.LinkByName("zos")
	if err != nil {
		return err
	}
	port, err := netlink.LinkByName(nic)
	if err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return netlink.LinkSetMaster(port, br) },
		func() error { return netlink.LinkSetUp(port) },
		func() error { return netlink.LinkSetUp(br) },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("zos without VLAN filtering: %w", err)
		}
	}
	return nil
}

// zosCheck reads the node's state, zos and its VLAN table, and with
// vlan:pub= takes a lease through networkd's tozos.
func zosCheck(g *guestlab.Guest) (any, error) {
	var a zosVLANArgs
	if err := g.Args(&a); err != nil {
		return nil, err
	}
	st, err := g.State()
	if err != nil {
		return nil, err
	}
	doc := zosDoc{Phase: string(st.Phase), Uplink: st.Uplink, UplinkNIC: st.UplinkNIC, UplinkVLAN: st.UplinkVLAN, Port: g.NIC(0)}
	port, err := netlink.LinkByName(g.NIC(0))
	if err != nil {
		return nil, err
	}
	l, err := netlink.LinkByName("zos")
	if err != nil {
		doc.ZOS = err.Error()
		return doc, nil
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		doc.ZOS = "a link of type " + l.Type()
		return doc, nil
	}
	doc.Filtering = br.VlanFiltering != nil && *br.VlanFiltering
	doc.ZOSMAC, doc.PortMAC = br.HardwareAddr.String(), port.Attrs().HardwareAddr.String()
	doc.PortOnZOS = port.Attrs().MasterIndex == br.Index
	doc.PortIPv6Off = sysctl("net/ipv6/conf/" + port.Attrs().Name + "/disable_ipv6")
	doc.ZOSForward = sysctl("net/ipv6/conf/zos/forwarding")
	ipv6 := func() (bool, error) {
		addrs, err := netlink.AddrList(br, netlink.FAMILY_ALL)
		if err != nil {
			return false, err
		}
		routes, err := netlink.RouteList(br, netlink.FAMILY_V6)
		if err != nil {
			return false, err
		}
		doc.ZOSAddrs = nil
		for _, ad := range addrs {
			if ad.IP.IsGlobalUnicast() {
				doc.ZOSAddrs = append(doc.ZOSAddrs, ad.IPNet.String())
			}
		}
		doc.ZOSv6Default = slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst == nil || r.Dst.IP.IsUnspecified() })
		return doc.ZOSv6Default && inSubnet(doc.ZOSAddrs, "2001:db8:1::/64"), nil
	}
	// Until reads again a dump the kernel interrupted; a case that waits
	// for nothing still reads once.
	wait := a.IPv6Wait
	if wait <= 0 {
		wait = time.Nanosecond
	}
	if err := g.Until(wait, "IPv6 on zos", ipv6); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	} else if err != nil && a.IPv6Wait > 0 {
		g.Logf("%v", err)
	}
	vlans, err := netlink.BridgeVlanList()
	if err != nil {
		return nil, err
	}
	doc.VLANs = map[string][]string{"zos": vlanRows(vlans[int32(br.Index)]), "port": vlanRows(vlans[int32(port.Attrs().Index)])}
	if a.Pub > 0 {
		if doc.PublicAddrs, err = toZOS(g, br, a.Pub); err != nil {
			doc.PublicError = err.Error()
		}
	}
	return doc, nil
}

func sysctl(key string) string {
	b, err := os.ReadFile(filepath.Join("/proc/sys", key))
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}

// vlanRows is a device's VLAN table as `bridge vlan show` says it.
func vlanRows(vs []*nl.BridgeVlanInfo) []string {
	var rows []string
	for _, v := range vs {
		row := fmt.Sprint(v.Vid)
		if v.PortVID() {
			row += " pvid"
		}
		if v.EngressUntag() {
			row += " untagged"
		} else {
			row += " tagged"
		}
		rows = append(rows, row)
	}
	slices.Sort(rows)
	return rows
}

// toZOS wires br-pub's exit to zos as networkd does on a single-NIC node
// (zosbase pkg/network/public/public.go:118-128 attachPublicToExit →
// pkg/network/bridge/bridge.go:105-161 Attach, attachNic): a veth tozos
// whose own end is zos's port (up, IPv6 off, VLAN 1 out, the public VLAN
// as PVID untagged), its peer p-tozos in br-pub — here in a "public"
// namespace standing for br-pub and the public namespace behind it, where
// netinit's DHCP client asks for a lease.
func toZOS(g *guestlab.Guest, zos *netlink.Bridge, pub int) ([]string, error) {
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tozos", MTU: 1500}, PeerName: "p-tozos"}); err != nil {
		return nil, fmt.Errorf("veth tozos: %w", err)
	}
	tozos, err := netlink.LinkByName("tozos")
	if err != nil {
		return nil, err
	}
	for _, step := range []func() error{
		func() error { return netlink.LinkSetUp(tozos) },
		func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/tozos/disable_ipv6", []byte("1"), 0o644)
		},
		func() error { return netlink.LinkSetMaster(tozos, zos) },
		func() error { return netlink.BridgeVlanDel(tozos, 1, true, true, false, false) },
		func() error { return netlink.BridgeVlanAdd(tozos, uint16(pub), true, true, false, false) },
	} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("attaching tozos to zos: %w", err)
		}
	}
	ns, err := g.NewNS("public")
	if err != nil {
		return nil, err
	}
	if err := ns.Take("p-tozos", "p-tozos"); err != nil {
		return nil, err
	}
	dir := filepath.Join(guestlab.LogDir, "public")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	err = ns.Run("netinit-public", 40*time.Second, guestlab.NetinitPath, "up", "--oneshot", "--state", filepath.Join(dir, "state.json"),
		"--cmdline", "ip=dhcp netinit.ygg=off netinit.timeout=20s", "p-tozos")
	h, herr := ns.Handle()
	if herr != nil {
		return nil, herr
	}
	defer h.Close()
	var out []string
	if l, lerr := h.LinkByName("p-tozos"); lerr == nil {
		as, _ := kernel.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
		for _, a := range as {
			out = append(out, a.IPNet.String())
		}
	}
	return out, err
}

// zosVLANCase is one 0-OS command line, the switch around the node, and
// the VLAN table zosbase leaves for it (pkg/network/bridge/bridge.go:19-23
// filtering; pkg/network/bootstrap/bridge.go:70-80 and zos
// cmds/internet/main.go:196-217 the VLANs: see boot/engine's TestVLANPlan
// for each call). The management servers serve 192.0.2.0/24 (and the RA),
// the public ones 198.51.100.0/24.
type zosVLANCase struct {
	name      string
	priv, pub int
	servers   []vlanServer
	zos, port []string
	// decoy is a server's log that must have no DHCPDISCOVER.
	decoy string
	// unfiltered: zos is there before netinit, without VLAN filtering.
	unfiltered bool
	// up: the node is `netinit up` (netinit.bridge=zos) rather than
	// netinit booting as PID 1.
	up bool
}

var zosVLANCases = []zosVLANCase{
	{name: "neither", servers: []vlanServer{{0, "192.0.2", true}},
		zos: []string{"1 pvid untagged"}, port: []string{"1 pvid untagged"}},
	// An untagged server of another subnet on the same wire: a
	// management packet leaving untagged would be answered by it.
	{name: "priv", priv: 100, servers: []vlanServer{{100, "192.0.2", true}, {0, "198.51.100", false}},
		zos: []string{"100 pvid untagged"}, port: []string{"1 pvid untagged", "100 tagged"}, decoy: "dnsmasq-sw0"},
	{name: "pub", pub: 200, servers: []vlanServer{{0, "192.0.2", true}, {200, "198.51.100", false}},
		zos: []string{"1 pvid untagged"}, port: []string{"1 pvid untagged", "200 tagged"}},
	{name: "both", priv: 100, pub: 200, servers: []vlanServer{{100, "192.0.2", true}, {200, "198.51.100", false}},
		zos: []string{"100 pvid untagged"}, port: []string{"100 tagged", "200 tagged"}},
	// The same as `netinit up` in a running system.
	{name: "priv-up", priv: 100, servers: []vlanServer{{100, "192.0.2", true}, {0, "198.51.100", false}},
		zos: []string{"100 pvid untagged"}, port: []string{"1 pvid untagged", "100 tagged"}, decoy: "dnsmasq-sw0", up: true},
	// zos found without VLAN filtering (made before netinit ran: a
	// daemon restart, an older image) is completed the same way.
	{name: "both-found", priv: 100, pub: 200, servers: []vlanServer{{100, "192.0.2", true}, {200, "198.51.100", false}},
		zos: []string{"100 pvid untagged"}, port: []string{"100 tagged", "200 tagged"}, unfiltered: true},
}

// zosVLANBoot boots the node of c. One that must not get its network
// (wrong) has a bring-up deadline of 10 s, and the check does not wait for
// IPv6 on zos.
func zosVLANBoot(t *testing.T, c zosVLANCase, wrong bool) (zosDoc, *guestlab.Result) {
	t.Helper()
	args := zosVLANArgs{Pub: c.pub, Servers: c.servers, IPv6Wait: 20 * time.Second, Unfiltered: c.unfiltered}
	cmdline := "runmode=dev netinit.ygg=off netinit.timeout=30s"
	if wrong {
		args.IPv6Wait, cmdline = 0, "runmode=dev netinit.ygg=off netinit.timeout=10s"
	}
	if c.priv > 0 {
		cmdline += fmt.Sprintf(" vlan:priv=%d", c.priv)
	}
	if c.pub > 0 {
		cmdline += fmt.Sprintf(" vlan:pub=%d", c.pub)
	}
	node := guestlab.NodePID1
	if c.up {
		node, cmdline = guestlab.NodeUp, strings.Replace(cmdline, "runmode=dev", "netinit.bridge=zos", 1)
	}
	var doc zosDoc
	res := guestlab.Boot(t, guestlab.Config{Program: zosVLAN, Args: args,
		NICs: []guestlab.NIC{{Hub: 1}, {Hub: 1}}, Modules: []string{"8021q", "bridge", "veth"},
		Binaries: []string{"dnsmasq", "radvd"}, Node: node, Cmdline: cmdline}, &doc)
	t.Logf("%+v", doc)
	return doc, res
}

// requireVLANTable fails the test unless zos is the VLAN-filtering bridge
// with the NIC as its port and the VLAN table of c.
func requireVLANTable(t *testing.T, c zosVLANCase, doc zosDoc) {
	t.Helper()
	if doc.ZOS != "" || !doc.PortOnZOS {
		t.Fatalf("zos: %q, port on it %v", doc.ZOS, doc.PortOnZOS)
	}
	if !doc.Filtering {
		t.Errorf("zos is not VLAN-filtering (zosbase's bridge.New always makes it so)")
	}
	if !slices.Equal(doc.VLANs["zos"], c.zos) || !slices.Equal(doc.VLANs["port"], c.port) {
		t.Errorf("bridge VLAN table: zos %q port %q, want zos %q port %q (as zosbase leaves it)",
			doc.VLANs["zos"], doc.VLANs["port"], c.zos, c.port)
	}
}

// inSubnet reports whether one of addrs (CIDR) is in prefix.
func inSubnet(addrs []string, prefix string) bool {
	return slices.ContainsFunc(addrs, func(a string) bool {
		p, err := netip.ParsePrefix(a)
		return err == nil && netip.MustParsePrefix(prefix).Contains(p.Addr())
	})
}

// TestZOSBridgeVLANs: for each combination of vlan:priv= and vlan:pub=,
// netinit as PID 1 builds zos as zosbase does: VLAN-filtering, the NIC's
// MAC, IPv6 off on the port, not forwarding, the VLAN table zosbase
// leaves; the management lease and RA come through the management VLAN
// (tagged with vlan:priv=, an untagged decoy of another subnet never hears
// a thing), so the state is ready on zos with what networkd's
// DefaultBridgeValid wants (an IPv6 default route on zos); and with
// vlan:pub= networkd's tozos reaches the public VLAN's server through zos.
func TestZOSBridgeVLANs(t *testing.T) {
	for _, c := range zosVLANCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			doc, res := zosVLANBoot(t, c, false)
			requireVLANTable(t, c, doc)
			if doc.Phase != "ready" || doc.Uplink != "zos" || doc.UplinkNIC != doc.Port || doc.UplinkVLAN != c.priv {
				t.Errorf("state: phase %s uplink %s nic %s vlan %d, want ready on zos, %s, VLAN %d",
					doc.Phase, doc.Uplink, doc.UplinkNIC, doc.UplinkVLAN, doc.Port, c.priv)
			}
			if !inSubnet(doc.ZOSAddrs, "192.0.2.0/24") || !inSubnet(doc.ZOSAddrs, "2001:db8:1::/64") || !doc.ZOSv6Default {
				t.Errorf("zos addresses %v, IPv6 default route %v: want the management lease, SLAAC and the RA's route", doc.ZOSAddrs, doc.ZOSv6Default)
			}
			if doc.ZOSMAC != doc.PortMAC || doc.PortIPv6Off != "1" || doc.ZOSForward != "0" {
				t.Errorf("zos MAC %s port MAC %s, port disable_ipv6 %s, zos forwarding %s", doc.ZOSMAC, doc.PortMAC, doc.PortIPv6Off, doc.ZOSForward)
			}
			if log := res.Logs[c.decoy]; c.decoy != "" && (log == "" || strings.Contains(log, "DHCPDISCOVER")) {
				t.Errorf("the decoy %s did not run, or heard the node:\n%s", c.decoy, log)
			}
			if c.pub > 0 && (!inSubnet(doc.PublicAddrs, "198.51.100.0/24") || doc.PublicError != "") {
				t.Errorf("tozos (PVID %d on zos): addresses %v (%s), want a lease from the public VLAN's server", c.pub, doc.PublicAddrs, doc.PublicError)
			}
		})
	}
}

// TestZOSBridgeWrongTag: vlan:priv=100 while the switch serves the
// management network only on VLAN 300: no lease, no RA (the node is not
// ready), and the server never heard the node — the tag is what the
// positive cases rest on.
func TestZOSBridgeWrongTag(t *testing.T) {
	t.Parallel()
	c := zosVLANCases[1]
	c.servers = []vlanServer{{300, "192.0.2", true}}
	doc, res := zosVLANBoot(t, c, true)
	requireVLANTable(t, c, doc)
	if doc.Phase == "ready" || inSubnet(doc.ZOSAddrs, "192.0.2.0/24") || inSubnet(doc.ZOSAddrs, "2001:db8:1::/64") {
		t.Errorf("phase %s, zos addresses %v: the node got its network from a server on VLAN 300", doc.Phase, doc.ZOSAddrs)
	}
	if log := res.Logs["dnsmasq-sw0.300"]; !strings.Contains(log, "sockets bound") || strings.Contains(log, "DHCPDISCOVER") {
		t.Errorf("the server on VLAN 300 did not run, or heard the node:\n%s", log)
	}
}
