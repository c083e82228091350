package addr

import (
	"net/netip"
	"testing"
	"time"
)

func TestNet(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.10/24", "192.0.2.10/24"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"2001:db8::1/64", "2001:db8::1/64"},
		{"2001:db8::1/128", "2001:db8::1/128"},
		{"::/0", "::/0"},
	} {
		n := Net(netip.MustParsePrefix(tc.in))
		if got := n.String(); got != tc.want {
			t.Errorf("Net(%s) = %s, want %s", tc.in, got, tc.want)
		}
		// An IPv4 prefix must stay 4 bytes long: netlink tells the
		// families apart by the length.
		if p := netip.MustParsePrefix(tc.in); p.Addr().Is4() && (len(n.IP) != 4 || len(n.Mask) != 4) {
			t.Errorf("Net(%s): %d-byte address, %d-byte mask", tc.in, len(n.IP), len(n.Mask))
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		d     time.Duration
		floor int
		want  int
	}{
		{0, 1, 1},
		{0, 0, 0},
		{time.Millisecond, 0, 1},
		{time.Second, 1, 1},
		{1500 * time.Millisecond, 0, 2},
		{3600 * time.Second, 1, 3600},
		{Forever - time.Second, 1, 0xfffffffe},
		{Forever, 1, 0xffffffff},
		{Forever + time.Hour, 0, 0xffffffff},
	} {
		if got := Seconds(tc.d, tc.floor); got != tc.want {
			t.Errorf("Seconds(%v, %d) = %d, want %d", tc.d, tc.floor, got, tc.want)
		}
	}
}
