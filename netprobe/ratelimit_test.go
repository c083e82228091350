package netprobe

import (
	"net/netip"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiter(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.1")
	b := netip.MustParseAddr("198.51.100.2")
	a6 := netip.MustParseAddr("2001:db8:1::1")
	a6same64 := netip.MustParseAddr("2001:db8:1::ffff:1")
	a6other64 := netip.MustParseAddr("2001:db8:2::1")

	type step struct {
		advance time.Duration
		addr    netip.Addr
		want    bool
	}
	for _, tc := range []struct {
		name             string
		perMinute, burst int
		steps            []step
	}{
		{"burst then refused", 5, 5, []step{
			{0, a, true}, {0, a, true}, {0, a, true}, {0, a, true}, {0, a, true}, {0, a, false}, {0, a, false},
		}},
		{"sources are independent", 1, 1, []step{
			{0, a, true}, {0, a, false}, {0, b, true}, {0, b, false},
		}},
		{"refill at the rate", 6, 1, []step{ // one token per 10 s
			{0, a, true}, {5 * time.Second, a, false}, {5 * time.Second, a, true}, {0, a, false},
		}},
		{"refill caps at burst", 60, 2, []step{
			{0, a, true}, {0, a, true}, {time.Hour, a, true}, {0, a, true}, {0, a, false},
		}},
		{"IPv6 counted per /64", 1, 1, []step{
			{0, a6, true}, {0, a6same64, false}, {0, a6other64, true},
		}},
		{"v4-mapped is the IPv4 source", 1, 1, []step{
			{0, a, true}, {0, netip.AddrFrom16(a.As16()), false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1e9, 0)}
			l := NewLimiter(tc.perMinute, tc.burst)
			l.now = clk.now
			for i, s := range tc.steps {
				clk.advance(s.advance)
				if got := l.Allow(s.addr); got != s.want {
					t.Fatalf("step %d (%s after %v): Allow = %v, want %v", i, s.addr, s.advance, got, s.want)
				}
			}
		})
	}
}

// TestLimiterBoundedMemory: a table full of busy sources does not lock
// newcomers out (they used to be refused): the most drained bucket is
// forgotten to make room.
func TestLimiterBoundedMemory(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := NewLimiter(60, 2)
	l.now = clk.now
	l.max = 3
	ip := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, i}) }
	for i := byte(1); i <= 3; i++ {
		if !l.Allow(ip(i)) {
			t.Fatalf("source %d refused", i)
		}
	}
	l.Allow(ip(2)) // source 2 is the most drained
	if !l.Allow(ip(4)) {
		t.Fatal("a 4th source was refused while 3 busy sources fill the table")
	}
	if len(l.buckets) > 3 {
		t.Fatalf("%d buckets tracked, max 3", len(l.buckets))
	}
	if _, ok := l.buckets[sourceKey(ip(2))]; ok {
		t.Fatalf("the most drained source was kept: %v", l.buckets)
	}
	if _, ok := l.buckets[sourceKey(ip(1))]; !ok {
		t.Fatalf("a less drained source was forgotten: %v", l.buckets)
	}
	clk.advance(2 * time.Second) // every bucket refills: they can be forgotten
	if !l.Allow(ip(5)) || len(l.buckets) > 3 {
		t.Fatalf("after the others went idle: %d buckets", len(l.buckets))
	}
}

// TestLimiterSite: one /48 rotating through its /64s gets PrefixFactor
// times one source's burst, not 65536 times; its /64s refused at the /48
// leave no entries behind; another /48 is not affected.
func TestLimiterSite(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	l := NewLimiter(1, 1)
	l.now = clk.now
	ok := 0
	for i := 0; i < 100; i++ {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0xa, byte(i >> 8), byte(i), 15: 1})
		if l.Allow(a) {
			ok++
		}
	}
	if ok != PrefixFactor {
		t.Fatalf("%d requests from one /48 allowed, want %d", ok, PrefixFactor)
	}
	if len(l.buckets) != PrefixFactor+1 {
		t.Fatalf("%d buckets for one /48, want %d", len(l.buckets), PrefixFactor+1)
	}
	if !l.Allow(netip.MustParseAddr("2001:db8:b::1")) {
		t.Fatal("another /48 was refused")
	}
}
