package dhcp4

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/dnsname"
)

// FuzzLease feeds whatever dhcpv4.FromBytes makes of arbitrary bytes into
// the lease validation and route planning: it must never panic, and what
// it accepts must be installable.
func FuzzLease(f *testing.F) {
	f.Add(goodACK(f).ToBytes())
	f.Add(goodACK(f, raw(dhcpv4.OptionClasslessStaticRoute, 24, 198, 51, 100, 192, 0, 2, 254, 0, 203, 0, 113, 1),
		dhcpv4.WithDomainSearchList("example.com")).ToBytes())
	f.Add(goodACK(f, dhcpv4.WithYourIP(net.IPv4bcast)).ToBytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		b, err := parseLease(m, console.Discard)
		if err != nil {
			return
		}
		if e := checkUnicast(b.Addr.Addr()); e != nil || b.Addr.Bits() < 1 || b.Addr.Bits() > 32 {
			t.Fatalf("accepted address %s (%v)", b.Addr, e)
		}
		if !b.Server.Is4() || b.Server.IsUnspecified() || b.Server.IsMulticast() {
			t.Fatalf("accepted server %s", b.Server)
		}
		if b.Lease < 0 || (b.Lease > 0 && !(0 < b.T1 && b.T1 < b.T2 && b.T2 < b.Lease)) {
			t.Fatalf("bad times %v %v %v", b.Lease, b.T1, b.T2)
		}
		for _, d := range append(append([]netip.Addr{}, b.DNS...), b.NTP...) {
			if checkUnicast(d) != nil {
				t.Fatalf("accepted server address %s", d)
			}
		}
		if b.Hostname != "" && dnsname.CheckHost(b.Hostname) != nil {
			t.Fatalf("accepted hostname %q", b.Hostname)
		}
		for _, s := range b.Search {
			if dnsname.Check(s) != nil {
				t.Fatalf("accepted search domain %q", s)
			}
		}
		if b.MTU != 0 && (b.MTU < minMTU || b.MTU > 65535) {
			t.Fatalf("accepted MTU %d", b.MTU)
		}
		for _, r := range plan(b) {
			if !r.Dst.IsValid() || r.Dst != r.Dst.Masked() {
				t.Fatalf("route destination %s", r.Dst)
			}
			if r.Via.IsValid() && checkRouter(r.Via, b.Addr) != nil {
				t.Fatalf("route via %s", r.Via)
			}
		}
	})
}
