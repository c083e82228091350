package ra

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/internal/lab"
)

// FuzzRAPlan is the RA option path end to end: bytes from the wire
// through Validate and the Table to what Run would install (View.routes,
// the addresses) and report (the lease), with a WireGuard subnet
// protected as the engine does. Whatever the bytes, nothing lands inside
// the overlays, no RFC 4191 route is shorter than /48, every name and
// server is one resolv.conf can take, and the log line is one line.
func FuzzRAPlan(f *testing.F) {
	for _, ra := range []*ndp.RouterAdvertisement{lab.HostileRA(), {RouterLifetime: time.Minute, Options: []ndp.Option{
		&ndp.RouteInformation{PrefixLength: 52, RouteLifetime: time.Hour, Prefix: netip.MustParseAddr("2001:db8:1:f000::")},
		&ndp.DNSSearchList{Lifetime: time.Minute, DomainNames: []string{"lab.example"}},
	}}} {
		b, err := ndp.MarshalMessage(ra)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	protected := append([]netip.Prefix{lab.HostileWGSubnet}, lease.Yggdrasil...)
	f.Fuzz(func(t *testing.T, b []byte) {
		ra, err := Validate(b, r1, 255)
		if err != nil {
			return
		}
		tb := NewTable(testID, 1500)
		tb.Protect(lab.HostileWGSubnet)
		_, sum := tb.Update(t0, r1, ra)
		if strings.ContainsFunc(sum, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("summary carries a control character: %q", sum)
		}
		v := tb.View(t0.Add(time.Second))
		checkCaps(t, v)
		inside := func(p netip.Prefix) bool {
			for _, q := range protected {
				if p.Bits() >= q.Bits() && q.Contains(p.Addr()) {
					return true
				}
			}
			return false
		}
		routes := v.want()
		for _, r := range routes {
			if !r.Dst.IsValid() || r.Dst != r.Dst.Masked() || inside(r.Dst) {
				t.Fatalf("route %s planned", r.Dst)
			}
		}
		for _, r := range v.Routes {
			if r.Dst.Bits() < rioMinBits {
				t.Fatalf("RFC 4191 route %s shorter than /%d", r.Dst, rioMinBits)
			}
		}
		for _, a := range v.Addrs {
			if inside(a.Prefix) || a.Preferred > a.Valid || a.Prefix.Bits() != 64 {
				t.Fatalf("address %+v planned", a)
			}
		}
		l := v.Report("eth0", routes, t0)
		for _, d := range l.Search {
			if dnsname.Check(d) != nil {
				t.Fatalf("search domain %q in the lease", d)
			}
		}
		for _, s := range l.DNS {
			if dnsname.CheckServer6(s) != nil {
				t.Fatalf("name server %s in the lease", s)
			}
		}
	})
}
