package dhcp6

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/lease"
)

// FuzzReplyLease is the DHCPv6 reply path end to end: server bytes
// through ParseReply to the timers the client sleeps on and the lease the
// engine gets. Whatever the bytes: parsing never panics, the caps on DNS
// servers, search domains and NTP servers hold, an address is never
// preferred longer than valid, the renewal never comes back to back
// (T1 at least a second, T2 not before T1), every server and name can go
// into resolv.conf, no address lies inside an overlay (Yggdrasil's, a
// protected WireGuard subnet), and what the log says of the dropped parts is one
// line each.
func FuzzReplyLease(f *testing.F) {
	id := [4]byte{1, 2, 3, 4}
	f.Add(reply(id, iana.StatusSuccess, &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::100"), PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour}).ToBytes())
	hostile := reply(id, iana.StatusSuccess, &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::100"), ValidLifetime: 600 * time.Second})
	hostile.UpdateOption(dhcpv6.OptDNS(net.ParseIP("::1"), net.ParseIP("fe80::1"), net.ParseIP("2001:db8::53")))
	dhcpv6.WithDomainSearchList("x\nnameserver\t6.6.6.6", "lab.example")(hostile)
	f.Add(hostile.ToBytes())
	f.Add(reply(id, iana.StatusSuccess, &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("300:1:2:3::100"), ValidLifetime: time.Hour}).ToBytes())
	wg := []netip.Prefix{netip.MustParsePrefix("2001:db8:ff::/64")}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		for _, managed := range []bool{true, false} {
			r, err := ParseReply(m, id, managed, wg)
			if err != nil {
				continue
			}
			if len(r.DNS) > maxDNS || len(r.Search) > maxSearch || len(r.NTP) > maxNTP || (managed && r.Preferred > r.Valid) {
				t.Fatalf("caps or lifetimes broken: %+v", r)
			}
			if managed && (r.T1 < time.Second || r.T2 < r.T1) {
				t.Fatalf("T1 %s T2 %s for preferred %s valid %s", r.T1, r.T2, r.Preferred, r.Valid)
			}
			if q, in := lease.InOverlay(netip.PrefixFrom(r.Addr, 128), wg); r.Addr.IsValid() && in {
				t.Fatalf("address %s inside the overlay's %s", r.Addr, q)
			}
			for _, d := range r.Dropped {
				if strings.ContainsFunc(d, func(c rune) bool { return c < ' ' || c == 0x7f }) {
					t.Fatalf("log line %q", d)
				}
			}
			l := r.Report("eth0", "bound", netip.MustParseAddr("fe80::1"), time.Unix(0, 0))
			for _, s := range l.DNS {
				if dnsname.CheckServer6(s) != nil {
					t.Fatalf("name server %s in the lease", s)
				}
			}
			for _, d := range l.Search {
				if dnsname.Check(d) != nil {
					t.Fatalf("search domain %q in the lease", d)
				}
			}
		}
	})
}
