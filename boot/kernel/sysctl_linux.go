package kernel

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// PrepareIPv6 configures the kernel's IPv6 behaviour of link, for
// netinit's own router discovery (boot/ra). Call it before the link is
// set up:
//   - accept_ra=0, autoconf=0: netinit, not the kernel, acts on RAs;
//   - optimistic_dad=1, use_optimistic=1: addresses are usable while DAD
//     runs (RFC 4429), so the link-local address can send the first Router
//     Solicitation at once and a SLAAC address is usable at once;
//   - addr_gen_mode=0: the kernel still makes the EUI-64 link-local address
//     (RFC 4862 section 5.3) when the link comes up.
func PrepareIPv6(link string) error {
	for _, kv := range [][2]string{
		{"disable_ipv6", "0"},
		{"accept_ra", "0"},
		{"autoconf", "0"},
		{"optimistic_dad", "1"},
		{"use_optimistic", "1"},
		{"addr_gen_mode", "0"},
	} {
		if err := SetIPv6Conf(link, kv[0], kv[1]); err != nil {
			return fmt.Errorf("preparing IPv6 on %s: %w", link, err)
		}
	}
	return nil
}

// SetIPv6Conf sets /proc/sys/net/ipv6/conf/LINK/KEY to value, leaving it
// alone when it already holds it.
func SetIPv6Conf(link, key, value string) error {
	p := filepath.Join("/proc/sys/net/ipv6/conf", link, key)
	if cur, err := os.ReadFile(p); err == nil && slices.Equal(bytes.TrimSpace(cur), []byte(value)) {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("%s=%s on %s: %w", key, value, link, err)
	}
	return nil
}

// PrepareIPv6 is the package function, as a method of the Linux kernel.
func (Netlink) PrepareIPv6(link string) error { return PrepareIPv6(link) }
