package static

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestRoutesAndReport(t *testing.T) {
	for _, tc := range []struct {
		address, gw string
		def         bool
		want        string
	}{
		{"192.0.2.10/24", "192.0.2.1", true, "[{0.0.0.0/0 192.0.2.1 0s}]"},
		{"192.0.2.10/32", "198.51.100.1", true, "[{198.51.100.1/32 invalid IP 0s} {0.0.0.0/0 198.51.100.1 0s}]"},
		{"2001:db8::10/64", "2001:db8::1", true, "[{::/0 2001:db8::1 0s}]"},
		{"2001:db8::10/64", "fe80::1", true, "[{fe80::1/128 invalid IP 0s} {::/0 fe80::1 0s}]"},
		{"192.0.2.10/24", "192.0.2.1", false, "[]"},
		{"192.0.2.10/24", "", true, "[]"},
	} {
		o := Options{Link: "eth0", Address: netip.MustParsePrefix(tc.address)}
		if tc.gw != "" {
			o.Gateway = netip.MustParseAddr(tc.gw)
		}
		rs := o.routes(tc.def)
		if got := fmt.Sprint(rs); got != tc.want {
			t.Errorf("%s via %q (default %v): routes %s, want %s", tc.address, tc.gw, tc.def, got, tc.want)
		}
		r := o.report(rs, time.Unix(0, 0))
		if r.Source != "static" || r.Status != "bound" || r.Addresses[0].Prefix != o.Address || r.HasDefault() != (len(rs) > 0) ||
			(len(r.Routers) == 1) != (len(rs) > 0) {
			t.Errorf("%s via %q (default %v): report %+v", tc.address, tc.gw, tc.def, r)
		}
	}
}
