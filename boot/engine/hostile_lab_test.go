package engine_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// TestUpHostileRA (issue 13): a neighbour multicasts lab.HostileRA, a
// crafted RA whose DNSSL would add `nameserver 6.6.6.6` to resolv.conf,
// whose RIOs and PIOs point into Yggdrasil's 200::/7 and the WireGuard
// subnet, and whose RIO 8000::/1 ndp alone reads as ::/1. `netinit up`
// gets ready on what the RA may give, and nothing else is written or
// installed.
func TestUpHostileRA(t *testing.T) {
	if os.Getenv("NETINIT_RA_SENDER") != "" { // the sender, in the server namespace
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := lab.SendRAs(ctx, "s0", lab.HostileRA(), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Parallel()
	p := newPair(t, "hra")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sender := p.srv.Start("env", "NETINIT_RA_SENDER=1", exe, "-test.run=^TestUpHostileRA$", "-test.count=1")
	code, st, out := p.up(t, "--cmdline", "ip=eth0:auto6 netinit.wg.address="+lab.HostileWGSubnet.Addr().Next().String()+"/64",
		"--timeout", "20s", "eth0")
	sender.Stop()
	if code != 0 || st == nil || st.Phase != state.PhaseReady {
		t.Fatalf("exit %d, state %+v; want ready\nsender: %s", code, st, sender.Output())
	}
	rc, err := os.ReadFile(filepath.Join(p.dir, "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "# written by netinit; see /run/netinit/state.json\nnameserver 2001:db8::53\nsearch lab.example\n"; string(rc) != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", rc, want)
	}
	if !slices.Equal(st.DNS, []string{"2001:db8::53"}) || !slices.Equal(st.Search, []string{"lab.example"}) {
		t.Errorf("state dns %q search %q", st.DNS, st.Search)
	}
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `dnssl "x\nnameserver\t6.6.6.6" ignored`) {
		t.Errorf("console: want the hostile name quoted, no raw escape")
	}
	protected := []netip.Prefix{netip.MustParsePrefix("200::/7"), lab.HostileWGSubnet}
	in := func(p netip.Prefix) bool {
		return slices.ContainsFunc(protected, func(q netip.Prefix) bool { return p.Bits() >= q.Bits() && q.Contains(p.Addr()) })
	}
	h := p.cli.Handle()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	routes, err := h.RouteList(eth0, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		d, _ := netip.ParsePrefix(r.Dst.String())
		got = append(got, d.String())
		if in(d) || d.Bits() < 48 && d.Bits() > 0 {
			t.Errorf("kernel route %s on eth0 from the hostile RA", d)
		}
	}
	if !slices.Contains(got, "2001:db8:1:f000::/52") || !slices.Contains(got, "2001:db8:1::/64") {
		t.Errorf("kernel routes on eth0 %v, want 2001:db8:1:f000::/52 (RIO) and 2001:db8:1::/64 (on-link)", got)
	}
	for _, a := range kernelAddrs(t, h, "eth0", netlink.FAMILY_V6) {
		if ap, err := netip.ParsePrefix(a); err == nil && in(netip.PrefixFrom(ap.Addr(), 128)) {
			t.Errorf("kernel address %s on eth0 from the hostile RA", a)
		}
	}
}

// TestUpManagedLater (issue 13): the first RAs set only O, later ones M
// as well. The DHCPv6 client that the first RA started in
// information-only mode is restarted stateful, and the node gets its
// DHCPv6 address from dnsmasq (before: information-only for good).
func TestUpManagedLater(t *testing.T) {
	if os.Getenv("NETINIT_RA_SENDER") != "" {
		ra := &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, OtherConfiguration: true, Options: []ndp.Option{
			&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
				ValidLifetime: time.Hour, PreferredLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:1::")}}}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		if err := lab.SendRAs(ctx, "s0", ra, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		ra.ManagedConfiguration = true
		ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := lab.SendRAs(ctx, "s0", ra, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Parallel()
	p := newPair(t, "mfl")
	lab.Dnsmasq(t, p.srv, "s0", "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,1h")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	netinitBin(t) // built before the RAs' first phase starts
	sender := p.srv.Start("env", "NETINIT_RA_SENDER=1", exe, "-test.run=^TestUpManagedLater$", "-test.count=1")
	// No DHCPv4 server: the node is not ready before the deadline, by
	// which the stateful client has long bound.
	_, st, out := p.up(t, "--timeout", "10s", "eth0")
	sender.Stop()
	if st == nil {
		t.Fatal("no state")
	}
	if got := addrsOf(st, "eth0", lease.SourceDHCP6); len(got) != 1 || !strings.HasPrefix(got[0], "2001:db8:1::1") {
		t.Errorf("dhcp6 addresses %v, want one from dnsmasq's range", got)
	}
	if !strings.Contains(out, "M flag is now true: restarting the client") {
		t.Errorf("the restart was not said on the console")
	}
}
