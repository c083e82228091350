package cmdline

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/threefoldtech/netinit/boot/spec"
)

// bondOptions are the bonding driver's options a bond= may set, by the
// kernel's names (Documentation/networking/bonding.rst); their values go
// to the kernel as given, which judges them.
var bondOptions = []string{
	"mode", "miimon", "lacp_rate", "xmit_hash_policy", "updelay", "downdelay", "peer_notif_delay",
	"use_carrier", "arp_interval", "arp_ip_target", "arp_validate", "arp_all_targets", "arp_missed_max",
	"primary", "primary_reselect", "fail_over_mac", "ad_select", "ad_actor_sys_prio", "ad_actor_system",
	"ad_user_port_key", "all_slaves_active", "min_links", "num_grat_arp", "num_unsol_na",
	"packets_per_slave", "resend_igmp", "tlb_dynamic_lb", "lp_interval", "ns_ip6_target", "coupled_control",
}

// bondModes are the bonding modes by their number (mode=4 is 802.3ad).
var bondModes = []string{"balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb"}

// colonMAC is a MAC address written with colons at the start of a
// string: bond= separates its fields with colons too.
var colonMAC = regexp.MustCompile(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}`)

// bondToken is what netinit.bond= said: auto or off, or a bond.
type bondToken struct {
	lacp spec.LACPMode // LACPDefault for a bond
	bond spec.Bond
}

// parseNetinitBond takes netinit.bond=: auto, off, or a bond as bond=
// has it.
func parseNetinitBond(v string) (bondToken, error) {
	switch strings.ToLower(v) {
	case "auto":
		return bondToken{lacp: spec.LACPAuto}, nil
	case "off":
		return bondToken{lacp: spec.LACPOff}, nil
	}
	b, err := parseBond(v)
	if err != nil {
		return bondToken{}, fmt.Errorf("%w (or auto, off)", err)
	}
	return bondToken{bond: b}, nil
}

// parseBond takes dracut's bond=NAME:PORT,PORT[:OPTIONS[:MTU]], OPTIONS
// comma-separated name=value. A port is an interface name, or a MAC
// address as BOOTIF= has it (01-aa-bb-cc-dd-ee-ff, aa-bb-cc-dd-ee-ff) or
// with colons (aa:bb:cc:dd:ee:ff: a colon inside a MAC does not end the
// field). Ports are required: netinit does not guess dracut's eth0,eth1.
func parseBond(v string) (spec.Bond, error) {
	const want = "want NAME:PORT,PORT[:OPTIONS[:MTU]]"
	name, rest, ok := strings.Cut(v, ":")
	if !ok || rest == "" {
		return spec.Bond{}, errors.New(want)
	}
	if err := validIfname(name); err != nil {
		return spec.Bond{}, fmt.Errorf("name %q: %w", name, err)
	}
	b := spec.Bond{Name: name}
	// The ports, up to the colon that ends the field.
	for {
		var port string
		port, rest = cutField(rest)
		p, err := parseBondPort(port)
		if err != nil {
			return spec.Bond{}, fmt.Errorf("port %d %q: %w", len(b.Ports)+1, port, err)
		}
		if p == name {
			return spec.Bond{}, fmt.Errorf("port %q is the bond itself", p)
		}
		if slices.Contains(b.Ports, p) {
			return spec.Bond{}, fmt.Errorf("port %q given twice", p)
		}
		b.Ports = append(b.Ports, p)
		if rest == "" || rest[0] == ':' {
			break
		}
		rest = rest[1:] // ','
	}
	if rest == "" {
		return b, nil
	}
	rest = rest[1:]
	// The options, up to the colon before the MTU; an option's value may
	// be a MAC with colons (ad_actor_system=).
	for rest != "" && rest[0] != ':' {
		opt, val, ok := strings.Cut(rest, "=")
		if !ok {
			return spec.Bond{}, fmt.Errorf("option %q: want name=value", rest)
		}
		if !slices.Contains(bondOptions, opt) {
			return spec.Bond{}, fmt.Errorf("option %q: not a bonding option (want one of %s)", opt, strings.Join(bondOptions, ", "))
		}
		val, rest = cutField(val)
		val, err := bondValue(opt, val)
		if err != nil {
			return spec.Bond{}, fmt.Errorf("option %s=%q: %w", opt, val, err)
		}
		b.Options = append(b.Options, spec.BondOption{Name: opt, Value: val})
		if rest != "" && rest[0] == ',' {
			rest = rest[1:]
			if rest == "" || rest[0] == ':' {
				return spec.Bond{}, errors.New("empty option")
			}
		}
	}
	if rest == "" {
		return b, nil
	}
	mtu, err := parseMTU(rest[1:])
	if err != nil {
		return spec.Bond{}, fmt.Errorf("MTU %q: %w", rest[1:], err)
	}
	b.MTU = mtu
	return b, nil
}

// parseBondPort takes a port: an interface name, or a MAC address
// (returned lower case, colon-separated).
func parseBondPort(p string) (string, error) {
	if strings.Count(p, "-") >= 5 || strings.Count(p, ":") == 5 {
		mac, err := parseBootIF(p)
		if err != nil {
			return "", err
		}
		return mac.String(), nil
	}
	return p, validIfname(p)
}

// bondValue checks an option's value: printable text without spaces (it
// goes to the kernel as is); a mode given by number is named, so that the
// engine and the state compare one spelling.
func bondValue(opt, val string) (string, error) {
	if val == "" || len(val) > 64 {
		return val, errors.New("empty or longer than 64 bytes")
	}
	for i := 0; i < len(val); i++ {
		if c := val[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return val, fmt.Errorf("contains %q", c)
		}
	}
	switch opt {
	case "mode":
		if n, err := strconv.Atoi(val); err == nil && n >= 0 && n < len(bondModes) {
			return bondModes[n], nil
		}
		if !slices.Contains(bondModes, val) {
			return val, fmt.Errorf("not a bonding mode (want one of %s)", strings.Join(bondModes, ", "))
		}
	case "lacp_rate":
		switch val {
		case "0":
			return "slow", nil
		case "1":
			return "fast", nil
		case "slow", "fast":
		default:
			return val, errors.New("want slow or fast")
		}
	}
	return val, nil
}

// addBond is the setter of bond= and netinit.bond=NAME:...: both add to
// one list, across the sources, a later bond of a name replacing the
// earlier (as dracut's last bond= of a name does).
func addBond(b spec.Bond) func(*spec.Spec, bool) {
	return func(s *spec.Spec, _ bool) {
		s.Bonds = slices.DeleteFunc(s.Bonds, func(o spec.Bond) bool { return o.Name == b.Name })
		s.Bonds = append(s.Bonds, b)
	}
}

// cutField cuts s at the first ',' or ':' that ends a field; a MAC
// written with colons at its start is one field (a port, or the value of
// ad_actor_system=). rest starts with the separator, or is empty.
func cutField(s string) (field, rest string) {
	if m := colonMAC.FindString(s); m != "" && (len(s) == len(m) || s[len(m)] == ',' || s[len(m)] == ':') {
		return m, s[len(m):]
	}
	i := strings.IndexAny(s, ",:")
	if i < 0 {
		i = len(s)
	}
	return s[:i], s[i:]
}
