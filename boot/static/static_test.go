package static

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
)

func TestRoutesAndReport(t *testing.T) {
	for _, tc := range []struct {
		address, gw string
		def         bool
		want        string
	}{
		{"192.0.2.10/24", "192.0.2.1", true, "[0.0.0.0/0 via 192.0.2.1]"},
		{"192.0.2.10/32", "198.51.100.1", true, "[198.51.100.1/32 on-link 0.0.0.0/0 via 198.51.100.1]"},
		{"2001:db8::10/64", "2001:db8::1", true, "[::/0 via 2001:db8::1]"},
		{"2001:db8::10/64", "fe80::1", true, "[fe80::1/128 on-link ::/0 via fe80::1]"},
		{"192.0.2.10/32", "198.51.100.1", false, "[]"},
		{"192.0.2.10/24", "", true, "[]"},
	} {
		o := Options{Link: "eth0", Address: netip.MustParsePrefix(tc.address),
			Routes: route.New(route.Config{Kernel: kerneltest.New(), Uplink: func(string, bool) bool { return tc.def }})}
		if tc.gw != "" {
			o.Gateway = netip.MustParseAddr(tc.gw)
		}
		rs, err := o.Routes.Apply("eth0", 2, lease.SourceStatic, o.routes())
		if err != nil {
			t.Fatal(err)
		}
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
