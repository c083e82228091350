// Package dnsname is the one validator for DNS names that come from
// outside: host names and search domains from DHCPv4 (options 12, 15, 119),
// DHCPv6 (option 24), Router Advertisements (RFC 8106 DNSSL) and the kernel
// command line; and for the IPv6 name servers (RFC 8106 RDNSS, DHCPv6
// option 23) that go into resolv.conf beside them. Every such name ends up in resolv.conf, the state file, the
// console or sethostname(2); a name that passes here contains only letters,
// digits, hyphens and dots, so it can neither add a line to resolv.conf nor
// carry a terminal escape.
package dnsname

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Limits from RFC 1035 section 2.3.4 (63-octet labels, 255-octet names,
// which is 253 characters in text form without the trailing dot) and the
// kernel's hostname limit (HOST_NAME_MAX, 64), what sethostname(2) takes.
const (
	MaxLabel    = 63
	MaxName     = 253
	MaxHostname = 64
)

// ErrInvalid is wrapped by every error of Check and CheckHost.
var ErrInvalid = errors.New("not an RFC 1123 host name")

// Check reports why s is not a valid DNS name in the RFC 1123 section 2.1
// sense (labels of letters, digits and hyphens that neither start nor end
// with a hyphen; a leading digit is allowed), or nil. One trailing dot (a
// fully qualified name) is accepted. The error quotes the offending part
// with %q, so it is safe to print.
func Check(s string) error {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return fmt.Errorf("%w (empty)", ErrInvalid)
	}
	if len(s) > MaxName {
		return fmt.Errorf("%w (%d characters, more than %d)", ErrInvalid, len(s), MaxName)
	}
	for _, l := range strings.Split(s, ".") {
		if err := checkLabel(l); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("%w (empty label)", ErrInvalid)
	case len(l) > MaxLabel:
		return fmt.Errorf("%w (label of %d characters, more than %d)", ErrInvalid, len(l), MaxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("%w (label %q starts or ends with '-')", ErrInvalid, l)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w (contains %q)", ErrInvalid, c)
		}
	}
	return nil
}

// CheckHost is Check plus the kernel's hostname length limit.
func CheckHost(s string) error {
	if err := Check(s); err != nil {
		return err
	}
	if n := len(strings.TrimSuffix(s, ".")); n > MaxHostname {
		return fmt.Errorf("%w (%d characters, more than the kernel's %d for a hostname)", ErrInvalid, n, MaxHostname)
	}
	return nil
}

// Normalize checks s and returns it in the form netinit stores: lower
// case, without the trailing dot.
func Normalize(s string) (string, error) {
	if err := Check(s); err != nil {
		return "", err
	}
	return strings.ToLower(strings.TrimSuffix(s, ".")), nil
}

// List normalizes a search list from the wire: invalid names are dropped
// and passed to drop (which logs them, quoted), duplicates are dropped
// silently, and at most max names are kept (0: no limit).
func List(names []string, max int, drop func(name string, err error)) []string {
	var out []string
	for _, n := range names {
		d, err := Normalize(n)
		if err != nil {
			if drop != nil {
				drop(n, err)
			}
			continue
		}
		if !slices.Contains(out, d) && (max == 0 || len(out) < max) {
			out = append(out, d)
		}
	}
	return out
}

// CheckServer6 reports why a is not usable as an IPv6 name server in
// resolv.conf, or nil. Only global unicast addresses are: a link-local
// one needs a zone that a server on the wire cannot name, and loopback
// (a hostile server pointing the node at itself), multicast, unspecified
// and v4-mapped addresses are no server on the link.
func CheckServer6(a netip.Addr) error {
	switch {
	case !a.Is6():
		return errors.New("not an IPv6 address")
	case a.Is4In6():
		return errors.New("is IPv4-mapped")
	case a.Zone() != "":
		return errors.New("has a zone")
	case !a.IsGlobalUnicast():
		return errors.New("is not global unicast")
	}
	return nil
}
