package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
)

func r4(dst, via string) Route {
	r := Route{Dst: netip.MustParsePrefix(dst)}
	if via != "" {
		r.Via = netip.MustParseAddr(via)
	}
	return r
}

func dsts(rs []Route) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, ", ")
}

// TestRules: what a link may install, on the uplink and off it, from the
// wire and from configuration (issue 29 item 2; the package comment).
func TestRules(t *testing.T) {
	wg4, wg6 := netip.MustParsePrefix("10.99.0.0/16"), netip.MustParsePrefix("fd77::/64")
	for _, tc := range []struct {
		name   string
		src    lease.Source
		want   []Route
		uplink bool
		got    string
	}{
		{"a LAN's default route waits for the uplink", lease.SourceDHCP4,
			[]Route{r4("0.0.0.0/0", "192.0.2.1")}, false, ""},
		{"the uplink's", lease.SourceDHCP4, []Route{r4("0.0.0.0/0", "192.0.2.1")}, true, "0.0.0.0/0 via 192.0.2.1"},
		{"private at any length off the uplink", lease.SourceDHCP4,
			[]Route{r4("10.0.0.0/8", "192.0.2.1"), r4("172.16.0.0/12", "192.0.2.1"), r4("192.168.0.0/16", "192.0.2.1"),
				r4("100.64.0.0/10", "192.0.2.1")}, false,
			"10.0.0.0/8 via 192.0.2.1, 172.16.0.0/12 via 192.0.2.1, 192.168.0.0/16 via 192.0.2.1, 100.64.0.0/10 via 192.0.2.1"},
		{"public: /16 and longer off the uplink, shorter only on it", lease.SourceDHCP4,
			[]Route{r4("8.0.0.0/8", "192.0.2.1"), r4("192.0.0.0/8", "192.0.2.1"), r4("198.51.0.0/16", "192.0.2.1"),
				r4("100.0.0.0/8", "192.0.2.1")}, false, "198.51.0.0/16 via 192.0.2.1"},
		{"the same on the uplink", lease.SourceDHCP4,
			[]Route{r4("8.0.0.0/8", "192.0.2.1"), r4("198.51.0.0/16", "192.0.2.1")}, true,
			"8.0.0.0/8 via 192.0.2.1, 198.51.0.0/16 via 192.0.2.1"},
		{"on-link IPv6 prefixes off the uplink", lease.SourceSLAAC,
			[]Route{r4("2000::/8", ""), r4("2a00::/8", ""), r4("2001:db8:1::/64", ""), r4("2001:db8::/48", ""),
				r4("fd00::/8", ""), r4("::/0", "fe80::1")}, false,
			"2001:db8:1::/64 on-link, 2001:db8::/48 on-link, fd00::/8 on-link"},
		{"an RA's route information only on the uplink", lease.SourceSLAAC,
			[]Route{{Dst: netip.MustParsePrefix("2001:db8:5::/48"), Via: netip.MustParseAddr("fe80::1"), Uplink: true}}, false, ""},
		{"the overlays, even on the uplink", lease.SourceDHCP4,
			[]Route{r4("10.99.1.0/24", "192.0.2.1"), r4("10.99.0.0/16", ""), r4("10.0.0.0/8", "192.0.2.1")}, true,
			"10.0.0.0/8 via 192.0.2.1"},
		{"Yggdrasil's and WireGuard's IPv6", lease.SourceSLAAC,
			[]Route{r4("200:1::/64", ""), r4("300:1::/64", ""), r4("fd77::/64", ""), r4("2001:db8:1::/64", "")}, true,
			"2001:db8:1::/64 on-link"},
		{"a route that covers an overlay is not in it", lease.SourceSLAAC,
			[]Route{r4("::/1", "fe80::1")}, true, "::/1 via fe80::1"},
		{"WireGuard's own routes are configured", lease.SourceWireGuard,
			[]Route{r4("::/0", ""), r4("10.99.0.0/16", ""), r4("0.0.0.0/0", "")}, false,
			"::/0 on-link, 10.99.0.0/16 on-link, 0.0.0.0/0 on-link"},
		{"a router's host route only with a route through it", lease.SourceDHCP4,
			[]Route{r4("203.0.113.1/32", ""), r4("0.0.0.0/0", "203.0.113.1"), r4("198.51.100.7/32", "")}, false,
			"198.51.100.7/32 on-link"},
		{"... and with it on the uplink", lease.SourceDHCP4,
			[]Route{r4("203.0.113.1/32", ""), r4("0.0.0.0/0", "203.0.113.1")}, true,
			"203.0.113.1/32 on-link, 0.0.0.0/0 via 203.0.113.1"},
		{"a static ip='s gateway", lease.SourceStatic,
			[]Route{r4("198.51.100.1/32", ""), r4("0.0.0.0/0", "198.51.100.1")}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := New(Config{Kernel: kerneltest.New(), Protected: []netip.Prefix{wg4, wg6},
				Uplink: func(string, bool) bool { return tc.uplink }})
			got, err := in.Apply("eth0", 2, tc.src, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if dsts(got) != tc.got {
				t.Errorf("installed [%s], want [%s]", dsts(got), tc.got)
			}
		})
	}
}

// TestCapDHCP4: one DHCPv4 lease installs at most 16 routes; the host
// routes to its routers are not counted. Another source has no such cap.
func TestCapDHCP4(t *testing.T) {
	var lines, problems []string
	in := New(Config{Kernel: kerneltest.New(), Uplink: func(string, bool) bool { return true },
		Logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, Problem: func(p string) { problems = append(problems, p) }})
	want := []Route{r4("203.0.113.1/32", "")}
	for i := range 20 {
		want = append(want, r4(fmt.Sprintf("10.%d.0.0/16", i), "203.0.113.1"))
	}
	got, err := in.Apply("eth0", 2, lease.SourceDHCP4, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 17 || got[0].Dst.String() != "203.0.113.1/32" || got[16].Dst.String() != "10.15.0.0/16" {
		t.Errorf("installed [%s], want the host route and the first 16", dsts(got))
	}
	if len(lines) != 4 || !strings.Contains(lines[0], `eth0: dhcp4: route "10.16.0.0/16 via 203.0.113.1" refused: more than 16 routes from one lease`) {
		t.Errorf("said %q", lines)
	}
	if len(problems) != 1 {
		t.Errorf("problems %q, want one", problems)
	}
	var ra []Route
	for i := range 20 {
		ra = append(ra, r4(fmt.Sprintf("2001:db8:%x::/64", i), ""))
	}
	if got, _ := in.Apply("eth0", 2, lease.SourceSLAAC, ra); len(got) != 20 {
		t.Errorf("an RA's routes capped: %d installed", len(got))
	}
}

// TestUplinkChanges: a route held back because its link was not the
// uplink goes into the kernel when the link becomes the uplink (the
// client applies again: the engine has it reapply), and out again when it
// stops being it; a private route stays all along. Only a set with a
// default route makes its link a candidate.
func TestUplinkChanges(t *testing.T) {
	k := kerneltest.New()
	uplink, candidate := false, false
	var asked []bool
	in := New(Config{Kernel: k, Uplink: func(_ string, c bool) bool { asked = append(asked, c); return uplink }})
	want := []Route{r4("0.0.0.0/0", "192.0.2.1"), r4("8.0.0.0/8", "192.0.2.1"), r4("10.0.0.0/8", "192.0.2.1")}
	inKernel := func() string {
		var out []string
		for _, r := range k.Routes(2) {
			out = append(out, r.Dst.String())
		}
		return strings.Join(out, " ")
	}
	for _, step := range []struct {
		uplink bool
		want   string
	}{
		{false, "10.0.0.0/8"},
		{true, "10.0.0.0/8 0.0.0.0/0 8.0.0.0/8"},
		{false, "10.0.0.0/8"},
	} {
		uplink = step.uplink
		if _, err := in.Apply("eth0", 2, lease.SourceDHCP4, want); err != nil {
			t.Fatal(err)
		}
		if got := inKernel(); got != step.want {
			t.Errorf("uplink %v: kernel has %q, want %q", step.uplink, got, step.want)
		}
	}
	candidate = !slices.Contains(asked, false)
	if !candidate {
		t.Errorf("asked %v: a set with a default route makes its link a candidate", asked)
	}
	asked = nil
	if _, err := in.Apply("eth1", 3, lease.SourceSLAAC, []Route{r4("2000::/8", "")}); err != nil || !slices.Equal(asked, []bool{false}) {
		t.Errorf("asked %v (%v), want one question, no candidacy", asked, err)
	}
	if _, err := in.Apply("eth1", 3, lease.SourceSLAAC, []Route{r4("2001:db8::/64", "")}); err != nil || len(asked) != 1 {
		t.Errorf("asked %v (%v): nothing competes, no question", asked, err)
	}
	if err := in.Withdraw("eth0", lease.SourceDHCP4); err != nil || inKernel() != "" {
		t.Errorf("withdrawn: kernel has %q (%v)", inKernel(), err)
	}
}

// TestMove: the management bridge's port's IPv4 routes move onto the
// bridge, on-link ones first, replaced in place; its IPv6 ones are
// forgotten (IPv6 goes off on the port); the bridge's client then finds
// them as its own.
func TestMove(t *testing.T) {
	k := kerneltest.New()
	in := New(Config{Kernel: k, Uplink: func(string, bool) bool { return true }})
	v4 := []Route{r4("0.0.0.0/0", "203.0.113.1"), r4("203.0.113.1/32", "")}
	if _, err := in.Apply("eth0", 2, lease.SourceDHCP4, v4); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Apply("eth0", 2, lease.SourceSLAAC, []Route{r4("2001:db8:1::/64", "")}); err != nil {
		t.Fatal(err)
	}
	if err := in.Move("eth0", "zos", 7); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range k.Routes(7) {
		got = append(got, r.Dst.String())
	}
	if strings.Join(got, " ") != "203.0.113.1/32 0.0.0.0/0" || len(k.Routes(2)) != 1 {
		t.Errorf("bridge routes %v, port's %v", got, k.Routes(2))
	}
	ops := len(k.Ops())
	if _, err := in.Apply("zos", 7, lease.SourceDHCP4, v4); err != nil {
		t.Fatal(err)
	}
	for _, op := range k.Ops()[ops:] {
		if !strings.HasPrefix(op, "route replace 7 ") {
			t.Errorf("the bridge's client: %s, want its routes replaced in place", op)
		}
	}
	if _, err := in.Apply("eth0", 2, lease.SourceDHCP4, nil); err != nil || len(k.Routes(7)) != 2 {
		t.Errorf("the port's stale set touched the bridge's routes: %v (%v)", k.Routes(7), err)
	}
}

// TestSaidOnce: a refusal is logged once however often it is applied
// again, quoted, with the link and the source; a problem is raised once
// per link, source and rule.
func TestSaidOnce(t *testing.T) {
	var lines, problems []string
	in := New(Config{Kernel: kerneltest.New(),
		Logf:    func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) },
		Problem: func(p string) { problems = append(problems, p) }})
	want := []Route{r4("0.0.0.0/0", "192.0.2.1"), r4("8.0.0.0/8", "192.0.2.1"), r4("9.0.0.0/8", "192.0.2.1")}
	for range 3 {
		if _, err := in.Apply("eth1", 3, lease.SourceDHCP4, want); err != nil {
			t.Fatal(err)
		}
	}
	if len(lines) != 3 || lines[0] != `eth1: dhcp4: route "0.0.0.0/0 via 192.0.2.1" held back until eth1 is the uplink` ||
		lines[1] != `eth1: dhcp4: route "8.0.0.0/8 via 192.0.2.1" refused: public address space shorter than /16, and eth1 is not the uplink` {
		t.Errorf("said %q", lines)
	}
	if len(problems) != 1 || !strings.HasPrefix(problems[0], `eth1: dhcp4: route "8.0.0.0/8 via 192.0.2.1" refused`) {
		t.Errorf("problems %q, want the first public refusal", problems)
	}
	// A hostile server that changes its routes every time is bounded.
	for i := range 2 * maxSaid {
		if _, err := in.Apply("eth1", 3, lease.SourceDHCP4, []Route{r4(fmt.Sprintf("%d.%d.0.0/12", 11+i/16, i%16*16), "192.0.2.1")}); err != nil {
			t.Fatal(err)
		}
	}
	if len(in.said) > maxSaid+1 || !strings.Contains(lines[len(lines)-1], "not logged") {
		t.Errorf("%d refusals remembered, last line %q", len(in.said), lines[len(lines)-1])
	}
}

var _ Kernel = kernel.Netlink{}

// TestRefusalsCounted: a hostile lease with twenty public /8 routes from a
// link that is not the uplink puts three of them on the console and counts
// the rest in one line; the same lease again says nothing new, and none of
// them is installed.
func TestRefusalsCounted(t *testing.T) {
	var lines []string
	k := kerneltest.New()
	in := New(Config{Kernel: k, Logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }})
	var want []Route
	for i := range 20 {
		want = append(want, r4(fmt.Sprintf("%d.0.0.0/8", 20+i), "192.0.2.1"))
	}
	for range 2 {
		got, err := in.Apply("eth1", 3, lease.SourceDHCP4, want)
		if err != nil || len(got) != 0 {
			t.Fatalf("installed [%s] (%v), want none", dsts(got), err)
		}
	}
	if len(lines) != 4 || !strings.Contains(lines[2], `route "22.0.0.0/8 via 192.0.2.1" refused`) ||
		lines[3] != "eth1: dhcp4: 17 more routes refused for the same reason (public)" {
		t.Errorf("said %q", lines)
	}
}
