package qemu_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu/guestlab"
)

// Bonded uplinks (issue 27) in the guest lab. The node's two NICs are on
// two QEMU hubs, each shared with one NIC of a "switch" namespace: there
// an 802.3ad bond of its two ports (a Linux bond, as an LACP switch's
// port channel: it sends LACPDUs at the fast rate) or, with LACP off, a
// plain bridge of them, with dnsmasq on top. The NICs report 1 Gb/s full
// duplex (802.3ad aggregates only full-duplex ports). The active-backup
// case uses veth pairs instead, whose carrier follows the switch end:
// its port going down is the node's port losing carrier.

// bondArgs are what the guest builds and does.
type bondArgs struct {
	// Switch is "lacp" (an 802.3ad bond over sw0 and sw1), "plain" (a
	// bridge over them) or "veth" (a bridge over the switch ends of the
	// veth pairs nb0-sb0 and nb1-sb1; the node's ends stay in the root
	// namespace).
	Switch string
	// Failover: the check takes the active port's peer down, then pings
	// the node from the switch and looks at its lease again.
	Failover bool
	// VLAN, when not 0, is where the switch serves DHCP: a VLAN link on
	// its bond or bridge, nothing untagged.
	VLAN int
}

// bondDoc is what the check found.
type bondDoc struct {
	NICs                     []string
	Phase, Uplink, UplinkNIC string
	UplinkVLAN               int
	// Bond is bond0's type ("" when there is none); Ports the links
	// whose master it is; Master the name of bond0's master ("" none).
	Bond, Mode, Master string
	Ports              []string
	// Bundled: the ports in collecting/distributing (802.3ad), from
	// the kernel's per-port attributes.
	Bundled []string
	// Addrs are the IPv4 addresses of the root namespace's links.
	Addrs map[string][]string
	// Bonds is the state's bonds.
	Bonds []state.Bond
	// Failover: the active port before and after its peer went down,
	// the pings from the switch, and the node's lease before and after
	// (address, renewals, the server's DHCPACKs).
	ActiveBefore, ActiveAfter string
	PingError                 string
	LeaseBefore, LeaseAfter   string
	RenewalsBefore, Renewals  int
	AcksBefore, AcksAfter     int
	PhaseAfter                string
	// Timings are the state's timings_ms.
	Timings map[string]int64
}

var bondProgram = guestlab.Register(guestlab.Program{Name: "bond", Setup: bondSwitch, Check: bondCheck})

// bondSwitch builds the switch of the case.
func bondSwitch(g *guestlab.Guest) error {
	var a bondArgs
	if err := g.Args(&a); err != nil {
		return err
	}
	sw, err := g.NewNS("switch")
	if err != nil {
		return err
	}
	ports := []string{"sw0", "sw1"}
	switch a.Switch {
	case "veth":
		ports = []string{"sb0", "sb1"}
		for i, p := range ports {
			node := fmt.Sprintf("nb%d", i)
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: node}, PeerName: p}); err != nil {
				return fmt.Errorf("veth %s-%s: %w", node, p, err)
			}
			if err := sw.Take(p, p); err != nil {
				return err
			}
		}
	default:
		if err := sw.Take(g.NIC(2), "sw0"); err != nil {
			return err
		}
		if err := sw.Take(g.NIC(3), "sw1"); err != nil {
			return err
		}
	}
	h, err := sw.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	var master netlink.Link
	if a.Switch == "lacp" {
		b := netlink.NewLinkBond(netlink.LinkAttrs{Name: "swbond"})
		b.Mode, b.LacpRate, b.Miimon = netlink.BOND_MODE_802_3AD, netlink.BOND_LACP_RATE_FAST, 100
		master = b
	} else {
		master = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "swbr"}}
	}
	if err := h.LinkAdd(master); err != nil {
		return fmt.Errorf("the switch's %s: %w", master.Type(), err)
	}
	m, err := h.LinkByName(master.Attrs().Name)
	if err != nil {
		return err
	}
	for _, p := range ports {
		l, err := h.LinkByName(p)
		if err != nil {
			return err
		}
		if err := h.LinkSetDown(l); err != nil {
			return err
		}
		if err := h.LinkSetMaster(l, m); err != nil {
			return fmt.Errorf("%s into %s: %w", p, m.Attrs().Name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(m); err != nil {
		return err
	}
	if a.VLAN > 0 {
		name := fmt.Sprintf("%s.%d", m.Attrs().Name, a.VLAN)
		if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: m.Attrs().Index}, VlanId: a.VLAN}); err != nil {
			return fmt.Errorf("VLAN link %s: %w", name, err)
		}
		if m, err = h.LinkByName(name); err != nil {
			return err
		}
		if err := h.LinkSetUp(m); err != nil {
			return err
		}
	}
	na, err := netlink.ParseAddr("192.0.2.1/24")
	if err != nil {
		return err
	}
	na.Flags = unix.IFA_F_NODAD
	if err := h.AddrAdd(m, na); err != nil {
		return err
	}
	return sw.Dnsmasq("dnsmasq", m.Attrs().Name, "--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
		"--no-ping", "--dhcp-option=option:router,192.0.2.1")
}

// bondCheck reads what the node made of its ports, and with Failover
// fails the active port.
func bondCheck(g *guestlab.Guest) (any, error) {
	var a bondArgs
	if err := g.Args(&a); err != nil {
		return nil, err
	}
	doc := bondDoc{NICs: []string{g.NIC(0)}, Addrs: map[string][]string{}}
	if a.Switch != "veth" {
		doc.NICs = append(doc.NICs, g.NIC(1))
	}
	// The bond's ports bundle within a few LACPDUs of its start; the
	// check gives them until both are (or 10 s).
	if a.Switch == "lacp" {
		_ = g.Until(10*time.Second, "bond0's ports collecting and distributing", func() (bool, error) {
			readBond(&doc)
			return len(doc.Bundled) == 2 || doc.Bond == "", nil
		})
	}
	readBond(&doc)
	links, err := kernel.Dump(netlink.LinkList)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		as, _ := kernel.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
		for _, ad := range as {
			doc.Addrs[l.Attrs().Name] = append(doc.Addrs[l.Attrs().Name], ad.IPNet.String())
		}
	}
	st, err := g.State()
	if err != nil {
		return nil, err
	}
	// The state at the verdict may be from before the ports bundled:
	// the daemon writes it again on a change and every 10 s.
	if a.Switch == "lacp" {
		_ = g.Until(15*time.Second, "the state's bond0 ports bundled", func() (bool, error) {
			if st, err = g.State(); err != nil {
				return false, err
			}
			n := 0
			for _, b := range st.Bonds {
				for _, p := range b.Ports {
					if p.Bundled {
						n++
					}
				}
			}
			return n == 2 && st.Bonds[0].PartnerSystem != "", nil
		})
	}
	doc.Phase, doc.Uplink, doc.UplinkNIC, doc.UplinkVLAN, doc.Bonds, doc.Timings = string(st.Phase), st.Uplink, st.UplinkNIC, st.UplinkVLAN, st.Bonds, st.TimingsMS
	if a.Failover {
		failover(g, &doc, st)
	}
	return doc, nil
}

// readBond reads bond0 and its ports from the kernel.
func readBond(doc *bondDoc) {
	doc.Bond, doc.Mode, doc.Master, doc.Ports, doc.Bundled = "", "", "", nil, nil
	l, err := netlink.LinkByName("bond0")
	if err != nil {
		return
	}
	doc.Bond = l.Type()
	defer func() {
		if len(doc.Ports) == 0 { // the bonding module's own empty bond0
			doc.Bond, doc.Mode = "", ""
		}
	}()
	if b, ok := l.(*netlink.Bond); ok {
		doc.Mode = b.Mode.String()
	}
	if m := l.Attrs().MasterIndex; m > 0 {
		if ml, err := netlink.LinkByIndex(m); err == nil {
			doc.Master = ml.Attrs().Name
		}
	}
	links, _ := kernel.Dump(netlink.LinkList)
	for _, p := range links {
		if p.Attrs().MasterIndex != l.Attrs().Index {
			continue
		}
		doc.Ports = append(doc.Ports, p.Attrs().Name)
		if s, ok := p.Attrs().Slave.(*netlink.BondSlave); ok && (kernel.BondPort{Actor: s.AdActorOperPortState, Partner: uint8(s.AdPartnerOperPortState)}).Bundled() {
			doc.Bundled = append(doc.Bundled, p.Attrs().Name)
		}
	}
	slices.Sort(doc.Ports)
}

// failover takes the switch end of bond0's active port down: the node's
// port loses carrier, the bond moves to the other one (miimon), and the
// node answers pings from the switch with its lease untouched.
func failover(g *guestlab.Guest, doc *bondDoc, st *state.State) {
	active := func() string {
		b, _ := os.ReadFile("/sys/class/net/bond0/bonding/active_slave")
		return strings.TrimSpace(string(b))
	}
	doc.LeaseBefore, doc.RenewalsBefore = lease4(st, "bond0")
	doc.ActiveBefore = active()
	doc.AcksBefore = acks()
	sw := g.NS("switch")
	peer := strings.Replace(doc.ActiveBefore, "nb", "sb", 1)
	err := sw.Do(func() error {
		l, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(l)
	})
	if err != nil {
		doc.PingError = fmt.Sprintf("taking %s down: %v", peer, err)
		return
	}
	_ = g.Until(5*time.Second, "the bond's other port active", func() (bool, error) {
		doc.ActiveAfter = active()
		return doc.ActiveAfter != doc.ActiveBefore && doc.ActiveAfter != "", nil
	})
	addr, _, _ := strings.Cut(doc.LeaseBefore, "/")
	// The first answer (the switch's bridge learns the node's MAC on the
	// other port from the bond's gratuitous ARP), then five in a row.
	err = g.Until(10*time.Second, "a ping answered", func() (bool, error) {
		return sw.Run("ping-first", 5*time.Second, "ping", "-c", "1", "-W", "1", addr) == nil, nil
	})
	if err == nil {
		err = sw.Run("ping", 15*time.Second, "ping", "-c", "5", "-i", "0.2", "-W", "2", addr)
		if b, _ := os.ReadFile(filepath.Join(guestlab.LogDir, "ping.log")); err == nil && !strings.Contains(string(b), " 0% packet loss") {
			err = fmt.Errorf("pings lost:\n%s", b)
		}
	}
	if err != nil {
		doc.PingError = err.Error()
	}
	// Time for a client that noticed anything to act.
	time.Sleep(2 * time.Second)
	doc.AcksAfter = acks()
	if st2, err := g.State(); err == nil {
		doc.PhaseAfter = string(st2.Phase)
		doc.LeaseAfter, doc.Renewals = lease4(st2, "bond0")
	}
}

// lease4 is the link's DHCPv4 address in st, and its renewals.
func lease4(st *state.State, link string) (string, int) {
	for _, ifc := range st.Interfaces {
		if ifc.Name != link {
			continue
		}
		for _, a := range ifc.Addresses {
			if a.Source == "dhcp4" {
				return a.CIDR, ifc.DHCP4Renewals
			}
		}
	}
	return "", 0
}

// acks counts the switch's DHCPACKs.
func acks() int {
	b, _ := os.ReadFile(filepath.Join(guestlab.LogDir, "dnsmasq.log"))
	return strings.Count(string(b), "DHCPACK")
}

// bondBoot boots the guest of a case: the node's two NICs (or one, for
// veth) and the switch's two, 1 Gb/s full duplex.
func bondBoot(t *testing.T, a bondArgs, node guestlab.Node, cmdline string) (bondDoc, string) {
	t.Helper()
	nics := []guestlab.NIC{{Hub: 1, Speed: 1000}, {Hub: 2, Speed: 1000}, {Hub: 1, Speed: 1000}, {Hub: 2, Speed: 1000}}
	if a.Switch == "veth" {
		nics = nics[:1]
	}
	var doc bondDoc
	res := guestlab.Boot(t, guestlab.Config{Program: bondProgram, Args: a, NICs: nics, Modules: []string{"bonding", "bridge", "veth", "8021q"},
		Binaries: []string{"dnsmasq", "ping"}, Node: node, Cmdline: cmdline}, &doc)
	t.Logf("%+v", doc)
	return doc, res.QEMU.Console
}

// inLab reports whether one of addrs (CIDR) is in 192.0.2.0/24, the
// switch's DHCP range.
func inLab(addrs []string) bool { return inSubnet(addrs, "192.0.2.0/24") }

// requireBond fails unless bond0 is an 802.3ad bond of the node's two
// NICs, both bundled, and the state says so (origin, ports, LACP).
func requireBond(t *testing.T, doc bondDoc, origin string) {
	t.Helper()
	want := slices.Sorted(slices.Values(doc.NICs))
	if doc.Bond != "bond" || doc.Mode != "802.3ad" || !slices.Equal(doc.Ports, want) {
		t.Fatalf("bond0: type %q mode %q ports %q, want an 802.3ad bond of %q", doc.Bond, doc.Mode, doc.Ports, want)
	}
	if len(doc.Bundled) != 2 {
		t.Errorf("bundled ports %q, want both (collecting and distributing)", doc.Bundled)
	}
	i := slices.IndexFunc(doc.Bonds, func(b state.Bond) bool { return b.Name == "bond0" })
	if i < 0 {
		t.Fatalf("the state's bonds %+v: no bond0", doc.Bonds)
	}
	b := doc.Bonds[i]
	var ports []string
	for _, p := range b.Ports {
		ports = append(ports, p.Name)
		if p.MIIStatus != "up" || p.AggregatorID == 0 || !slices.Contains(p.ActorState, "aggregation") {
			t.Errorf("state: port %+v", p)
		}
	}
	slices.Sort(ports)
	if b.Mode != "802.3ad" || b.Origin != origin || !slices.Equal(ports, want) || b.PartnerSystem == "" {
		t.Errorf("state: bond %+v, want 802.3ad (%s) of %q with its partner", b, origin, want)
	}
}

// TestBondZOS: `bond=bond0:eth0,MAC:mode=802.3ad` (the second port named
// by its MAC) at a 0-OS boot (netinit as PID 1, runmode=) with the
// management VLAN 100 (vlan:priv=100; the switch serves DHCP only there):
// netinit makes the bond before DHCP, the switch bundles both ports, and
// the bond is the management bridge zos's port, tagged; zos has the
// switch's lease and the node is ready.
func TestBondZOS(t *testing.T) {
	t.Parallel()
	doc, _ := bondBoot(t, bondArgs{Switch: "lacp", VLAN: 100}, guestlab.NodePID1,
		"runmode=dev vlan:priv=100 ip=dhcp netinit.ygg=off netinit.timeout=30s bond=bond0:eth0,52:54:00:6c:02:01:mode=802.3ad,miimon=100,lacp_rate=fast")
	if !slices.Equal(doc.NICs, []string{"eth0", "eth1"}) {
		t.Fatalf("the node's NICs are %q: the command line names eth0", doc.NICs)
	}
	requireBond(t, doc, "bond=")
	if doc.Master != "zos" || doc.Phase != "ready" || doc.Uplink != "zos" || doc.UplinkNIC != "bond0" || doc.UplinkVLAN != 100 || !inLab(doc.Addrs["zos"]) {
		t.Errorf("bond0's master %q; state %s uplink %s on %s VLAN %d; zos %v: want ready on zos over bond0, VLAN 100, with the switch's lease",
			doc.Master, doc.Phase, doc.Uplink, doc.UplinkNIC, doc.UplinkVLAN, doc.Addrs["zos"])
	}
}

// TestBondAuto: netinit.bond=auto and no bond=: netinit hears the
// switch's LACPDUs on both NICs, from one partner, and forms the same
// bond itself, before DHCP: the lease is bond0's.
func TestBondAuto(t *testing.T) {
	t.Parallel()
	doc, console := bondBoot(t, bondArgs{Switch: "lacp"}, guestlab.NodeUp, "netinit.bond=auto ip=dhcp netinit.ygg=off netinit.timeout=30s")
	requireBond(t, doc, "auto")
	// The switch's bond has the MAC of its first port, NIC 2 (hub 1).
	if !strings.Contains(console, "eth0, eth1: LACP partner 52:54:00:6c:01:02 key 9 → bond0 802.3ad") ||
		!regexp.MustCompile(`bond0: eth0, eth1 collecting and distributing after \d+ms\n`).MatchString(console) {
		t.Errorf("the console does not say what LACP formed")
	}
	if doc.Phase != "ready" || doc.Uplink != "bond0" || !inLab(doc.Addrs["bond0"]) {
		t.Errorf("state %s uplink %s, bond0 %v: want ready on bond0 with the switch's lease", doc.Phase, doc.Uplink, doc.Addrs["bond0"])
	}
}

// TestBondAutoNoLACP: the same node with the switch's LACP off (its
// ports in a plain bridge): it hears no LACPDU, forms no bond, and comes
// up on a plain NIC.
func TestBondAutoNoLACP(t *testing.T) {
	t.Parallel()
	doc, console := bondBoot(t, bondArgs{Switch: "plain"}, guestlab.NodeUp, "netinit.bond=auto ip=dhcp netinit.ygg=off netinit.timeout=30s")
	if !strings.Contains(console, "LACP: no partner on 2+ of eth0, eth1 after") {
		t.Errorf("the console does not say that no LACP partner was heard")
	}
	if doc.Bond != "" || len(doc.Bonds) > 0 {
		t.Errorf("bond0 %q, state bonds %+v: a bond without LACP", doc.Bond, doc.Bonds)
	}
	if doc.Phase != "ready" || !slices.Contains(doc.NICs, doc.Uplink) || !inLab(doc.Addrs[doc.Uplink]) {
		t.Errorf("state %s uplink %s (%v): want ready on one of the NICs %q", doc.Phase, doc.Uplink, doc.Addrs[doc.Uplink], doc.NICs)
	}
}

// TestBondActiveBackup: bond=...:mode=active-backup,miimon=100 over two
// veth ports: the active port's peer goes down, the bond moves to the
// other port, the node keeps answering pings from the switch, and its
// lease is the same one, with no new DHCP exchange.
func TestBondActiveBackup(t *testing.T) {
	t.Parallel()
	doc, _ := bondBoot(t, bondArgs{Switch: "veth", Failover: true}, guestlab.NodeUp,
		"bond=bond0:nb0,nb1:mode=active-backup,miimon=100 netinit.ignore=eth* ip=dhcp netinit.ygg=off netinit.timeout=30s")
	if doc.Bond != "bond" || doc.Mode != "active-backup" || !slices.Equal(doc.Ports, []string{"nb0", "nb1"}) {
		t.Fatalf("bond0: type %q mode %q ports %q, want an active-backup bond of nb0, nb1", doc.Bond, doc.Mode, doc.Ports)
	}
	if doc.Phase != "ready" || doc.Uplink != "bond0" || doc.LeaseBefore == "" || !inLab([]string{doc.LeaseBefore}) {
		t.Fatalf("state %s uplink %s lease %q: want ready on bond0 with the switch's lease", doc.Phase, doc.Uplink, doc.LeaseBefore)
	}
	if doc.ActiveBefore == "" || doc.ActiveAfter == doc.ActiveBefore || doc.ActiveAfter == "" {
		t.Errorf("active port %q, after its peer went down %q: want the other one", doc.ActiveBefore, doc.ActiveAfter)
	}
	if doc.PingError != "" {
		t.Errorf("the node through the other port: %s", doc.PingError)
	}
	if doc.PhaseAfter != "ready" || doc.LeaseAfter != doc.LeaseBefore || doc.Renewals != doc.RenewalsBefore || doc.AcksAfter != doc.AcksBefore {
		t.Errorf("after the failover: %s, lease %s (was %s), renewals %d (%d), DHCPACKs %d (%d): want the same lease, no DHCP",
			doc.PhaseAfter, doc.LeaseAfter, doc.LeaseBefore, doc.Renewals, doc.RenewalsBefore, doc.AcksAfter, doc.AcksBefore)
	}
}

// TestBenchBond is the bonding part of `make bench`: netinit up's time
// to ready (state timings_ms, since it started) in the guest lab, median
// of NETINIT_BENCH_BOND_RUNS (default 5) boots of each kind: over an
// 802.3ad bond netinit.bond=auto forms against the switch's LACP bond;
// on the same two NICs when the switch runs no LACP (the listening
// window is the cost); and with netinit.bond=off. The kinds alternate.
func TestBenchBond(t *testing.T) {
	runs := lab.Bench(t, "NETINIT_BENCH_BOND_RUNS", 5)
	kinds := []struct {
		name, sw, cmdline string
		got               []benchBoot
	}{
		{"ready over an 802.3ad bond (netinit.bond=auto)", "lacp", "netinit.bond=auto", nil},
		{"ready on a plain NIC, 2 NICs, no LACP (bond=auto)", "plain", "netinit.bond=auto", nil},
		{"ready on a plain NIC, 2 NICs (netinit.bond=off)", "plain", "netinit.bond=off", nil},
	}
	var lacp, bundled []benchBoot
	for i := 0; i < runs; i++ {
		for k := range kinds {
			doc, _ := bondBoot(t, bondArgs{Switch: kinds[k].sw}, guestlab.NodeUp, kinds[k].cmdline+" ip=dhcp netinit.ygg=off netinit.timeout=30s")
			ms := func(key string) time.Duration { return time.Duration(doc.Timings[key]) * time.Millisecond }
			if doc.Phase != "ready" || ms("ready") == 0 {
				lab.BenchMiss(t, "%s, run %d: %s", kinds[k].name, i, doc.Phase)
				continue
			}
			kinds[k].got = append(kinds[k].got, benchBoot{ready: ms("ready")})
			if kinds[k].sw == "lacp" {
				lacp = append(lacp, benchBoot{ready: ms("lacp")})
				bundled = append(bundled, benchBoot{ready: ms("bond")})
			}
		}
	}
	fmt.Printf("\n%-54s %9s %5s %6s\n", "bonding (guest lab, TCG; netinit up, since it started)", "MEDIAN", "RUNS", "")
	ready := func(b benchBoot) time.Duration { return b.ready }
	for _, k := range kinds {
		benchRow(k.name, k.got, ready, 0)
		if k.sw == "lacp" {
			benchRow("  of which -> LACP heard on both NICs", lacp, ready, 0)
			benchRow("  of which -> the bond collecting/distributing", bundled, ready, 0)
		}
	}
}
