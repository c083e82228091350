// Package addr installs the addresses that the protocol clients (dhcp4,
// ra, dhcp6) and a static ip= configure, one way for all: the netip types
// they work with converted to netlink's, lifetimes to the kernel's seconds,
// and IPv6 Duplicate Address Detection done optimistically (RFC 4429),
// falling back to none where the kernel refuses that.
package addr

import (
	"math"
	"net"
	"net/netip"
	"time"
)

// Forever is the infinite lifetime: all ones in seconds, as RFC 4861
// section 4.6.2 and RFC 8415 section 7.7 spell infinity and the kernel
// takes it (INFINITY_LIFE_TIME). Any lifetime at least this long never
// expires.
const Forever = time.Duration(math.MaxUint32) * time.Second

// Finite is d, or 0 for Forever or more: a lease's lifetimes are 0 for
// "never expires".
func Finite(d time.Duration) time.Duration {
	if d >= Forever {
		return 0
	}
	return d
}

// Addr is one address to install on a link.
type Addr struct {
	Prefix netip.Prefix
	// Valid and Preferred are the lifetimes from now (RFC 4862 section
	// 5.5.4); Forever or more never expires. The kernel counts whole
	// seconds: they are rounded up, Valid to at least 1 s (0 would be
	// no lifetime at all to the kernel), Preferred may be 0 (deprecated).
	Valid, Preferred time.Duration
	// Broadcast is the IPv4 broadcast address (DHCP option 28); the zero
	// Addr for none.
	Broadcast netip.Addr
	// NoPrefixRoute leaves out the kernel's route to the prefix: SLAAC
	// and DHCPv6 addresses, whose on-link-ness comes from the RA's L flag
	// (RFC 4861 section 6.3.4, RFC 5942), not from the address.
	NoPrefixRoute bool
	// NoDAD skips Duplicate Address Detection for an IPv6 address (a
	// configured static address is usable at once). Otherwise an IPv6
	// address is added optimistic (RFC 4429: DAD runs, the address is
	// usable meanwhile; the kernel honours that where the link's
	// optimistic_dad is on, which kernel.PrepareIPv6 sets, and else runs plain
	// DAD).
	NoDAD bool
}

// Net is p as a net.IPNet, the type netlink takes.
func Net(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Seconds is a lifetime in the kernel's seconds: all ones for Forever or
// more, else rounded up and at least floor.
func Seconds(d time.Duration, floor int) int {
	if d >= Forever {
		return math.MaxUint32
	}
	return max(int((d+time.Second-1)/time.Second), floor)
}
