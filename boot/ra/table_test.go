package ra

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/internal/lab"
)

func TestInterfaceID(t *testing.T) {
	for _, tc := range []struct {
		mac, prefix, want string
		err               bool
	}{
		{"52:54:00:12:34:56", "2001:db8:1::/64", "2001:db8:1:0:5054:ff:fe12:3456", false},
		{"02:00:00:00:00:01", "2001:db8::/64", "2001:db8::ff:fe00:1", false},
		{"00:11:22:33:44:55:66:77", "2001:db8::/64", "2001:db8::211:2233:4455:6677", false},
		{"", "", "", true},
	} {
		mac, _ := net.ParseMAC(tc.mac)
		id, err := InterfaceID(mac)
		if (err != nil) != tc.err {
			t.Fatalf("%q: err %v", tc.mac, err)
		}
		if tc.err {
			continue
		}
		if got := SLAACAddr(netip.MustParsePrefix(tc.prefix), id); got.String() != tc.want {
			t.Errorf("%s in %s = %s, want %s", tc.mac, tc.prefix, got, tc.want)
		}
	}
}

func TestValidLifetime(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		remaining, advertised, want time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second},                // (2): <= 2 h left, a forged 0 is ignored
		{10 * time.Second, 5 * time.Second, 10 * time.Second},  // (2)
		{10 * time.Second, 20 * time.Second, 20 * time.Second}, // (1): longer than remaining
		{5 * h, 0, 2 * h},           // (3): cut to two hours, not to 0
		{5 * h, 1 * h, 2 * h},       // (3)
		{5 * h, 3 * h, 3 * h},       // (1): > 2 h
		{Infinite, 0, 2 * h},        // (3)
		{1 * h, Infinite, Infinite}, // (1)
		{2 * h, 2 * h, 2 * h},       // (2)
	} {
		if got := ValidLifetime(tc.remaining, tc.advertised); got != tc.want {
			t.Errorf("ValidLifetime(%s, %s) = %s, want %s", tc.remaining, tc.advertised, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ra := &ndp.RouterAdvertisement{RouterLifetime: time.Minute}
	good, err := ndp.MarshalMessage(ra)
	if err != nil {
		t.Fatal(err)
	}
	ll := netip.MustParseAddr("fe80::1")
	code1 := append([]byte(nil), good...)
	code1[1] = 1
	for _, tc := range []struct {
		name string
		b    []byte
		src  netip.Addr
		hop  int
		ok   bool
	}{
		{"valid", good, ll, 255, true},
		{"valid with zone", good, ll.WithZone("eth0"), 255, true},
		{"hop limit 64", good, ll, 64, false},
		{"hop limit unknown", good, ll, -1, false},
		{"global source", good, netip.MustParseAddr("2001:db8::1"), 255, false},
		{"unspecified source", good, netip.IPv6Unspecified(), 255, false},
		{"code 1", code1, ll, 255, false},
		{"short", good[:8], ll, 255, false},
		{"not an RA", []byte{133, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ll, 255, false},
		{"zero-length option", append(append([]byte(nil), good...), 5, 0, 0, 0, 0, 0, 0, 0), ll, 255, false},
	} {
		_, err := Validate(tc.b, tc.src, tc.hop)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

func pio(p string, valid, pref time.Duration, l, a bool) *ndp.PrefixInformation {
	pp := netip.MustParsePrefix(p)
	return &ndp.PrefixInformation{PrefixLength: uint8(pp.Bits()), OnLink: l, AutonomousAddressConfiguration: a, ValidLifetime: valid, PreferredLifetime: pref, Prefix: pp.Addr()}
}

var (
	testID = [8]byte{0x50, 0x54, 0, 0xff, 0xfe, 0x12, 0x34, 0x56}
	r1     = netip.MustParseAddr("fe80::1")
	t0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func TestTablePrefixes(t *testing.T) {
	tb := NewTable(testID, 1500)
	ra := &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
		pio("2001:db8:1::/64", time.Hour, 30*time.Minute, true, true), // address + on-link
		pio("2001:db8:2::/64", time.Hour, time.Hour, false, true),     // address only
		pio("2001:db8:3::/64", time.Hour, time.Hour, true, false),     // on-link only
		pio("2001:db8:4::/48", time.Hour, time.Hour, false, true),     // not /64: no address
		pio("2001:db8:5::/64", time.Minute, time.Hour, false, true),   // preferred > valid: ignored
		pio("fe80::/64", time.Hour, time.Hour, true, true),            // link-local: ignored
		pio("2001:db8:6::/64", 0, 0, true, true),                      // new with valid 0: nothing
		ndp.NewMTU(1400),
		&ndp.RecursiveDNSServer{Lifetime: time.Minute, Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53")}},
		&ndp.DNSSearchList{Lifetime: time.Minute, DomainNames: []string{"Lab.Example."}},
	}}
	changed, sum := tb.Update(t0, r1, ra)
	if !changed {
		t.Fatal("first RA changed nothing")
	}
	t.Log(sum)
	v := tb.View(t0)
	if got := fmt.Sprint(v.Addrs); got != "[{2001:db8:1:0:5054:ff:fe12:3456/64 1h0m0s 30m0s} {2001:db8:2:0:5054:ff:fe12:3456/64 1h0m0s 1h0m0s}]" {
		t.Errorf("addrs %s", got)
	}
	if len(v.OnLink) != 2 || v.OnLink[0].Dst.String() != "2001:db8:1::/64" || v.OnLink[1].Dst.String() != "2001:db8:3::/64" {
		t.Errorf("on-link %v", v.OnLink)
	}
	if len(v.Defaults) != 1 || v.Defaults[0].Via != r1 || v.Defaults[0].Lifetime != 1800*time.Second {
		t.Errorf("defaults %v", v.Defaults)
	}
	if v.MTU != 1400 || len(v.DNS) != 1 || len(v.Search) != 1 || v.Search[0] != "lab.example" {
		t.Errorf("mtu %d dns %v search %v", v.MTU, v.DNS, v.Search)
	}

	// Deprecation: preferred 0 keeps the address; a forged valid 0 does
	// not shorten a remaining lifetime of an hour below two hours... which
	// here means it is ignored (<= 2 h remaining).
	tb.Update(t0.Add(time.Minute), r1, &ndp.RouterAdvertisement{Options: []ndp.Option{pio("2001:db8:1::/64", 0, 0, false, true)}})
	v = tb.View(t0.Add(time.Minute))
	if v.Addrs[0].Preferred != 0 || v.Addrs[0].Valid != 59*time.Minute {
		t.Errorf("after deprecation: %v", v.Addrs[0])
	}
	if len(v.Defaults) != 0 {
		t.Errorf("router lifetime 0 kept the router: %v", v.Defaults)
	}
	// The MTU option above the link MTU is ignored.
	tb.Update(t0.Add(time.Minute), r1, &ndp.RouterAdvertisement{Options: []ndp.Option{ndp.NewMTU(9000)}})
	if tb.View(t0).MTU != 1400 {
		t.Errorf("mtu 9000 on a 1500 link accepted")
	}

	// Expiry: Next says when; Expire removes the address at its valid end.
	if next := tb.Next(t0); !next.Equal(t0.Add(time.Minute)) { // the DNS entries
		t.Errorf("next event %s, want %s", next, t0.Add(time.Minute))
	}
	if !tb.Expire(t0.Add(time.Hour)) {
		t.Fatal("nothing expired after an hour")
	}
	if v := tb.View(t0.Add(time.Hour)); len(v.Addrs) != 0 || len(v.OnLink) != 0 || len(v.DNS) != 0 {
		t.Errorf("after an hour: %+v", v)
	}
}

func TestTableInfinite(t *testing.T) {
	tb := NewTable(testID, 0)
	tb.Update(t0, r1, &ndp.RouterAdvertisement{Options: []ndp.Option{pio("2001:db8:1::/64", Infinite, Infinite, true, true)}})
	if tb.Expire(t0.Add(1000 * time.Hour)) {
		t.Fatal("an infinite prefix expired")
	}
	if !tb.Next(t0).IsZero() {
		t.Fatal("infinite table has a next event")
	}
	v := tb.View(t0)
	if v.Addrs[0].Valid != Infinite || v.Addrs[0].Preferred != Infinite || v.OnLink[0].Lifetime != Infinite {
		t.Fatalf("%+v", v)
	}
	l := v.Report("eth0", v.want()[:1], t0)
	if l.Addresses[0].Valid != 0 || l.Routes[0].Lifetime != 0 {
		t.Fatalf("infinite is not 0 in the lease: %+v", l)
	}
	// A forged valid 0 against an infinite address cuts it to two hours.
	tb.Update(t0, r1, &ndp.RouterAdvertisement{Options: []ndp.Option{pio("2001:db8:1::/64", 0, 0, false, true)}})
	if v := tb.View(t0); v.Addrs[0].Valid != twoHours || v.Addrs[0].Preferred != 0 {
		t.Fatalf("%+v", v.Addrs[0])
	}
}

// TestTableCaps: many RAs with many prefixes, routers and DNS servers
// fill the table up to each cap and never past it.
func TestTableCaps(t *testing.T) {
	tb := NewTable(testID, 1500)
	for i := range 200 {
		var opts []ndp.Option
		for j := range 40 {
			opts = append(opts, pio(fmt.Sprintf("2001:db8:%x:%x::/64", i, j), time.Hour, time.Hour, true, true))
			opts = append(opts, &ndp.RouteInformation{PrefixLength: 48, RouteLifetime: time.Hour, Prefix: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::", 0x1000+i*40+j))})
		}
		opts = append(opts, &ndp.RecursiveDNSServer{Lifetime: time.Hour, Servers: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i))}})
		opts = append(opts, &ndp.DNSSearchList{Lifetime: time.Hour, DomainNames: []string{fmt.Sprintf("d%d.example", i)}})
		src := netip.MustParseAddr(fmt.Sprintf("fe80::%x", i+1))
		tb.Update(t0, src, &ndp.RouterAdvertisement{RouterLifetime: time.Hour, Options: opts})
	}
	v := tb.View(t0)
	checkCaps(t, v)
	// Every kind was offered far more often than its cap: a table that
	// dropped everything would pass checkCaps, not this.
	for _, c := range []struct {
		what     string
		got, cap int
	}{
		{"addresses", len(v.Addrs), maxAddrs}, {"on-link prefixes", len(v.OnLink), maxOnLink},
		{"routers", len(v.Defaults), maxRouters}, {"routes", len(v.Routes), maxRoutes},
		{"DNS servers", len(v.DNS), maxDNS}, {"search domains", len(v.Search), maxSearch},
	} {
		if c.got != c.cap {
			t.Errorf("%d %s, want the cap %d", c.got, c.what, c.cap)
		}
	}
}

// floodRA is one of four flooding routers' RAs (fe80::f:0 to fe80::f:3):
// router lifetime 9000 s, four prefixes of its own (on-link, autonomous,
// infinite) and four RFC 4191 routes: together they fill every cap the
// real router needs. interval, when not 0, is announced (RFC 6275 7.3).
func floodRA(i int, interval time.Duration) (netip.Addr, *ndp.RouterAdvertisement) {
	ra := &ndp.RouterAdvertisement{RouterLifetime: 9000 * time.Second}
	for j := range 4 {
		ra.Options = append(ra.Options, pio(fmt.Sprintf("2001:db8:f%x:%x::/64", i, j), Infinite, Infinite, true, true),
			&ndp.RouteInformation{PrefixLength: 48, RouteLifetime: Infinite, Prefix: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::", 0xf00+4*i+j))})
	}
	if interval > 0 {
		ra.Options = append(ra.Options, advIntervalOpt(interval))
	}
	return netip.MustParseAddr(fmt.Sprintf("fe80::f:%x", i)), ra
}

func advIntervalOpt(d time.Duration) *ndp.RawOption {
	v := make([]byte, 6)
	ms := uint32(d / time.Millisecond)
	v[2], v[3], v[4], v[5] = byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	return &ndp.RawOption{Type: optAdvInterval, Length: 1, Value: v}
}

// TestTableFloodReplaced (issue 29): four routers flooding at boot fill
// every cap with infinite lifetimes. While they keep refreshing their
// entries the real router stays out; once no RA has refreshed them within
// their router's interval (10 minutes when none is announced; an
// announced one of a day counts as RFC 4861's largest, 30 minutes) the
// real router, its prefix, its address and its route take the place of
// the stalest flood entries, and nothing else of the flood goes.
func TestTableFloodReplaced(t *testing.T) {
	real := func() *ndp.RouterAdvertisement {
		return &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
			pio("2001:db8:1::/64", time.Hour, time.Hour, true, true),
			&ndp.RouteInformation{PrefixLength: 48, RouteLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:aaaa::")}}}
	}
	has := func(v View) (router, addr, onlink, route bool) {
		router = slices.ContainsFunc(v.Defaults, func(r Route) bool { return r.Via == r1 })
		addr = slices.ContainsFunc(v.Addrs, func(a Addr) bool { return netip.MustParsePrefix("2001:db8:1::/64").Contains(a.Prefix.Addr()) })
		onlink = slices.ContainsFunc(v.OnLink, func(r Route) bool { return r.Dst == netip.MustParsePrefix("2001:db8:1::/64") })
		route = slices.ContainsFunc(v.Routes, func(r Route) bool { return r.Dst == netip.MustParsePrefix("2001:db8:aaaa::/48") })
		return
	}
	for _, c := range []struct {
		name     string
		interval time.Duration // announced by the flood; 0: none
		stale    time.Duration // after the flood's last RA
	}{
		{"no interval announced", 0, defaultAdvInterval},
		{"a day announced", 24 * time.Hour, maxAdvInterval},
		{"2 s announced", 2 * time.Second, 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := NewTable(testID, 1500)
			flood := func(at time.Time) {
				for i := range 4 {
					src, ra := floodRA(i, c.interval)
					tb.Update(at, src, ra)
				}
			}
			// The flood, refreshed every second for a minute.
			last := t0.Add(time.Minute)
			for at := t0; !at.After(last); at = at.Add(time.Second) {
				flood(at)
			}
			checkCaps(t, tb.View(last))
			if v := tb.View(last); len(v.Defaults) != maxRouters || len(v.Addrs) != maxAddrs || len(v.OnLink) != maxOnLink || len(v.Routes) != maxRoutes {
				t.Fatalf("the flood did not fill the table: %+v", v)
			}
			// While it is fresh, the real router is kept out.
			at := last.Add(c.stale - time.Millisecond)
			_, sum := tb.Update(at, r1, real())
			if r, a, o, rt := has(tb.View(at)); r || a || o || rt {
				t.Fatalf("the real router got in while the flood was fresh (router %v addr %v on-link %v route %v): %s", r, a, o, rt, sum)
			}
			// Once stale, it takes their place.
			at = last.Add(c.stale)
			_, sum = tb.Update(at, r1, real())
			v := tb.View(at)
			if r, a, o, rt := has(v); !r || !a || !o || !rt {
				t.Fatalf("after the flood went stale: router %v addr %v on-link %v route %v: %s", r, a, o, rt, sum)
			}
			checkCaps(t, v)
			if len(v.Defaults) != maxRouters || len(v.Addrs) != maxAddrs || len(v.OnLink) != maxOnLink || len(v.Routes) != maxRoutes {
				t.Errorf("more than one entry of a kind replaced: %d routers, %d addrs, %d on-link, %d routes", len(v.Defaults), len(v.Addrs), len(v.OnLink), len(v.Routes))
			}
			if !strings.Contains(sum, "router replaces fe80::f:0") || !strings.Contains(sum, "address replaces 2001:db8:f0::/64") {
				t.Errorf("summary does not say what was replaced: %s", sum)
			}
		})
	}
}

// TestTableFreshHeld: an entry that keeps being refreshed is never
// replaced, and of two stale ones the one refreshed longest ago goes.
func TestTableFreshHeld(t *testing.T) {
	tb := NewTable(testID, 1500)
	var srcs []netip.Addr
	for i := range maxRouters {
		src := netip.MustParseAddr(fmt.Sprintf("fe80::f:%x", i))
		srcs = append(srcs, src)
		tb.Update(t0.Add(time.Duration(i)*time.Minute), src, &ndp.RouterAdvertisement{RouterLifetime: 9000 * time.Second})
	}
	// fe80::f:0 and f:1 keep being heard, f:2 and f:3 fall silent.
	for at := t0; at.Before(t0.Add(time.Hour)); at = at.Add(5 * time.Minute) {
		for _, src := range srcs[:2] {
			tb.Update(at, src, &ndp.RouterAdvertisement{RouterLifetime: 9000 * time.Second})
		}
	}
	now := t0.Add(time.Hour)
	for i, want := range []netip.Addr{srcs[2], srcs[3]} {
		src := netip.MustParseAddr(fmt.Sprintf("fe80::a:%x", i))
		if _, sum := tb.Update(now, src, &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second}); !strings.Contains(sum, "router replaces "+want.String()+" ") {
			t.Errorf("new router %d: %s; want %s replaced", i, sum, want)
		}
	}
	_, sum := tb.Update(now, netip.MustParseAddr("fe80::b:1"), &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second})
	if !strings.Contains(sum, "router ignored (cap 4)") {
		t.Errorf("a fifth router took a fresh one's place: %s", sum)
	}
	var got []netip.Addr
	for _, r := range tb.View(now).Defaults {
		got = append(got, r.Via)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	want := []netip.Addr{netip.MustParseAddr("fe80::a:0"), netip.MustParseAddr("fe80::a:1"), srcs[0], srcs[1]}
	slices.SortFunc(want, netip.Addr.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("routers %v, want %v", got, want)
	}
}

func checkCaps(t *testing.T, v View) {
	t.Helper()
	if len(v.Addrs) > maxAddrs || len(v.OnLink) > maxOnLink || len(v.Defaults) > maxRouters ||
		len(v.Routes) > maxRoutes || len(v.DNS) > maxDNS || len(v.Search) > maxSearch {
		t.Fatalf("caps exceeded: %d addrs, %d on-link, %d routers, %d routes, %d dns, %d search",
			len(v.Addrs), len(v.OnLink), len(v.Defaults), len(v.Routes), len(v.DNS), len(v.Search))
	}
}

func TestLimiter(t *testing.T) {
	var l limiter
	ok := 0
	for range 100 {
		if a, _ := l.allow(t0); a {
			ok++
		}
	}
	if ok != logBurst {
		t.Fatalf("%d lines allowed in one second, want %d", ok, logBurst)
	}
	if a, dropped := l.allow(t0.Add(time.Second)); !a || dropped != 100-logBurst {
		t.Fatalf("next second: %v %d", a, dropped)
	}
}

// FuzzRA feeds arbitrary bytes through Validate (ndp.ParseMessage) into
// the Table: it must never panic nor exceed the caps.
func FuzzRA(f *testing.F) {
	seed := &ndp.RouterAdvertisement{RouterLifetime: time.Minute, Options: []ndp.Option{
		pio("2001:db8:1::/64", time.Hour, time.Hour, true, true),
		ndp.NewMTU(1400),
		&ndp.RecursiveDNSServer{Lifetime: time.Minute, Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53")}},
		&ndp.DNSSearchList{Lifetime: time.Minute, DomainNames: []string{"lab.example"}},
		&ndp.RouteInformation{PrefixLength: 48, RouteLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:9::")},
	}}
	b, err := ndp.MarshalMessage(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint8(1))
	f.Add([]byte{134, 0, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, n uint8) {
		tb := NewTable(testID, 1500)
		now := t0
		// The same message from n routers, at growing times, with
		// expiry in between.
		for i := range int(n%8) + 1 {
			ra, err := Validate(b, netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: byte(i + 1)}), 255)
			if err != nil {
				return
			}
			tb.Update(now, netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: byte(i + 1)}), ra)
			now = now.Add(time.Duration(i) * time.Minute)
			tb.Expire(now)
			v := tb.View(now)
			checkCaps(t, v)
			for _, a := range v.Addrs {
				if a.Preferred > a.Valid || a.Prefix.Bits() != 64 {
					t.Fatalf("bad address %+v", a)
				}
			}
			_ = v.Report("eth0", v.want(), now)
		}
	})
}

// TestTableHostile feeds the client's parser the hostile RA: nothing it
// tries is taken, the good options are, and the log line is one line.
func TestTableHostile(t *testing.T) {
	ra := wire(t, r1, lab.HostileRA())
	tb := NewTable(testID, 1500)
	tb.Protect(lab.HostileWGSubnet)
	_, sum := tb.Update(t0, r1, ra)
	t.Log(sum)
	if strings.ContainsAny(sum, "\n\t\x1b") {
		t.Errorf("summary carries control characters: %q", sum)
	}
	for _, w := range []string{`dnssl "x\nnameserver\t6.6.6.6" ignored`, "rdnss fe80::53 ignored", "route 8000::/1 (3600s) ignored (less specific than /48)",
		"route 200:1:2:3::/64 (3600s) ignored (inside the overlay's 200::/7)", "prefix 2001:db8:ff::/64 (LA) valid 3600s preferred 3600s ignored (inside the overlay's 2001:db8:ff::/64)"} {
		if !strings.Contains(sum, w) {
			t.Errorf("summary does not say %q", w)
		}
	}
	v := tb.View(t0)
	if !slices.Equal(v.Search, []string{"lab.example"}) {
		t.Errorf("search %q, want [lab.example]", v.Search)
	}
	if !slices.Equal(v.DNS, []netip.Addr{netip.MustParseAddr("2001:db8::53")}) {
		t.Errorf("dns %v, want [2001:db8::53]", v.DNS)
	}
	if want := []Route{{Dst: netip.MustParsePrefix("2001:db8:1:f000::/52"), Via: r1, Metric: 1024, Lifetime: time.Hour}}; !slices.Equal(v.Routes, want) {
		t.Errorf("RFC 4191 routes %v, want %v (the /52 with all its bits)", v.Routes, want)
	}
	if want := []Route{{Dst: netip.MustParsePrefix("2001:db8:1::/64"), Metric: 256, Lifetime: time.Hour}}; !slices.Equal(v.OnLink, want) {
		t.Errorf("on-link routes %v, want %v", v.OnLink, want)
	}
	if len(v.Addrs) != 1 || v.Addrs[0].Prefix != netip.PrefixFrom(SLAACAddr(netip.MustParsePrefix("2001:db8:1::/64"), testID), 64) {
		t.Errorf("addresses %v, want only the one in 2001:db8:1::/64", v.Addrs)
	}
}

// wire is ra as the client receives it from src: marshalled, then
// validated (RFC 4861 section 6.1.2).
func wire(t *testing.T, src netip.Addr, ra *ndp.RouterAdvertisement) *ndp.RouterAdvertisement {
	t.Helper()
	b, err := ndp.MarshalMessage(ra)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Validate(b, src, 255)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFixRouteInfo: prefix lengths that are not a multiple of 8 keep
// their bits (ndp v1.1.0 alone turns 8000::/1 into ::/1).
func TestFixRouteInfo(t *testing.T) {
	for _, p := range []string{"8000::/1", "2001:db8:f000::/36", "2001:db8:1:f000::/52", "2001:db8::1:0:0:8000/113", "2001:db8:9::/48", "ff00::/8"} {
		pp := netip.MustParsePrefix(p)
		ra := wire(t, r1, &ndp.RouterAdvertisement{Options: []ndp.Option{
			ndp.NewMTU(1400),
			&ndp.RouteInformation{PrefixLength: uint8(pp.Bits()), RouteLifetime: time.Hour, Prefix: pp.Addr()},
		}})
		ri := ra.Options[1].(*ndp.RouteInformation)
		if got := netip.PrefixFrom(ri.Prefix, int(ri.PrefixLength)); got != pp {
			t.Errorf("RIO %s parsed as %s", pp, got)
		}
	}
}

// TestPREF64: the NAT64 prefix of RFC 8781, from the wire bytes through
// Validate to the lease: the most recent prefix is kept, lifetime 0
// withdraws it, it expires, and prefixes that cannot be NAT64 are ignored.
func TestPREF64(t *testing.T) {
	src := netip.MustParseAddr("fe80::1")
	now := time.Unix(1000, 0)
	tb := NewTable([8]byte{1}, 1500)
	send := func(p string, lt time.Duration) {
		t.Helper()
		ra := wire(t, src, &ndp.RouterAdvertisement{
			Options: []ndp.Option{&ndp.PREF64{Prefix: netip.MustParsePrefix(p), Lifetime: lt}}})
		tb.Update(now, src, ra)
	}
	got := func() netip.Prefix { return tb.View(now).Report("eth0", nil, now).PREF64 }

	send("64:ff9b::/96", 1800*time.Second)
	if got() != netip.MustParsePrefix("64:ff9b::/96") {
		t.Fatalf("pref64 %s, want 64:ff9b::/96", got())
	}
	send("2001:db8:64::/64", 600*time.Second)
	if got() != netip.MustParsePrefix("2001:db8:64::/64") {
		t.Fatalf("pref64 %s, want the most recent 2001:db8:64::/64", got())
	}
	for _, bad := range []string{"fe80::/64", "ff02::/64", "::ffff:0:0/96"} {
		send(bad, 600*time.Second)
		if got() != netip.MustParsePrefix("2001:db8:64::/64") {
			t.Fatalf("pref64 %s after %s, want it ignored", got(), bad)
		}
	}
	if next := tb.Next(now); !next.Equal(now.Add(600 * time.Second)) {
		t.Errorf("next expiry %v, want the PREF64 lifetime", next)
	}
	now = now.Add(601 * time.Second)
	if !tb.Expire(now) || got().IsValid() {
		t.Errorf("pref64 %s after its lifetime", got())
	}
	send("64:ff9b::/96", 1800*time.Second)
	send("64:ff9b::/96", 0)
	if got().IsValid() {
		t.Errorf("pref64 %s after lifetime 0", got())
	}
}

// TestWideRoutesOnlyOnUplink: an on-link ::/0, an RIO ::/1, the default
// routers and any RIO are installed only on the uplink (boot/route judges
// the view's routes); the view makes its link a candidate for it.
func TestWideRoutesOnlyOnUplink(t *testing.T) {
	src := netip.MustParseAddr("fe80::1")
	now := time.Unix(1000, 0)
	tb := NewTable([8]byte{1}, 1500)
	ra := wire(t, src, &ndp.RouterAdvertisement{RouterLifetime: time.Hour, Options: []ndp.Option{
		&ndp.PrefixInformation{PrefixLength: 0, OnLink: true, ValidLifetime: time.Hour, Prefix: netip.IPv6Unspecified()},
		&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, ValidLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:4::")},
		&ndp.RouteInformation{PrefixLength: 8, RouteLifetime: time.Hour, Prefix: netip.MustParseAddr("::")},
		&ndp.RouteInformation{PrefixLength: 48, RouteLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:5::")},
	}})
	tb.Update(now, src, ra)
	// ::/1 in RIO form: ndp v1.1.0 drops bits of prefixes that are not a
	// multiple of 8, so the /1 is added to the view here directly.
	v := tb.View(now)
	v.Routes = append(v.Routes, Route{Dst: netip.MustParsePrefix("::/1"), Via: src, Metric: 1024, Lifetime: time.Hour})
	dsts := func(uplink bool) []string {
		candidate := false
		in := route.New(route.Config{Kernel: kerneltest.New(), Uplink: func(_ string, c bool) bool {
			candidate = c
			return uplink
		}})
		rs, err := in.Apply("eth0", 2, lease.SourceSLAAC, v.want())
		if err != nil {
			t.Fatal(err)
		}
		if !candidate {
			t.Error("a view with default routers does not make its link a candidate")
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Dst.String())
		}
		return out
	}
	// The RIO ::/8 is not there at all: RIO routes less specific than
	// /48 are ignored (TestTableHostile).
	if got := dsts(false); fmt.Sprint(got) != "[2001:db8:4::/64]" {
		t.Errorf("not the uplink: routes %v, want only the on-link 2001:db8:4::/64", got)
	}
	if got := dsts(true); fmt.Sprint(got) != "[::/0 2001:db8:4::/64 ::/0 2001:db8:5::/48 ::/1]" {
		t.Errorf("uplink: routes %v", got)
	}
}

// TestBadPREF64Ignored: a PREF64 option with an undefined Prefix Length
// Code, or of the wrong length, is ignored (RFC 8781 section 4) and the
// rest of the RA is used.
func TestBadPREF64Ignored(t *testing.T) {
	src := netip.MustParseAddr("fe80::1")
	good, err := ndp.MarshalMessage(&ndp.RouterAdvertisement{RouterLifetime: time.Minute, Options: []ndp.Option{
		&ndp.PREF64{Prefix: netip.MustParsePrefix("64:ff9b::/96"), Lifetime: 600 * time.Second},
		&ndp.RecursiveDNSServer{Lifetime: time.Hour, Servers: []netip.Addr{netip.MustParseAddr("2001:db8::53")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The PREF64 option sits right after the 16-octet header.
	badPLC := append([]byte(nil), good...)
	badPLC[16+3] |= 0x7 // PLC 7
	long := append(append(append([]byte(nil), good[:16]...), optPREF64, 3), make([]byte, 22)...)
	long = append(long, good[32:]...)
	for name, b := range map[string][]byte{"PLC 7": badPLC, "24 octets": long} {
		t.Run(name, func(t *testing.T) {
			ra, err := Validate(b, src, 255)
			if err != nil {
				t.Fatalf("RA refused for its PREF64 option: %v", err)
			}
			tb := NewTable([8]byte{1}, 1500)
			now := time.Unix(1000, 0)
			tb.Update(now, src, ra)
			v := tb.View(now)
			if v.PREF64.IsValid() || len(v.DNS) != 1 {
				t.Errorf("pref64 %s dns %v, want none and the RDNSS", v.PREF64, v.DNS)
			}
		})
	}
	if ra, err := Validate(good, src, 255); err != nil || len(ra.Options) != 2 {
		t.Errorf("the good RA: %v, %d options", err, len(ra.Options))
	}
	// Framing errors stay ndp's to refuse.
	broken := append(append([]byte(nil), good[:16]...), optPREF64, 0)
	if _, err := Validate(broken, src, 255); err == nil {
		t.Error("an option of length 0 accepted")
	}
}

// FuzzDropBadPREF64: never panics, never grows the message, keeps the
// header, and what it returns has no PREF64 option that ndp would refuse.
func FuzzDropBadPREF64(f *testing.F) {
	ra, _ := ndp.MarshalMessage(&ndp.RouterAdvertisement{Options: []ndp.Option{
		&ndp.PREF64{Prefix: netip.MustParsePrefix("64:ff9b::/96"), Lifetime: time.Minute}}})
	f.Add(ra)
	f.Add(append(append([]byte(nil), ra[:16]...), 38, 2, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := dropBadPREF64(b)
		if len(out) > len(b) || (len(b) >= 16 && string(out[:16]) != string(b[:16])) {
			t.Fatalf("dropBadPREF64 changed the header or grew: %x -> %x", b, out)
		}
		if len(out) < 16 {
			return
		}
		for i := 16; i+2 <= len(out) && out[i+1] != 0 && i+int(out[i+1])*8 <= len(out); i += int(out[i+1]) * 8 {
			if out[i] == 38 && (out[i+1] != 2 || out[i+3]&7 > 5) && len(out) != len(b) {
				t.Fatalf("bad PREF64 kept at %d: %x", i, out)
			}
		}
	})
}
