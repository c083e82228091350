package netprobe

import (
	"net/netip"
	"testing"
)

func TestPublicIPv6(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"2001:db8:1::5", true},
		{"2a01:4f8::1", true},
		{"fd00::1", false},        // ULA
		{"fe80::1", false},        // link-local
		{"200:1234::1", false},    // Yggdrasil
		{"300:1234::1", false},    // Yggdrasil subnet
		{"fec0::1", false},        // site-local
		{"::1", false},            // loopback
		{"ff02::1", false},        // multicast
		{"::ffff:8.8.8.8", false}, // v4-mapped
		{"8.8.8.8", false},
	} {
		if got := PublicIPv6(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("PublicIPv6(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestPublicIPv4(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"192.0.2.5", true}, // TEST-NET counts as public in labs
		{"10.0.2.15", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"100.64.1.1", false}, // CGNAT
		{"127.0.0.1", false},
		{"169.254.1.1", false},
		{"224.0.0.1", false},
	} {
		if got := PublicIPv4(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("PublicIPv4(%s) = %v, want %v", tc.addr, got, tc.want)
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
		got, why := IPv6Verdict(tc.addrs, tc.def)
		if got != tc.want || why == "" {
			t.Errorf("%s: got %v (%q), want %v", tc.name, got, why, tc.want)
		}
	}
}
