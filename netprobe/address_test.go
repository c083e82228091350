package netprobe

import (
	"net/netip"
	"os"
	"testing"
)

// TestMain: the tests number their networks from the documentation
// ranges, which stand for the internet in them (as in every lab).
func TestMain(m *testing.M) {
	CountDocumentationAsPublic()
	os.Exit(m.Run())
}

// TestPublicIPv6: the rules, and the documentation ranges public only
// where the labs ask for it.
func TestPublicIPv6(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
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
		a := netip.MustParseAddr(tc.addr)
		if got := publicIPv6(a, false); got != tc.want {
			t.Errorf("publicIPv6(%s) = %v, want %v", tc.addr, got, tc.want)
		}
		if got := publicIPv6(a, true); got != tc.want {
			t.Errorf("publicIPv6(%s) counting documentation as public = %v, want %v", tc.addr, got, tc.want)
		}
	}
	for _, s := range []string{"2001:db8:1::5", "3fff:1::5"} {
		a := netip.MustParseAddr(s)
		if publicIPv6(a, false) || !publicIPv6(a, true) || !PublicIPv6(a) {
			t.Errorf("documentation %s: public %v, in a lab %v, in this test %v; want false, true, true",
				a, publicIPv6(a, false), publicIPv6(a, true), PublicIPv6(a))
		}
	}
}

func TestPublicIPv4(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"10.0.2.15", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"100.64.1.1", false}, // CGNAT
		{"127.0.0.1", false},
		{"169.254.1.1", false},
		{"224.0.0.1", false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := publicIPv4(a, false); got != tc.want {
			t.Errorf("publicIPv4(%s) = %v, want %v", tc.addr, got, tc.want)
		}
		if got := publicIPv4(a, true); got != tc.want {
			t.Errorf("publicIPv4(%s) counting documentation as public = %v, want %v", tc.addr, got, tc.want)
		}
	}
	for _, s := range []string{"192.0.2.5", "198.51.100.5", "203.0.113.5"} {
		a := netip.MustParseAddr(s)
		if publicIPv4(a, false) || !publicIPv4(a, true) || !PublicIPv4(a) {
			t.Errorf("documentation %s: public %v, in a lab %v, in this test %v; want false, true, true",
				a, publicIPv4(a, false), publicIPv4(a, true), PublicIPv4(a))
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
