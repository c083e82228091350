package dhcp6

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/ra"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type childOut struct {
	Err      string
	RA       lease.Report
	Leases   []lease.Report
	Log      []string
	TookMS   int64
	Deadline bool
}

// prepareLink readies the client's link as the engine does: down, IPv6
// prepared (kernel.PrepareIPv6: optimistic DAD, no kernel RA processing), up.
func prepareLink(t *testing.T, name string) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := kernel.PrepareIPv6(name); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// runClient is the in-namespace half, as the engine does it: kernel.PrepareIPv6, link
// up, router discovery, then DHCPv6 as the RA's M/O flags say.
func runClient(t *testing.T) {
	var (
		mu  sync.Mutex
		out childOut
	)
	logf := func(f string, a ...any) { mu.Lock(); out.Log = append(out.Log, fmt.Sprintf(f, a...)); mu.Unlock() }
	prepareLink(t, "c0")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	err := ra.Run(ctx, ra.Options{Link: "c0", Oneshot: true, Logf: logf, Report: func(l lease.Report) { out.RA = l }})
	if err != nil {
		out.Err = err.Error()
		lab.ChildResult(t, out)
		return
	}
	start := time.Now()
	err = Run(ctx, Options{Link: "c0", Managed: out.RA.Managed, Other: out.RA.Other, Oneshot: true, Logf: logf,
		Report: func(l lease.Report) { mu.Lock(); out.Leases = append(out.Leases, l); mu.Unlock() }})
	out.TookMS = time.Since(start).Milliseconds()
	if err != nil {
		out.Err = err.Error()
	}
	lab.ChildResult(t, out)
}

const radvdConf = `interface r0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	AdvManagedFlag %s;
	AdvOtherConfigFlag on;
	prefix 2001:db8:1::/64 {
		AdvOnLink on;
		AdvAutonomous %s;
	};
};
`

// TestDHCPv6 runs radvd (M or O flag) and dnsmasq's DHCPv6 server in a
// router namespace; the client must get a /128 from the range (M) with a
// DUID-LL, or DNS and search from an Information-request (O).
func TestDHCPv6(t *testing.T) {
	for _, managed := range []bool{true, false} {
		name := map[bool]string{true: "managed", false: "other"}[managed]
		t.Run(name, func(t *testing.T) {
			if lab.Child() {
				runClient(t)
				return
			}
			t.Parallel()
			lab.Require(t, "ip", "radvd", "dnsmasq", "sysctl")
			lab.GuardResolvConf(t)
			r, c := lab.NewNS(t, "d6r"), lab.NewNS(t, "d6c")
			lab.Veth(t, r, "r0", c, "c0")
			r.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
			r.MustExec("ip", "addr", "add", "2001:db8:1::1/64", "dev", "r0", "nodad")
			dir := t.TempDir()
			conf := filepath.Join(dir, "radvd.conf")
			m, a := "off", "on"
			if managed {
				m, a = "on", "off"
			}
			if err := os.WriteFile(conf, []byte(fmt.Sprintf(radvdConf, m, a)), 0o644); err != nil {
				t.Fatal(err)
			}
			radvd := r.Start("radvd", "--nodaemon", "--config="+conf, "--pidfile="+filepath.Join(dir, "radvd.pid"), "--logmethod=stderr")
			rng := "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,2m"
			if !managed {
				rng = "--dhcp-range=2001:db8:1::,static,64"
			}
			leases := filepath.Join(dir, "dnsmasq.leases")
			dnsmasq := r.Start("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=r0", "--bind-interfaces",
				"--dhcp-leasefile="+leases, "--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--log-dhcp", "--log-facility=-", rng,
				"--dhcp-option=option6:dns-server,[2001:db8:1::53]", "--dhcp-option=option6:domain-search,lab.example")
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("radvd:\n%s\ndnsmasq:\n%s", radvd.Output(), dnsmasq.Output())
				}
			})

			var out childOut
			lab.RunChild(t, c, 45*time.Second, nil, &out)
			t.Logf("client log:\n%s", strings.Join(out.Log, "\n"))
			if out.Err != "" {
				t.Fatalf("client: %s", out.Err)
			}
			if out.RA.Managed != managed || !out.RA.Other {
				t.Fatalf("RA flags M=%v O=%v", out.RA.Managed, out.RA.Other)
			}
			if len(out.Leases) == 0 {
				t.Fatal("no dhcp6 lease")
			}
			l := out.Leases[len(out.Leases)-1]
			t.Logf("dhcp6 took %d ms: %+v", out.TookMS, l)
			if l.Source != "dhcp6" || len(l.DNS) != 1 || l.DNS[0] != netip.MustParseAddr("2001:db8:1::53") ||
				len(l.Search) != 1 || l.Search[0] != "lab.example" {
				t.Fatalf("lease %+v", l)
			}
			if !l.Server.IsLinkLocalUnicast() {
				t.Fatalf("server %s is not the router's link-local address", l.Server)
			}
			addrs := lab.Addrs(t, c.Handle(), "c0", netlink.FAMILY_V6)
			var got []netlink.Addr
			for _, a := range addrs {
				// The DHCPv6 address is the only /128 (SLAAC makes /64s).
				if ones, _ := a.Mask.Size(); a.IP.IsGlobalUnicast() && ones == 128 {
					got = append(got, a)
				}
			}
			if !managed {
				if len(got) != 0 || len(l.Addresses) != 0 {
					t.Fatalf("information-only got addresses %v / %v", got, l.Addresses)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("kernel addresses %v, want one /128 from the range", got)
			}
			ip, _ := netip.AddrFromSlice(got[0].IP)
			lo, hi := netip.MustParseAddr("2001:db8:1::100"), netip.MustParseAddr("2001:db8:1::1ff")
			if ip.Compare(lo) < 0 || ip.Compare(hi) > 0 {
				t.Fatalf("address %s not in %s-%s", ip, lo, hi)
			}
			if got[0].Flags&unix.IFA_F_DADFAILED != 0 || (got[0].Flags&unix.IFA_F_TENTATIVE != 0 && got[0].Flags&unix.IFA_F_OPTIMISTIC == 0) {
				t.Fatalf("address not usable: flags %#x", got[0].Flags)
			}
			if got[0].ValidLft <= 0 || got[0].ValidLft > 120 {
				t.Fatalf("valid lifetime %d, want the 2 min lease", got[0].ValidLft)
			}
			if len(l.Addresses) != 1 || l.Addresses[0].Prefix != netip.PrefixFrom(ip, 128) || l.Status != "bound" {
				t.Fatalf("lease %+v", l)
			}
			// dnsmasq's lease file names the client by its DUID: DUID-LL
			// (type 3, hardware type 1) of the client's MAC.
			link, err := c.Handle().LinkByName("c0")
			if err != nil {
				t.Fatal(err)
			}
			mac := link.Attrs().HardwareAddr
			want := "00:03:00:01:" + mac.String()
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				b, _ := os.ReadFile(leases)
				if strings.Contains(string(b), ip.String()) && strings.Contains(string(b), want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("dnsmasq leases lack %s with DUID %s:\n%s", ip, want, b)
				}
			}
		})
	}
}

// TestDHCPv6Overlay (issue 29): a real DHCPv6 server (dnsmasq) behind an
// M-flag RA (radvd) hands out addresses inside Yggdrasil's 300::/8 and
// inside a WireGuard tunnel subnet: the client refuses them, says why, and
// none is in the kernel (its local route would blackhole that overlay
// destination).
func TestDHCPv6Overlay(t *testing.T) {
	for _, c := range []struct {
		name, prefix string
		protected    []netip.Prefix
	}{
		{"yggdrasil", "300:1:2:3::", nil},
		{"wireguard", "2001:db8:ff::", []netip.Prefix{lab.HostileWGSubnet}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if lab.Child() {
				var mu sync.Mutex
				var out childOut
				logf := func(f string, a ...any) { mu.Lock(); out.Log = append(out.Log, fmt.Sprintf(f, a...)); mu.Unlock() }
				prepareLink(t, "c0")
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				if err := ra.Run(ctx, ra.Options{Link: "c0", Oneshot: true, Logf: logf, Report: func(l lease.Report) { out.RA = l }}); err != nil {
					out.Err = err.Error()
				}
				// Long enough for several Solicits (IRT 1 s) to be answered.
				ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_ = Run(ctx, Options{Link: "c0", Managed: true, Oneshot: true, Logf: logf, Protected: c.protected,
					Report: func(l lease.Report) { mu.Lock(); out.Leases = append(out.Leases, l); mu.Unlock() }})
				mu.Lock()
				defer mu.Unlock()
				lab.ChildResult(t, out)
				return
			}
			t.Parallel()
			lab.Require(t, "ip", "radvd", "dnsmasq", "sysctl")
			lab.GuardResolvConf(t)
			r, cl := lab.NewNS(t, "d6or"), lab.NewNS(t, "d6oc")
			lab.Veth(t, r, "r0", cl, "c0")
			r.MustExec("ip", "addr", "add", "2001:db8:1::1/64", "dev", "r0", "nodad")
			// dnsmasq serves a range only on a prefix of its interface.
			r.MustExec("ip", "addr", "add", c.prefix+"1/64", "dev", "r0", "nodad")
			radvd := lab.Radvd(t, r, fmt.Sprintf(radvdConf, "on", "off"))
			dnsmasq := lab.Dnsmasq(t, r, "r0", "--log-facility=-",
				"--dhcp-range="+c.prefix+"100,"+c.prefix+"1ff,64,2m")
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("radvd:\n%s\ndnsmasq:\n%s", radvd.Output(), dnsmasq.Output())
				}
			})
			var out childOut
			lab.RunChild(t, cl, 45*time.Second, nil, &out)
			log := strings.Join(out.Log, "\n")
			t.Logf("client log:\n%s", log)
			if out.Err != "" || !out.RA.Managed {
				t.Fatalf("router discovery: %s, M=%v", out.Err, out.RA.Managed)
			}
			overlay := netip.MustParsePrefix(c.prefix + "/64")
			for _, a := range lab.Addrs(t, cl.Handle(), "c0", netlink.FAMILY_V6) {
				if ip, _ := netip.AddrFromSlice(a.IP); overlay.Contains(ip) {
					t.Errorf("the kernel holds %s from the DHCPv6 server, inside the overlay", ip)
				}
			}
			for _, l := range out.Leases {
				if len(l.Addresses) > 0 {
					t.Errorf("a lease with addresses was reported: %+v", l)
				}
			}
			if !strings.Contains(log, "advertise from") || !strings.Contains(log, c.prefix) || !strings.Contains(log, "inside the overlay's") {
				t.Errorf("the client did not say it refused the server's %s address", c.prefix)
			}
		})
	}
}
