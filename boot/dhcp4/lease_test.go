package dhcp4

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
)

// goodACK is a sane ACK; tests mutate it.
func goodACK(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 57)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithLeaseTime(3600),
		dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1)),
		dhcpv4.WithDNS(net.IPv4(192, 0, 2, 53)),
	}
	m, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func raw(code dhcpv4.OptionCode, v ...byte) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(code, v)
}

func TestParseLeaseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  dhcpv4.Modifier
		want string // substring of the refusal
	}{
		{"zero address", dhcpv4.WithYourIP(net.IPv4zero), "is unspecified"},
		{"limited broadcast", dhcpv4.WithYourIP(net.IPv4bcast), "limited broadcast"},
		{"multicast address", dhcpv4.WithYourIP(net.IPv4(224, 0, 0, 5)), "multicast"},
		{"loopback address", dhcpv4.WithYourIP(net.IPv4(127, 0, 0, 1)), "loopback"},
		{"class E", dhcpv4.WithYourIP(net.IPv4(240, 1, 2, 3)), "240.0.0.0/4"},
		{"this network", dhcpv4.WithYourIP(net.IPv4(0, 1, 2, 3)), "0.0.0.0/8"},
		{"link-local", dhcpv4.WithYourIP(net.IPv4(169, 254, 1, 2)), "link-local"},
		{"subnet broadcast", dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 255)), "broadcast address of 192.0.2.0/24"},
		{"network address", dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 0)), "network address"},
		{"mask /0", dhcpv4.WithNetmask(net.CIDRMask(0, 32)), "/0"},
		{"mask not contiguous", raw(dhcpv4.OptionSubnetMask, 255, 0, 255, 0), "not contiguous"},
		{"mask 3 bytes", raw(dhcpv4.OptionSubnetMask, 255, 255, 255), "3 bytes"},
		{"no server id", dhcpv4.WithoutOption(dhcpv4.OptionServerIdentifier), "no server identifier"},
		{"server id multicast", dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(239, 1, 1, 1))), "multicast"},
		{"server id 7 bytes", raw(dhcpv4.OptionServerIdentifier, 1, 2, 3, 4, 5, 6, 7), "7 bytes"},
		{"no lease time", dhcpv4.WithoutOption(dhcpv4.OptionIPAddressLeaseTime), "no lease time"},
		{"lease time 0", dhcpv4.WithLeaseTime(0), "lease time is 0"},
		{"lease time 2 bytes", raw(dhcpv4.OptionIPAddressLeaseTime, 1, 2), "2 bytes"},
		{"router multicast", dhcpv4.WithRouter(net.IPv4(224, 0, 0, 1)), "router 224.0.0.1 is multicast"},
		{"second router broadcast", dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1), net.IPv4(192, 0, 2, 255)), "subnet broadcast"},
		{"router is us", dhcpv4.WithRouter(net.IPv4(192, 0, 2, 57)), "our own address"},
		{"router option 5 bytes", raw(dhcpv4.OptionRouter, 192, 0, 2, 1, 9), "not a multiple of 4"},
		{"router option empty", raw(dhcpv4.OptionRouter), "not a multiple of 4"},
		{"121 too short", raw(dhcpv4.OptionClasslessStaticRoute, 0, 192, 0, 2), "at least 5"},
		{"121 width 33", raw(dhcpv4.OptionClasslessStaticRoute, 33, 1, 2, 3, 4, 5, 192, 0, 2, 1), "width 33"},
		{"121 truncated", raw(dhcpv4.OptionClasslessStaticRoute, 0, 192, 0, 2, 1, 24, 198, 51), "truncated"},
		{"121 multicast router", raw(dhcpv4.OptionClasslessStaticRoute, 0, 224, 0, 0, 9), "multicast"},
		{"121 route to loopback", raw(dhcpv4.OptionClasslessStaticRoute, 8, 127, 192, 0, 2, 1), "loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseLease(goodACK(t, tc.mod), t.Logf)
			if err == nil {
				t.Fatalf("accepted: %+v", b)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestParseLeaseDrops(t *testing.T) {
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	m := goodACK(t,
		dhcpv4.WithDNS(net.IPv4(192, 0, 2, 53), net.IPv4(224, 0, 0, 1), net.IPv4(0, 0, 0, 0), net.IPv4(198, 51, 100, 53)),
		raw(dhcpv4.OptionNTPServers, 1, 2, 3),      // 3 bytes: dropped
		raw(dhcpv4.OptionInterfaceMTU, 0x01, 0xf4), // 500: below 576
		dhcpv4.WithOption(dhcpv4.OptHostName("bad_host!")),
		dhcpv4.WithDomainSearchList("example.com", "-bad-.example", "Lab.Example.", "example.com"),
	)
	b, err := parseLease(m, logf)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("198.51.100.53")}; !reflect.DeepEqual(b.DNS, want) {
		t.Errorf("DNS = %v, want %v", b.DNS, want)
	}
	if b.NTP != nil || b.MTU != 0 || b.Hostname != "" {
		t.Errorf("garbage kept: NTP %v MTU %d hostname %q", b.NTP, b.MTU, b.Hostname)
	}
	if want := []string{"example.com", "lab.example"}; !reflect.DeepEqual(b.Search, want) {
		t.Errorf("Search = %q, want %q", b.Search, want)
	}
	all := strings.Join(logs, "\n")
	for _, w := range []string{"224.0.0.1 is multicast", "0.0.0.0 is unspecified", "NTP server (option 42) has 3 bytes",
		"MTU 500", `hostname "bad_host!"`, `search domain "-bad-.example"`} {
		if !strings.Contains(all, w) {
			t.Errorf("no log line naming %q in:\n%s", w, all)
		}
	}
}

func TestParseLeaseGood(t *testing.T) {
	m := goodACK(t,
		raw(dhcpv4.OptionInterfaceMTU, 0x05, 0x78), // 1400
		dhcpv4.WithOption(dhcpv4.OptHostName("node-1.lab.example")),
		dhcpv4.WithOption(dhcpv4.OptNTPServers(net.IPv4(192, 0, 2, 123))),
		dhcpv4.WithOption(dhcpv4.OptDomainName("lab.example")),
		raw(dhcpv4.OptionRenewTimeValue, 0, 0, 0, 100),
		raw(dhcpv4.OptionRebindingTimeValue, 0, 0, 0, 200),
	)
	b, err := parseLease(m, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	want := &binding{
		Addr:      netip.MustParsePrefix("192.0.2.57/24"),
		Broadcast: netip.MustParseAddr("192.0.2.255"),
		Server:    netip.MustParseAddr("192.0.2.1"),
		Routers:   []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNS:       []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		NTP:       []netip.Addr{netip.MustParseAddr("192.0.2.123")},
		Search:    []string{"lab.example"}, // option 15 fallback
		Hostname:  "node-1.lab.example",
		MTU:       1400,
		Lease:     time.Hour, T1: 100 * time.Second, T2: 200 * time.Second,
	}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("got  %+v\nwant %+v", b, want)
	}
}

func TestParseTimes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		lease, t1, t2 []byte
		want          [3]time.Duration
	}{
		{"defaults", []byte{0, 0, 0, 80}, nil, nil, [3]time.Duration{80 * time.Second, 40 * time.Second, 70 * time.Second}},
		{"given", []byte{0, 0, 0, 80}, []byte{0, 0, 0, 5}, []byte{0, 0, 0, 8}, [3]time.Duration{80 * time.Second, 5 * time.Second, 8 * time.Second}},
		{"t1 after t2", []byte{0, 0, 0, 80}, []byte{0, 0, 0, 50}, []byte{0, 0, 0, 8}, [3]time.Duration{80 * time.Second, 40 * time.Second, 70 * time.Second}},
		{"t2 after lease", []byte{0, 0, 0, 80}, nil, []byte{0, 0, 0, 90}, [3]time.Duration{80 * time.Second, 40 * time.Second, 70 * time.Second}},
		{"t1 garbage", []byte{0, 0, 0, 80}, []byte{1}, nil, [3]time.Duration{80 * time.Second, 40 * time.Second, 70 * time.Second}},
		{"infinite", []byte{0xff, 0xff, 0xff, 0xff}, []byte{0, 0, 0, 5}, nil, [3]time.Duration{}},
		{"one second", []byte{0, 0, 0, 1}, nil, nil, [3]time.Duration{time.Second, 500 * time.Millisecond, 875 * time.Millisecond}},
		// 0xfffffffe s (136 years): lease*7/8 overflowed, T2 came out negative.
		{"decades", []byte{0xff, 0xff, 0xff, 0xfe}, nil, nil, [3]time.Duration{0xfffffffe * time.Second, 0x7fffffff * time.Second, 0xfffffffe * time.Second / 8 * 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mods := []dhcpv4.Modifier{raw(dhcpv4.OptionIPAddressLeaseTime, tc.lease...)}
			if tc.t1 != nil {
				mods = append(mods, raw(dhcpv4.OptionRenewTimeValue, tc.t1...))
			}
			if tc.t2 != nil {
				mods = append(mods, raw(dhcpv4.OptionRebindingTimeValue, tc.t2...))
			}
			b, err := parseLease(goodACK(t, mods...), t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]time.Duration{b.Lease, b.T1, b.T2}; got != tc.want {
				t.Fatalf("lease/T1/T2 = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	def := netip.MustParsePrefix("0.0.0.0/0")
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		mods []dhcpv4.Modifier
		want []route.Route
	}{
		{"router option", nil, []route.Route{{Dst: def, Via: a("192.0.2.1")}}},
		{"first of several routers",
			[]dhcpv4.Modifier{dhcpv4.WithRouter(net.IPv4(192, 0, 2, 2), net.IPv4(192, 0, 2, 1))},
			[]route.Route{{Dst: def, Via: a("192.0.2.2")}}},
		{"router outside the subnet gets a host route",
			[]dhcpv4.Modifier{dhcpv4.WithRouter(net.IPv4(203, 0, 113, 1))},
			[]route.Route{{Dst: p("203.0.113.1/32")}, {Dst: def, Via: a("203.0.113.1")}}},
		{"/32 lease (cloud style)",
			[]dhcpv4.Modifier{dhcpv4.WithNetmask(net.CIDRMask(32, 32)), dhcpv4.WithRouter(net.IPv4(192, 0, 2, 1))},
			[]route.Route{{Dst: p("192.0.2.1/32")}, {Dst: def, Via: a("192.0.2.1")}}},
		{"121 overrides 3 (RFC 3442)",
			[]dhcpv4.Modifier{raw(dhcpv4.OptionClasslessStaticRoute,
				24, 198, 51, 100, 192, 0, 2, 254, // 198.51.100.0/24 via 192.0.2.254
				0, 192, 0, 2, 9, // default via 192.0.2.9
				32, 203, 0, 113, 7, 0, 0, 0, 0, // 203.0.113.7/32 on-link
				25, 192, 0, 2, 128, 203, 0, 113, 1)}, // via a router outside the subnet
			[]route.Route{
				{Dst: p("198.51.100.0/24"), Via: a("192.0.2.254")},
				{Dst: def, Via: a("192.0.2.9")},
				{Dst: p("203.0.113.7/32")},
				{Dst: p("203.0.113.1/32")},
				{Dst: p("192.0.2.128/25"), Via: a("203.0.113.1")},
			}},
		{"121 host bits masked",
			[]dhcpv4.Modifier{raw(dhcpv4.OptionClasslessStaticRoute, 16, 198, 51, 192, 0, 2, 254)},
			[]route.Route{{Dst: p("198.51.0.0/16"), Via: a("192.0.2.254")}}},
		{"no routers", []dhcpv4.Modifier{dhcpv4.WithoutOption(dhcpv4.OptionRouter)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseLease(goodACK(t, tc.mods...), t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				tc.want[i].Src = b.Addr.Addr()
			}
			if got := plan(b); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v\nwant   %v", got, tc.want)
			}
		})
	}
}

func TestRetransmit(t *testing.T) {
	mid := func() float64 { return 0.5 } // no jitter
	var got []time.Duration
	for n := range 6 {
		got = append(got, retransmit(n, 2*time.Second, 8*time.Second, mid))
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("schedule %v, want %v", got, want)
	}
	// Jitter is ±1 s (RFC 2131 section 4.1), and at most base/2.
	lo := retransmit(3, 2*time.Second, 8*time.Second, func() float64 { return 0 })
	hi := retransmit(3, 2*time.Second, 8*time.Second, func() float64 { return 0.999999 })
	if lo != 7*time.Second || hi < 8999*time.Millisecond || hi > 9*time.Second {
		t.Fatalf("jitter range [%v, %v], want [7s, 9s)", lo, hi)
	}
	if d := retransmit(0, 200*time.Millisecond, time.Second, func() float64 { return 0 }); d != 100*time.Millisecond {
		t.Fatalf("short base jitter: %v, want 100ms", d)
	}
	// Random jitter stays in range.
	for range 1000 {
		if d := retransmit(10, 2*time.Second, 8*time.Second, nil); d < 7*time.Second || d >= 9*time.Second {
			t.Fatalf("retransmit out of range: %v", d)
		}
	}
}

func TestRenewWait(t *testing.T) {
	for _, tc := range []struct{ left, min, want time.Duration }{
		{1000 * time.Second, 60 * time.Second, 500 * time.Second},
		{100 * time.Second, 60 * time.Second, 60 * time.Second},
		{30 * time.Second, 60 * time.Second, 30 * time.Second},
	} {
		if got := renewWait(tc.left, tc.min); got != tc.want {
			t.Errorf("renewWait(%v, %v) = %v, want %v", tc.left, tc.min, got, tc.want)
		}
	}
}

// TestV6OnlyWait: option 108 (RFC 8925) is read only when it is 4 bytes,
// and never below MIN_V6ONLY_WAIT.
func TestV6OnlyWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		mods []dhcpv4.Modifier
		want time.Duration
		ok   bool
	}{
		{"absent", nil, 0, false},
		{"1800 s", []dhcpv4.Modifier{raw(dhcpv4.OptionIPv6OnlyPreferred, 0, 0, 0x07, 0x08)}, 1800 * time.Second, true},
		{"below the minimum", []dhcpv4.Modifier{raw(dhcpv4.OptionIPv6OnlyPreferred, 0, 0, 0, 10)}, 300 * time.Second, true},
		{"zero", []dhcpv4.Modifier{raw(dhcpv4.OptionIPv6OnlyPreferred, 0, 0, 0, 0)}, 300 * time.Second, true},
		{"all ones", []dhcpv4.Modifier{raw(dhcpv4.OptionIPv6OnlyPreferred, 0xff, 0xff, 0xff, 0xff)}, 0xffffffff * time.Second, true},
		{"2 bytes", []dhcpv4.Modifier{raw(dhcpv4.OptionIPv6OnlyPreferred, 0x07, 0x08)}, 0, false},
		{"5 bytes", []dhcpv4.Modifier{raw(dhcpv4.OptionIPv6OnlyPreferred, 0, 0, 0x07, 0x08, 0)}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged []string
			got, ok := v6OnlyWait(goodACK(t, tc.mods...), func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
			if got != tc.want || ok != tc.ok {
				t.Errorf("v6OnlyWait = %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
			if !ok && tc.mods != nil && len(logged) != 1 {
				t.Errorf("a malformed option 108 was not logged: %q", logged)
			}
		})
	}
}

// TestPlanWideRoutes: option 121's 0.0.0.0/1 + 128.0.0.0/1 (a default
// route in two halves) make the link a candidate for the uplink, and go
// into the kernel only on the uplink (boot/route); 10.0.0.0/8 always.
func TestPlanWideRoutes(t *testing.T) {
	b := &binding{Addr: netip.MustParsePrefix("192.0.2.57/24"), Static: []route.Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/1"), Via: netip.MustParseAddr("192.0.2.1")},
		{Dst: netip.MustParsePrefix("128.0.0.0/1"), Via: netip.MustParseAddr("192.0.2.1")},
		{Dst: netip.MustParsePrefix("10.0.0.0/8"), Via: netip.MustParseAddr("192.0.2.1")},
	}}
	for _, tc := range []struct {
		uplink bool
		want   []string
	}{
		{true, []string{"0.0.0.0/1 via 192.0.2.1", "128.0.0.0/1 via 192.0.2.1", "10.0.0.0/8 via 192.0.2.1"}},
		{false, []string{"10.0.0.0/8 via 192.0.2.1"}},
	} {
		candidate := false
		in := route.New(route.Config{Kernel: kerneltest.New(), Uplink: func(_ string, c bool) bool {
			candidate = c
			return tc.uplink
		}})
		rs, err := in.Apply("eth0", 2, lease.SourceDHCP4, plan(b))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.String())
		}
		if !reflect.DeepEqual(got, tc.want) || !candidate {
			t.Errorf("uplink %v: installed %q (candidate %v), want %q (a candidate)", tc.uplink, got, candidate, tc.want)
		}
	}
}
