package netprobe

import (
	"net/netip"
	"testing"
)

// labInternet is the labs' Internet: the tests number their networks from
// the documentation ranges, which stand for the Internet in them.
var labInternet = Internet{Documentation: true}

// TestPublic: the rules of each family, the same in the Internet and in a
// lab's; the documentation ranges are public only in a lab's.
func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		addr         string
		want6, want4 bool
	}{
		{"2a01:4f8::1", true, false},
		{"fd00::1", false, false},       // ULA
		{"fe80::1", false, false},       // link-local
		{"200:1234::1", false, false},   // Yggdrasil
		{"300:1234::1", false, false},   // Yggdrasil subnet
		{"fec0::1", false, false},       // site-local
		{"::1", false, false},           // loopback
		{"ff02::1", false, false},       // multicast
		{"::ffff:8.8.8.8", false, true}, // v4-mapped: an IPv4 address
		{"8.8.8.8", false, true},
		{"10.0.2.15", false, false},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"100.64.1.1", false, false}, // CGNAT
		{"127.0.0.1", false, false},
		{"169.254.1.1", false, false},
		{"224.0.0.1", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		for _, f := range []struct {
			name   string
			public func(Internet, netip.Addr) bool
			want   bool
		}{{"IPv6", Internet.PublicIPv6, tc.want6}, {"IPv4", Internet.PublicIPv4, tc.want4}} {
			if got, lab := f.public(Internet{}, a), f.public(labInternet, a); got != f.want || lab != f.want {
				t.Errorf("public %s %s = %v (%v in a lab), want %v", f.name, a, got, lab, f.want)
			}
		}
	}
	for _, s := range []string{"2001:db8:1::5", "3fff:1::5", "192.0.2.5", "198.51.100.5", "203.0.113.5"} {
		a := netip.MustParseAddr(s)
		if (Internet{}).Public(a) || !labInternet.Public(a) {
			t.Errorf("documentation %s: public %v, in a lab %v; want false, true", a, Internet{}.Public(a), labInternet.Public(a))
		}
	}
}

func TestIPv6Verdict(t *testing.T) {
	g := netip.MustParseAddr("2001:db8:1::5")
	u := netip.MustParseAddr("fd00::5")
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		def   bool
		want  bool
	}{
		{"global+default", []netip.Addr{u, g}, true, true},
		{"global no default", []netip.Addr{g}, false, false},
		{"ula+default", []netip.Addr{u}, true, false},
		{"nothing", nil, false, false},
	} {
		got, why := labInternet.IPv6Verdict(tc.addrs, tc.def)
		if got != tc.want || why == "" {
			t.Errorf("%s: got %v (%q), want %v", tc.name, got, why, tc.want)
		}
	}
}
