package cmdline

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/threefoldtech/netinit/boot/dnsname"
	"github.com/threefoldtech/netinit/boot/spec"
)

// ipMethods maps the autoconf words of dracut.cmdline(7) and the kernel's
// nfsroot ip= to spec.IPConfig.Method.
var ipMethods = map[string]spec.Method{
	"dhcp":    spec.MethodDHCP,
	"dhcp6":   spec.MethodDHCP6,
	"auto6":   spec.MethodAuto6,
	"either6": spec.MethodEither6,
	"on":      spec.MethodOn, // dracut: "any available source": DHCPv4 + auto6
	"any":     spec.MethodOn,
	"none":    spec.MethodOff, // MethodStatic once a client address is given
	"off":     spec.MethodOff,
}

// unsupportedMethods are valid dracut/kernel words netinit does not do.
var unsupportedMethods = map[string]bool{
	"ibft": true, "link6": true, "bootp": true, "rarp": true, "both": true, "single-dhcp": true,
}

func isMethodWord(s string) bool {
	_, ok := ipMethods[s]
	return ok || unsupportedMethods[s]
}

type fieldError struct {
	n    int
	name string
	val  string
	err  error
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("field %d (%s) %q: %v", e.n, e.name, e.val, e.err)
}

func (e *fieldError) Unwrap() error { return e.err }

func ferr(n int, name, val string, err error) error {
	return &fieldError{n: n, name: name, val: val, err: err}
}

// splitIPFields splits at ':' outside brackets.
func splitIPFields(v string) ([]string, error) {
	var fields []string
	in := false
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '[':
			if in {
				return nil, errors.New("nested '['")
			}
			in = true
		case ']':
			if !in {
				return nil, errors.New("']' without '['")
			}
			in = false
		case ':':
			if !in {
				fields = append(fields, v[start:i])
				start = i + 1
			}
		}
	}
	if in {
		return nil, errors.New("'[' without ']'")
	}
	return append(fields, v[start:]), nil
}

func parseMethod(n int, v string) (spec.Method, error) {
	if m, ok := ipMethods[v]; ok {
		return m, nil
	}
	if unsupportedMethods[v] {
		return 0, ferr(n, "autoconf", v, errors.New("not supported by netinit"))
	}
	if v == "" {
		return 0, ferr(n, "autoconf", v, errors.New("empty"))
	}
	return 0, ferr(n, "autoconf", v, errors.New("want dhcp, dhcp6, auto6, either6, on, any, none or off"))
}

// parseIP parses the value of one ip= token. Any error drops the token.
func parseIP(v string) (spec.IPConfig, error) {
	if v == "" {
		return spec.IPConfig{}, errors.New("empty")
	}
	f, err := splitIPFields(v)
	if err != nil {
		return spec.IPConfig{}, err
	}
	var c spec.IPConfig
	switch {
	case len(f) == 1:
		// ip=METHOD
		if c.Method, err = parseMethod(1, f[0]); err != nil {
			return spec.IPConfig{}, err
		}
		return c, nil
	case len(f) < 7 || isMethodWord(f[1]):
		// ip=DEV:METHOD[:[MTU][:MAC]]
		if _, err := parseAddr(f[0]); err == nil || strings.HasPrefix(f[0], "[") {
			return spec.IPConfig{}, ferr(1, "client", f[0], fmt.Errorf(
				"an address needs the long form CLIENT:[PEER]:[GATEWAY]:[NETMASK]:[HOSTNAME]:[DEV]:METHOD (7 fields, got %d)", len(f)))
		}
		if f[0] != "" {
			if err := validIfname(f[0]); err != nil {
				return spec.IPConfig{}, ferr(1, "interface", f[0], err)
			}
		}
		c.Device = f[0]
		if c.Method, err = parseMethod(2, f[1]); err != nil {
			return spec.IPConfig{}, err
		}
		if err := parseMTUMAC(&c, 3, f[2:]); err != nil {
			return spec.IPConfig{}, err
		}
		return c, nil
	}
	return parseIPLong(f)
}

// parseMTUMAC parses "[MTU][:MAC]" starting at field n. The MAC may have
// been split at its colons: six fields are joined back, as dracut does.
func parseMTUMAC(c *spec.IPConfig, n int, f []string) error {
	if len(f) == 0 {
		return nil
	}
	if f[0] != "" {
		mtu, err := parseMTU(f[0])
		if err != nil {
			return ferr(n, "mtu", f[0], err)
		}
		c.MTU = mtu
	}
	var mac string
	switch len(f) - 1 {
	case 0:
		return nil
	case 1:
		mac = f[1]
	case 6:
		mac = strings.Join(f[1:], ":")
	default:
		return fmt.Errorf("%d fields after field %d (mtu): want one MAC address", len(f)-1, n)
	}
	if mac == "" {
		return nil
	}
	m, err := parseMAC(mac)
	if err != nil {
		return ferr(n+1, "macaddr", mac, err)
	}
	c.MAC = m
	return nil
}

// parseIPLong parses
// CLIENT:[PEER]:[GATEWAY]:[NETMASK]:[HOSTNAME]:[DEV]:METHOD[:[MTU][:MAC]] and
// CLIENT:[PEER]:[GATEWAY]:[NETMASK]:[HOSTNAME]:[DEV]:METHOD[:[DNS1][:DNS2]].
func parseIPLong(f []string) (spec.IPConfig, error) {
	var c spec.IPConfig
	// Field 1: client address, maybe with its prefix.
	var client netip.Addr
	clientBits := -1
	if f[0] != "" {
		a, bits, err := parseClient(f[0])
		if err != nil {
			return spec.IPConfig{}, ferr(1, "client", f[0], err)
		}
		client, clientBits = a, bits
	}
	// Field 2: peer (point-to-point); dracut.cmdline(7) lets "/bits"
	// follow it to give the prefix length.
	if f[1] != "" {
		a, bits, err := parseClient(f[1])
		if err == nil && client.IsValid() && a.Is4() != client.Is4() {
			err = errors.New("address family differs from the client's")
		}
		if err == nil && bits >= 0 && clientBits >= 0 && bits != clientBits {
			err = fmt.Errorf("prefix disagrees with the client's /%d", clientBits)
		}
		if err != nil {
			return spec.IPConfig{}, ferr(2, "peer", f[1], err)
		}
		c.Peer = a
		if bits >= 0 {
			clientBits = bits
		}
	}
	// Field 3: gateway; 0.0.0.0 or :: is the kernel's "none".
	if f[2] != "" {
		a, err := parseAddr(f[2])
		if err == nil && !a.IsUnspecified() && !isUnicast(a) {
			err = errors.New("not a unicast address")
		}
		if err == nil && client.IsValid() && a.Is4() != client.Is4() {
			err = errors.New("address family differs from the client's")
		}
		if err != nil {
			return spec.IPConfig{}, ferr(3, "gateway", f[2], err)
		}
		if !a.IsUnspecified() {
			c.Gateway = a
		}
	}
	// Field 4: netmask, dotted or a prefix length.
	if f[3] != "" {
		is4 := !client.IsValid() || client.Is4()
		bits, err := parseNetmask(f[3], is4)
		if err == nil && clientBits >= 0 && bits != clientBits {
			err = fmt.Errorf("disagrees with the /%d given before", clientBits)
		}
		if err != nil {
			return spec.IPConfig{}, ferr(4, "netmask", f[3], err)
		}
		clientBits = bits
	}
	// Field 5: client host name.
	if f[4] != "" {
		if err := dnsname.CheckHost(f[4]); err != nil {
			return spec.IPConfig{}, ferr(5, "hostname", f[4], err)
		}
		c.Hostname = f[4]
	}
	// Field 6: interface.
	if f[5] != "" {
		if err := validIfname(f[5]); err != nil {
			return spec.IPConfig{}, ferr(6, "interface", f[5], err)
		}
		c.Device = f[5]
	}
	// Field 7: autoconf.
	m, err := parseMethod(7, f[6])
	if err != nil {
		return spec.IPConfig{}, err
	}
	c.Method = m
	if client.IsValid() {
		if clientBits < 0 {
			return spec.IPConfig{}, ferr(4, "netmask", f[3], errors.New("required with a client address"))
		}
		c.Address = netip.PrefixFrom(client, clientBits)
		if m == spec.MethodOff {
			c.Method = spec.MethodStatic
		}
	}
	// Fields 8, 9: DNS servers, or MTU and MAC. An address (dotted or in
	// brackets) selects the DNS form, as dracut's ip_to_var does.
	tail := f[7:]
	if len(tail) > 0 && (looksLikeIP(tail[0]) || tail[0] == "" && len(tail) == 2 && looksLikeIP(tail[1])) {
		if len(tail) > 2 {
			return spec.IPConfig{}, fmt.Errorf("%d fields: want at most 9 with dns1:dns2", len(f))
		}
		for i, d := range tail {
			if d == "" {
				continue
			}
			a, err := parseNameserver(d)
			if err != nil {
				return spec.IPConfig{}, ferr(8+i, "dns"+strconv.Itoa(i+1), d, err)
			}
			c.DNS = append(c.DNS, a)
		}
		return c, nil
	}
	if err := parseMTUMAC(&c, 8, tail); err != nil {
		return spec.IPConfig{}, err
	}
	return c, nil
}

func looksLikeIP(s string) bool {
	return strings.HasPrefix(s, "[") || strings.Contains(s, ".")
}

// parseClient parses the client (or peer) address, optionally with
// "/bits"; it returns bits -1 when there is no prefix.
func parseClient(v string) (netip.Addr, int, error) {
	s := v
	bracket := false
	if t, ok := strings.CutPrefix(s, "["); ok {
		s, ok = strings.CutSuffix(t, "]")
		if !ok {
			return netip.Addr{}, 0, errors.New("unbalanced '['")
		}
		bracket = true
	}
	bits := -1
	var a netip.Addr
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, 0, errors.New("not an address/prefix")
		}
		a, bits = p.Addr(), p.Bits()
	} else {
		var err error
		if a, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}, 0, errors.New("not an IP address")
		}
	}
	switch {
	case a.Is6() && !bracket:
		return netip.Addr{}, 0, errors.New("IPv6 address without brackets")
	case a.Is4() && bracket:
		return netip.Addr{}, 0, errors.New("IPv4 address in brackets")
	case a.Is4In6():
		return netip.Addr{}, 0, errors.New("IPv4-mapped IPv6 address")
	case a.Zone() != "":
		return netip.Addr{}, 0, errors.New("zone not allowed")
	case !isUnicast(a) || a.IsLoopback():
		return netip.Addr{}, 0, errors.New("not a unicast address")
	case bits == 0:
		return netip.Addr{}, 0, errors.New("prefix length 0")
	}
	return a, bits, nil
}

// parseNetmask returns the prefix length of a dotted mask (IPv4) or of a
// bare prefix length.
func parseNetmask(v string, is4 bool) (int, error) {
	max := 128
	if is4 {
		max = 32
	}
	if n, err := strconv.ParseUint(v, 10, 8); err == nil {
		if n < 1 || int(n) > max {
			return 0, fmt.Errorf("prefix length out of 1..%d", max)
		}
		return int(n), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return 0, errors.New("not a netmask (want 255.255.255.0 or a prefix length)")
	}
	if !is4 {
		return 0, errors.New("dotted netmask for an IPv6 address (use a prefix length)")
	}
	ones, bits := net.IPMask(a.AsSlice()).Size()
	if bits == 0 {
		return 0, errors.New("not a contiguous mask")
	}
	if ones == 0 {
		return 0, errors.New("prefix length 0")
	}
	return ones, nil
}
