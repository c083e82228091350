package cmdline

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/threefoldtech/netinit/boot/dnsname"
)

// validIfname applies the kernel's dev_valid_name (net/core/dev.c): 1..15
// bytes (IFNAMSIZ-1), not "." or "..", no '/', ':' or whitespace.
func validIfname(n string) error {
	switch {
	case n == "":
		return errors.New("empty interface name")
	case len(n) > 15:
		return errors.New("interface name longer than 15 bytes")
	case n == "." || n == "..":
		return errors.New("not an interface name")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c == '/' || c == ':' || isSpace(c) || c < ' ' || c == 0x7f {
			return fmt.Errorf("interface name contains %q", c)
		}
	}
	return nil
}

// parseAddr parses an IP address, IPv6 optionally in brackets.
func parseAddr(v string) (netip.Addr, error) {
	if s, ok := strings.CutPrefix(v, "["); ok {
		s, ok = strings.CutSuffix(s, "]")
		if !ok {
			return netip.Addr{}, errors.New("unbalanced '['")
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() {
			return netip.Addr{}, errors.New("not an IPv6 address in brackets")
		}
		return a, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, errors.New("not an IP address")
	}
	return a, nil
}

// isUnicast: an address a host can use or talk to (not unspecified,
// multicast or the IPv4 limited broadcast).
func isUnicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// parseHost accepts a host name or an IP address (IPv6 with or without
// brackets) and returns it without brackets.
func parseHost(v string) (string, error) {
	if strings.HasPrefix(v, "[") || strings.Contains(v, ":") {
		a, err := parseAddr(v)
		if err != nil {
			return "", err
		}
		return a.String(), nil
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a.String(), nil
	}
	if err := dnsname.Check(v); err != nil {
		return "", err
	}
	return v, nil
}

// parseHostPort accepts HOST:PORT with HOST a name, an IPv4 or an [IPv6],
// and PORT decimal 1..65535. It returns the canonical form.
func parseHostPort(v string) (string, error) {
	h, p, err := net.SplitHostPort(v)
	if err != nil {
		return "", errors.New("not HOST:PORT (IPv6 in brackets)")
	}
	if _, err := parsePortNumber(p); err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if !isUnicast(a) {
			return "", errors.New("not a unicast address")
		}
		return net.JoinHostPort(a.String(), p), nil
	}
	if strings.Contains(h, ":") {
		return "", errors.New("not an IPv6 address")
	}
	if err := dnsname.Check(h); err != nil {
		return "", err
	}
	return net.JoinHostPort(h, p), nil
}

func parsePortNumber(p string) (uint16, error) {
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: want 1..65535", p)
	}
	return uint16(n), nil
}

// parseMAC parses a unicast link-layer address (colons, dashes or dots, as
// net.ParseMAC).
func parseMAC(v string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(v)
	if err != nil {
		return nil, errors.New("not a MAC address")
	}
	if m[0]&1 != 0 {
		return nil, errors.New("not a unicast MAC address")
	}
	zero := true
	for _, b := range m {
		zero = zero && b == 0
	}
	if zero {
		return nil, errors.New("all-zero MAC address")
	}
	return m, nil
}

// parseBootIF parses BOOTIF as pxelinux's IPAPPEND 2 and iPXE write it:
// the ARP hardware type (RFC 826; "01" Ethernet) and the address, all
// dash-separated. A plain MAC is accepted too.
func parseBootIF(v string) (net.HardwareAddr, error) {
	parts := strings.Split(v, "-")
	if len(parts) == 7 || len(parts) == 21 {
		htype, addr := parts[0], strings.Join(parts[1:], "-")
		switch {
		case len(parts) == 7 && htype == "01":
			return parseMAC(addr)
		case len(parts) == 21 && htype == "20": // 32: InfiniBand (RFC 4391)
			m, err := net.ParseMAC(addr)
			if err != nil {
				return nil, errors.New("not an InfiniBand address")
			}
			return m, nil
		}
		return nil, fmt.Errorf("hardware type %q does not match a %d-byte address", htype, len(parts)-1)
	}
	mac, err := parseMAC(v)
	if err != nil {
		return nil, errors.New("not a MAC address (want 01-aa-bb-cc-dd-ee-ff or aa:bb:cc:dd:ee:ff)")
	}
	return mac, nil
}
