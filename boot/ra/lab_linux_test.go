package ra

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// childOut is what the in-namespace half of a lab test hands back.
type childOut struct {
	Err    string
	Leases []lease.Report
	Log    []string
}

// runClient is the child half: it prepares c0 (down, kernel.PrepareIPv6, up, as the
// engine does), runs Run and returns every reported lease and log line.
func runClient(t *testing.T, o Options, d time.Duration) {
	t.Helper()
	var (
		mu  sync.Mutex
		out childOut
	)
	o.Link = "c0"
	o.Report = func(l lease.Report) { mu.Lock(); out.Leases = append(out.Leases, l); mu.Unlock() }
	o.Logf = func(f string, a ...any) {
		mu.Lock()
		out.Log = append(out.Log, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	l, err := netlink.LinkByName("c0")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := kernel.PrepareIPv6("c0"); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := Run(ctx, o); err != nil {
		out.Err = err.Error()
	}
	lab.ChildResult(t, out)
}

// routerLab makes a router namespace (r0) and a client namespace (c0).
func routerLab(t *testing.T, tag string) (r, c *lab.NS) {
	t.Helper()
	lab.Require(t, "ip", "radvd", "sysctl")
	lab.GuardResolvConf(t)
	r, c = lab.NewNS(t, tag+"r"), lab.NewNS(t, tag+"c")
	// c0 is up from its creation, before the client's kernel.PrepareIPv6: without
	// these, the kernel sends its own Router Solicitation once c0's
	// link-local address is through DAD, and a sender that answers the
	// first solicitation it sees may send its RAs before the client
	// listens (TestPrefixExpiry failed so in a loaded full run).
	c.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.default.router_solicitations=0")
	lab.Veth(t, r, "r0", c, "c0")
	r.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	return r, c
}

func startRadvd(t *testing.T, r *lab.NS, conf string) *lab.Proc {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := r.Start("radvd", "--nodaemon", "--config="+file, "--pidfile="+filepath.Join(dir, "radvd.pid"), "--logmethod=stderr")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("radvd:\n%s", p.Output())
		}
	})
	return p
}

func linkLocal(t *testing.T, ns *lab.NS, link string) netip.Addr {
	t.Helper()
	h := ns.Handle()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		for _, a := range lab.Addrs(t, h, link, netlink.FAMILY_V6) {
			if ip, _ := netip.AddrFromSlice(a.IP); ip.IsLinkLocalUnicast() {
				return ip
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no link-local address on %s in %s", link, ns.Name)
	return netip.Addr{}
}

func macOf(t *testing.T, ns *lab.NS, link string) net.HardwareAddr {
	t.Helper()
	l, err := ns.Handle().LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// kernelAddrs returns the global IPv6 addresses on link with their flags.
func kernelAddrs(t *testing.T, ns *lab.NS, link string) map[netip.Prefix]netlink.Addr {
	t.Helper()
	m := map[netip.Prefix]netlink.Addr{}
	for _, a := range lab.Addrs(t, ns.Handle(), link, netlink.FAMILY_V6) {
		ip, _ := netip.AddrFromSlice(a.IP)
		if ip.IsGlobalUnicast() {
			ones, _ := a.Mask.Size()
			m[netip.PrefixFrom(ip, ones)] = a
		}
	}
	return m
}

func defaultRoutes(t *testing.T, ns *lab.NS) []netlink.Route {
	t.Helper()
	rs, err := ns.Handle().RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var out []netlink.Route
	for _, r := range rs {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			out = append(out, r)
		}
	}
	return out
}

func slaacFor(t *testing.T, mac net.HardwareAddr, prefix string) netip.Prefix {
	t.Helper()
	id, err := InterfaceID(mac)
	if err != nil {
		t.Fatal(err)
	}
	return netip.PrefixFrom(SLAACAddr(netip.MustParsePrefix(prefix), id), 64)
}

const radvdSLAAC = `interface r0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	AdvLinkMTU 1400;
	AdvDefaultLifetime %d;
	prefix 2001:db8:1::/64 {
		AdvOnLink on;
		AdvAutonomous on;
		AdvValidLifetime 86400;
		AdvPreferredLifetime 14400;
	};
	RDNSS 2001:db8:1::53 { AdvRDNSSLifetime 600; };
	DNSSL lab.example { AdvDNSSLLifetime 600; };
};
`

// TestSLAACRadvd: a real radvd advertises a /64 with RDNSS, DNSSL and MTU;
// the kernel must hold the EUI-64 address (usable at once), the default
// route via the router's link-local address and the IPv6 MTU, and the
// lease must carry the DNS data.
func TestSLAACRadvd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lifetime int
	}{{"default", 1800}, {"lifetime0", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			if lab.Child() {
				runClient(t, Options{Routes: route.New(route.Config{Uplink: func(string, bool) bool { return true }}), Oneshot: true}, 20*time.Second)
				return
			}
			t.Parallel()
			r, c := routerLab(t, "sl")
			startRadvd(t, r, fmt.Sprintf(radvdSLAAC, tc.lifetime))
			routerLL := linkLocal(t, r, "r0")
			var out childOut
			start := time.Now()
			lab.RunChild(t, c, 40*time.Second, nil, &out)
			t.Logf("client took %s; log:\n%s", time.Since(start), strings.Join(out.Log, "\n"))
			if out.Err != "" {
				t.Fatalf("Run: %s", out.Err)
			}
			if len(out.Leases) == 0 {
				t.Fatal("no lease reported")
			}
			l := out.Leases[len(out.Leases)-1]

			want := slaacFor(t, macOf(t, c, "c0"), "2001:db8:1::/64")
			a, ok := kernelAddrs(t, c, "c0")[want]
			if !ok {
				t.Fatalf("kernel has no %s on c0: %v", want, kernelAddrs(t, c, "c0"))
			}
			if a.Flags&unix.IFA_F_DADFAILED != 0 || (a.Flags&unix.IFA_F_TENTATIVE != 0 && a.Flags&unix.IFA_F_OPTIMISTIC == 0) {
				t.Fatalf("%s is not usable: flags %#x", want, a.Flags)
			}
			if a.PreferedLft <= 0 || a.ValidLft < 86000 || a.ValidLft > 86400 {
				t.Fatalf("%s lifetimes valid %d preferred %d", want, a.ValidLft, a.PreferedLft)
			}
			if !l.Usable() || l.Addresses[0].Prefix != want {
				t.Fatalf("lease addresses %v, want %s", l.Addresses, want)
			}

			defs := defaultRoutes(t, c)
			if tc.lifetime == 0 {
				if len(defs) != 0 || l.HasDefault() {
					t.Fatalf("router lifetime 0 but default routes %v / lease %v", defs, l.Routes)
				}
			} else {
				if len(defs) != 1 || defs[0].Gw.String() != routerLL.String() {
					t.Fatalf("default routes %v, want one via %s", defs, routerLL)
				}
				if !l.HasDefault() {
					t.Fatalf("lease has no default route: %v", l.Routes)
				}
				// Installed by netinit (proto ra) with the router lifetime
				// as the kernel's expiry.
				if out, err := c.Exec(context.Background(), "ip", "-6", "route", "show", "default"); err != nil ||
					!strings.Contains(out, "proto ra") || !strings.Contains(out, "expires") {
					t.Fatalf("default route %q (%v), want proto ra with expiry", out, err)
				}
			}
			// The L flag: an on-link route for the prefix.
			if out, err := c.Exec(context.Background(), "ip", "-6", "route", "show", "2001:db8:1::/64"); err != nil ||
				!strings.Contains(out, "dev c0 proto ra") {
				t.Fatalf("on-link route %q (%v)", out, err)
			}
			mtu, err := c.Exec(context.Background(), "cat", "/proc/sys/net/ipv6/conf/c0/mtu")
			if err != nil || strings.TrimSpace(mtu) != "1400" || l.MTU != 1400 {
				t.Fatalf("ipv6 mtu %q (%v), lease %d; want 1400", mtu, err, l.MTU)
			}
			if len(l.DNS) != 1 || l.DNS[0] != netip.MustParseAddr("2001:db8:1::53") {
				t.Fatalf("lease DNS %v", l.DNS)
			}
			if len(l.Search) != 1 || l.Search[0] != "lab.example" {
				t.Fatalf("lease search %v", l.Search)
			}
			if l.Managed || l.Other || l.Source != "slaac" || l.Server != routerLL {
				t.Fatalf("lease %+v", l)
			}
			// DAD completes: the optimistic address becomes a normal one.
			deadline := time.Now().Add(5 * time.Second)
			for kernelAddrs(t, c, "c0")[want].Flags&unix.IFA_F_TENTATIVE != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s still tentative after 5 s", want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// sender is a Go router in the router namespace: it waits for a Router
// Solicitation and then plays a script of crafted RAs.
func runSender(t *testing.T, script string) {
	t.Helper()
	ifi, err := net.InterfaceByName("r0")
	if err != nil {
		t.Fatal(err)
	}
	// The router's link-local address may still be in DAD: retry.
	var (
		conn *ndp.Conn
		src  netip.Addr
	)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if conn, src, err = ndp.Listen(ifi, ndp.LinkLocal); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Println("SENDER-READY")
	for {
		m, _, _, err := conn.ReadFrom()
		if err != nil {
			t.Fatalf("no router solicitation: %v", err)
		}
		if _, ok := m.(*ndp.RouterSolicitation); ok {
			break
		}
	}
	all := netip.MustParseAddr("ff02::1")
	send := func(ra *ndp.RouterAdvertisement, from netip.Addr, hop int) {
		t.Helper()
		cm := &ipv6.ControlMessage{HopLimit: hop, Src: from.AsSlice(), IfIndex: ifi.Index}
		if err := conn.WriteTo(ra, cm, all); err != nil {
			t.Fatalf("send RA from %s: %v", from, err)
		}
	}
	pio := func(p string, valid, pref time.Duration) *ndp.PrefixInformation {
		pp := netip.MustParsePrefix(p)
		return &ndp.PrefixInformation{PrefixLength: uint8(pp.Bits()), OnLink: true, AutonomousAddressConfiguration: true, ValidLifetime: valid, PreferredLifetime: pref, Prefix: pp.Addr()}
	}
	switch script {
	case "hostile":
		// 1. a valid RA.
		send(&ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{pio("2001:db8:1::/64", time.Hour, time.Hour)}}, src, 255)
		// 2. hop limit 64: forwarded from off-link, must be ignored.
		send(&ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{pio("2001:db8:bad1::/64", time.Hour, time.Hour)}}, src, 64)
		// 3. global source: must be ignored.
		send(&ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{pio("2001:db8:bad2::/64", time.Hour, time.Hour)}}, netip.MustParseAddr("2001:db8:ff::1"), 255)
		// 4. a flood: 60 RAs of 40 prefixes each (2400 prefixes), from 8
		//    different link-local routers.
		for i := range 60 {
			var opts []ndp.Option
			for j := range 40 {
				opts = append(opts, pio(fmt.Sprintf("2001:db8:%x:%x::/64", 0x100+i, j), time.Hour, time.Hour))
			}
			from := netip.MustParseAddr(fmt.Sprintf("fe80::100:%x", i%8))
			send(&ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: opts}, from, 255)
		}
	case "flood":
		// Four routers (floodRA, from fe80::f:0 to f:3) fill every cap
		// at once, announcing an interval of 3 s: each refreshes its
		// entries every second for 6 s, then all fall silent. 4 RAs a
		// second stay under the client's log limiter, so the real
		// router's refusals are logged.
		for k := range 6 {
			for i := range 4 {
				from, ra := floodRA(i, 3*time.Second)
				send(ra, from, 255)
				time.Sleep(250 * time.Millisecond)
			}
			if k == 0 {
				fmt.Println("FLOOD-STARTED")
			}
		}
	case "expire":
		// valid 4 s / preferred 2 s; then an RA with valid 0 and preferred
		// 0: the address is deprecated at once, but (RFC 4862 5.5.3 (e))
		// keeps its remaining valid lifetime, then expires.
		// Sent twice, as a router's initial RAs are (RFC 4861 6.2.4).
		for range 2 {
			send(&ndp.RouterAdvertisement{Options: []ndp.Option{pio("2001:db8:2::/64", 4*time.Second, 2*time.Second)}}, src, 255)
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(400 * time.Millisecond)
		send(&ndp.RouterAdvertisement{Options: []ndp.Option{pio("2001:db8:2::/64", 0, 0)}}, src, 255)
	}
	lab.ChildResult(t, "sent")
}

// startSender runs runSender as a child process in ns, in the background.
func startSender(t *testing.T, ns *lab.NS, script string) *lab.Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(t.TempDir(), "sender.json")
	p := ns.Start("env", "NETINIT_LAB_CHILD="+res, "RA_SENDER="+script, exe,
		"-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sender:\n%s", p.Output())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Output(), "SENDER-READY"); {
		if time.Now().After(deadline) {
			t.Fatalf("sender did not start:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// TestHostileRAs: RAs with a wrong hop limit or a global source are
// ignored; a flood of thousands of prefixes from many routers is capped.
func TestHostileRAs(t *testing.T) {
	if s := os.Getenv("RA_SENDER"); s != "" {
		runSender(t, s)
		return
	}
	if lab.Child() {
		runClient(t, Options{Routes: route.New(route.Config{Uplink: func(string, bool) bool { return true }})}, 6*time.Second)
		return
	}
	t.Parallel()
	r, c := routerLab(t, "ho")
	for i := range 8 {
		r.MustExec("ip", "addr", "add", fmt.Sprintf("fe80::100:%x/64", i), "dev", "r0", "nodad")
	}
	r.MustExec("ip", "addr", "add", "2001:db8:ff::1/64", "dev", "r0", "nodad")
	startSender(t, r, "hostile")
	var out childOut
	lab.RunChild(t, c, 30*time.Second, nil, &out)
	t.Logf("client log (%d lines):\n%s", len(out.Log), strings.Join(out.Log, "\n"))
	if out.Err != "" {
		t.Fatalf("Run: %s", out.Err)
	}
	addrs := kernelAddrs(t, c, "c0")
	mac := macOf(t, c, "c0")
	if _, ok := addrs[slaacFor(t, mac, "2001:db8:1::/64")]; !ok {
		t.Fatalf("valid RA's address missing: %v", addrs)
	}
	for _, bad := range []string{"2001:db8:bad1::/64", "2001:db8:bad2::/64"} {
		if _, ok := addrs[slaacFor(t, mac, bad)]; ok {
			t.Fatalf("address from an invalid RA (%s) configured", bad)
		}
	}
	if len(addrs) != maxAddrs {
		t.Fatalf("%d global addresses after the flood, want the cap %d", len(addrs), maxAddrs)
	}
	if d := defaultRoutes(t, c); len(d) != maxRouters {
		t.Fatalf("%d default routes after the flood, want the cap %d: %v", len(d), maxRouters, d)
	}
	l := out.Leases[len(out.Leases)-1]
	if len(l.Addresses) != maxAddrs || len(l.Routers) != maxRouters {
		t.Fatalf("lease has %d addresses, %d routers", len(l.Addresses), len(l.Routers))
	}
	joined := strings.Join(out.Log, "\n")
	if !strings.Contains(joined, "hop limit 64") || !strings.Contains(joined, "not link-local") {
		t.Fatalf("invalid RAs were not logged as ignored")
	}
}

// radvdFresh is a real router that announces its interval (RFC 6275
// section 7.3, AdvIntervalOpt: 4000 ms).
const radvdFresh = `interface br0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	AdvIntervalOpt on;
	AdvDefaultLifetime 1800;
	prefix 2001:db8:1::/64 {
		AdvOnLink on;
		AdvAutonomous on;
	};
};
`

// TestFloodGoesStale (issue 29): four routers flood the link first and
// fill the caps (4 routers, 16 addresses, 16 on-link prefixes) with
// infinite lifetimes; a real radvd that starts next is refused while the
// flood keeps refreshing its entries, and gets in (its default route,
// its address, its on-link prefix) once the flood has not been refreshed
// within its announced interval.
func TestFloodGoesStale(t *testing.T) {
	if s := os.Getenv("RA_SENDER"); s != "" {
		runSender(t, s)
		return
	}
	if lab.Child() {
		runClient(t, Options{Routes: route.New(route.Config{Uplink: func(string, bool) bool { return true }})}, 20*time.Second)
		return
	}
	t.Parallel()
	r, c := routerLab(t, "fl")
	// The flooders sit in their own namespace (their link is named r0
	// too, for runSender), bridged to the client's link: radvd, on the
	// bridge, sends from its own link-local address.
	f := lab.NewNS(t, "flf")
	// A router: member of all-routers (ff02::2), where the client solicits.
	f.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	lab.Veth(t, f, "r0", r, "rf")
	r.MustExec("ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "forward_delay", "0")
	r.MustExec("ip", "link", "set", "r0", "master", "br0")
	r.MustExec("ip", "link", "set", "rf", "master", "br0")
	r.MustExec("ip", "link", "set", "br0", "up")
	for i := range 4 {
		f.MustExec("ip", "addr", "add", fmt.Sprintf("fe80::f:%x/64", i), "dev", "r0", "nodad")
	}
	sender := startSender(t, f, "flood")
	// radvd starts once the flood has filled the table; the client runs
	// meanwhile (RunChild blocks), so it is started from here.
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(conf, []byte(radvdFresh), 0o644); err != nil {
		t.Fatal(err)
	}
	radvd := exec.Command("ip", "netns", "exec", r.Name, "radvd", "--nodaemon", "--config="+conf,
		"--pidfile="+filepath.Join(dir, "radvd.pid"), "--logmethod=stderr")
	var radvdOut lab.Buffer
	radvd.Stdout, radvd.Stderr = &radvdOut, &radvdOut
	var startErr error
	started := make(chan struct{})
	go func() {
		defer close(started)
		if !lab.Eventually(20*time.Second, func() bool { return strings.Contains(sender.Output(), "FLOOD-STARTED") }) {
			startErr = fmt.Errorf("the flood did not start:\n%s", sender.Output())
			return
		}
		startErr = radvd.Start()
	}()
	t.Cleanup(func() {
		<-started
		if radvd.Process != nil {
			_ = radvd.Process.Kill()
			_ = radvd.Wait()
		}
		if t.Failed() {
			t.Logf("radvd:\n%s", radvdOut.String())
		}
	})
	var out childOut
	lab.RunChild(t, c, 40*time.Second, nil, &out)
	<-started
	if startErr != nil {
		t.Fatal(startErr)
	}
	t.Logf("client log (%d lines):\n%s", len(out.Log), strings.Join(out.Log, "\n"))
	if out.Err != "" {
		t.Fatalf("Run: %s", out.Err)
	}
	// radvd's RAs are the ones with its prefix.
	var refused, admitted bool
	var router netip.Addr
	for _, l := range out.Log {
		from, rest, ok := strings.Cut(strings.TrimPrefix(l, "c0: ra from "), ": ")
		if !ok || !strings.Contains(rest, "prefix 2001:db8:1::/64") {
			continue
		}
		if strings.Contains(rest, "router ignored (cap 4)") && !admitted {
			refused = true
		}
		if strings.Contains(rest, "router replaces fe80::f:") {
			admitted, router = true, netip.MustParseAddr(from)
		}
	}
	if !refused || !admitted {
		t.Fatalf("radvd refused while the flood was fresh: %v; admitted once it went stale: %v", refused, admitted)
	}
	if _, ok := kernelAddrs(t, c, "c0")[slaacFor(t, macOf(t, c, "c0"), "2001:db8:1::/64")]; !ok {
		t.Errorf("radvd's SLAAC address is not in the kernel: %v", kernelAddrs(t, c, "c0"))
	}
	var via []string
	for _, d := range defaultRoutes(t, c) {
		via = append(via, d.Gw.String())
	}
	if !slices.Contains(via, router.String()) || len(via) != maxRouters {
		t.Errorf("default routes via %v, want radvd's %s among %d", via, router, maxRouters)
	}
	onlink := false
	rs, _ := c.Handle().RouteList(nil, netlink.FAMILY_V6)
	for _, rt := range rs {
		if rt.Dst != nil && rt.Dst.String() == "2001:db8:1::/64" && rt.Gw == nil {
			onlink = true
		}
	}
	if !onlink {
		t.Errorf("radvd's prefix is not on-link in the kernel")
	}
}

// TestPrefixExpiry (daemon mode): a prefix is deprecated by an RA with
// preferred lifetime 0 (address kept), and the address is removed from
// the kernel when its valid lifetime runs out.
func TestPrefixExpiry(t *testing.T) {
	if s := os.Getenv("RA_SENDER"); s != "" {
		runSender(t, s)
		return
	}
	if lab.Child() {
		runClient(t, Options{}, 7*time.Second)
		return
	}
	t.Parallel()
	r, c := routerLab(t, "ex")
	startSender(t, r, "expire")
	var out childOut
	lab.RunChild(t, c, 30*time.Second, nil, &out)
	t.Logf("client log:\n%s", strings.Join(out.Log, "\n"))
	if out.Err != "" {
		t.Fatalf("Run: %s", out.Err)
	}
	want := slaacFor(t, macOf(t, c, "c0"), "2001:db8:2::/64")
	var seen, deprecated bool
	for _, l := range out.Leases {
		for _, a := range l.Addresses {
			if a.Prefix == want {
				seen = true
				if a.Preferred < 0 {
					deprecated = true
				}
			}
		}
	}
	if !seen || !deprecated {
		t.Fatalf("address %s seen=%v deprecated=%v in leases %+v", want, seen, deprecated, out.Leases)
	}
	if last := out.Leases[len(out.Leases)-1]; len(last.Addresses) != 0 {
		t.Fatalf("last lease still has %v", last.Addresses)
	}
	if _, ok := kernelAddrs(t, c, "c0")[want]; ok {
		t.Fatalf("%s still in the kernel after its valid lifetime", want)
	}
	if !strings.Contains(strings.Join(out.Log, "\n"), "removed") {
		t.Fatalf("no removal logged")
	}
}

// TestNoRouter: with no router on the link, Oneshot gives up after
// MAX_RTR_SOLICITATIONS solicitations RTR_SOLICITATION_INTERVAL apart and
// reports status "none".
func TestNoRouter(t *testing.T) {
	if lab.Child() {
		runClient(t, Options{Oneshot: true}, 20*time.Second)
		return
	}
	t.Parallel()
	_, c := routerLab(t, "nr")
	var out childOut
	start := time.Now()
	lab.RunChild(t, c, 30*time.Second, nil, &out)
	took := time.Since(start)
	t.Logf("took %s, log:\n%s", took, strings.Join(out.Log, "\n"))
	if !strings.Contains(out.Err, ErrNoRouter.Error()) {
		t.Fatalf("Run error %q, want %v", out.Err, ErrNoRouter)
	}
	if n := strings.Count(strings.Join(out.Log, "\n"), "router solicitation "); n != maxRtrSolicitations {
		t.Fatalf("%d solicitations, want %d", n, maxRtrSolicitations)
	}
	if took < 3*rtrSolicitationInterval-time.Second || took > 3*rtrSolicitationInterval+5*time.Second {
		t.Fatalf("gave up after %s, want about %s", took, 3*rtrSolicitationInterval)
	}
	if len(out.Leases) == 0 || out.Leases[len(out.Leases)-1].Status != "none" {
		t.Fatalf("leases %+v, want a last one with status none", out.Leases)
	}
}
