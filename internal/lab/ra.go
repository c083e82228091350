package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// HostileWGSubnet stands for a WireGuard tunnel subnet
// (netinit.wg.address=) that HostileRA tries to route onto the Ethernet.
var HostileWGSubnet = netip.MustParsePrefix("2001:db8:ff::/64")

// HostileRA is a Router Advertisement from a neighbour on a managed link
// that tries to steer the node (issue 13): a DNSSL name that would add a
// nameserver line to resolv.conf and one with a terminal escape, RDNSS
// addresses that are no server on the link, RFC 4191 routes into the
// overlays (Yggdrasil's 200::/7, HostileWGSubnet), a RIO 8000::/1 that
// ndp v1.1.0 alone parses as ::/1, and PIOs into the overlays. What it
// carries that a node may take: prefix 2001:db8:1::/64 (L, A), search
// domain lab.example, server 2001:db8::53, the route 2001:db8:1:f000::/52
// (not a multiple of 8 bits) and a default route (lifetime 1800 s).
func HostileRA() *ndp.RouterAdvertisement {
	pio := func(p string) *ndp.PrefixInformation {
		pp := netip.MustParsePrefix(p)
		return &ndp.PrefixInformation{PrefixLength: uint8(pp.Bits()), OnLink: true, AutonomousAddressConfiguration: true,
			ValidLifetime: time.Hour, PreferredLifetime: time.Hour, Prefix: pp.Addr()}
	}
	rio := func(p string) *ndp.RouteInformation {
		pp := netip.MustParsePrefix(p)
		return &ndp.RouteInformation{PrefixLength: uint8(pp.Bits()), RouteLifetime: time.Hour, Prefix: pp.Addr()}
	}
	var dns []netip.Addr
	for _, a := range []string{"fe80::53", "::1", "::ffff:192.0.2.53", "ff02::1", "2001:db8::53"} {
		dns = append(dns, netip.MustParseAddr(a))
	}
	return &ndp.RouterAdvertisement{RouterLifetime: 1800 * time.Second, Options: []ndp.Option{
		&ndp.DNSSearchList{Lifetime: time.Hour, DomainNames: []string{"x\nnameserver\t6.6.6.6", "lab.example", "\x1b[2J.example"}},
		&ndp.RecursiveDNSServer{Lifetime: time.Hour, Servers: dns},
		rio("8000::/1"), rio("200::/8"), rio("200:1:2:3::/64"), rio("300:1:2:3::/64"),
		rio(HostileWGSubnet.String()), rio("2001:db8:1:f000::/52"),
		pio("200:1:2:3::/64"), pio(HostileWGSubnet.String()), pio("2001:db8:1::/64"),
	}}
}

// SendRAs multicasts ra to all nodes (ff02::1) on link from its
// link-local address every interval until ctx ends; a send that fails
// (the peer's link still down) is retried at the next interval. It runs inside a
// namespace (a re-executed test binary, see ns.Start).
func SendRAs(ctx context.Context, link string, ra *ndp.RouterAdvertisement, every time.Duration) error {
	ifi, err := net.InterfaceByName(link)
	if err != nil {
		return err
	}
	var conn *ndp.Conn
	for { // the link-local address may still be tentative
		if conn, _, err = ndp.Listen(ifi, ndp.LinkLocal); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("listen on %s: %w", link, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer conn.Close()
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: ifi.Index}
	for {
		// ENOBUFS while the peer's link is still down: the next one.
		_ = conn.WriteTo(ra, cm, netip.MustParseAddr("ff02::1"))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
