package cmdline

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threefoldtech/netinit/boot/runmode"
	"github.com/threefoldtech/netinit/boot/spec"
)

// A key applies one value to a Spec. parse must not touch the Spec: it
// returns a closure that does, so that a malformed value changes nothing.
// fresh is true for the first valid occurrence of a list key in a source:
// the list inherited from a lower source is replaced, not extended.
type key struct {
	list bool
	// flag: the key may be given without a value (booleans).
	flag  bool
	parse func(val string, hasVal bool) (apply func(s *spec.Spec, fresh bool), err error)
}

// netinitKeys are the keys under the "netinit." prefix, by canonical name
// ('_' rather than '-').
var netinitKeys map[string]key

// kernelKeys are the unprefixed keys netinit shares with dracut and PXE.
var kernelKeys map[string]key

func init() {
	netinitKeys = map[string]key{
		"next": {parse: scalar(parseNext, func(s *spec.Spec, v []string) {
			s.Next, s.NextArgs = v[0], nil // nil, not empty: the same after the hand-over's JSON
			if len(v) > 1 {
				s.NextArgs = v[1:]
			}
		})},
		"root": {parse: scalar(parseRoot, func(s *spec.Spec, v root) { s.Root, s.RootSize = v.kind, v.size })},
		"test": {parse: scalar(spec.ParseTest, func(s *spec.Spec, v spec.Test) { s.Test = v })},
		"uplink": {parse: scalar(func(v string) (string, error) {
			return v, validIfname(v)
		}, func(s *spec.Spec, v string) { s.Uplink = v })},
		"ignore":        {list: true, parse: commaList(parseGlob, func(s *spec.Spec) *[]string { return &s.Ignore })},
		"timeout":       {parse: scalar(parseTimeout(false), func(s *spec.Spec, v time.Duration) { s.Timeout = v })},
		"ra_timeout":    {parse: scalar(parseTimeout(true), func(s *spec.Spec, v time.Duration) { s.RATimeout = v })},
		"dhcp4_timeout": {parse: scalar(parseTimeout(true), func(s *spec.Spec, v time.Duration) { s.DHCP4Timeout = v })},
		"mtu":           {parse: scalar(parseMTU, func(s *spec.Spec, v int) { s.MTU = v })},
		"keydir":        {parse: scalar(parseAbsPath, func(s *spec.Spec, v string) { s.KeyDir = v })},
		"ygg":           {parse: scalar(lower(spec.ParseYggMode), func(s *spec.Spec, v spec.YggMode) { s.Ygg = v })},
		"ygg.peers":     {list: true, parse: commaList(parseYggPeer, func(s *spec.Spec) *[]string { return &s.YggPeers })},
		"ygg.multicast": {flag: true, parse: boolean(func(s *spec.Spec, v bool) { s.YggMulticast = v })},
		"ygg.seed":      {parse: scalar(parseAbsPath, func(s *spec.Spec, v string) { s.YggSeed = v })},
		"ygg.listen":    {list: true, parse: commaList(parseYggListen, func(s *spec.Spec) *[]string { return &s.YggListen })},
		"identity":      {parse: scalar(parseAbsPath, func(s *spec.Spec, v string) { s.Identity = v })},
		"ygg.lan_peers": {parse: scalar(parseLANPeers, func(s *spec.Spec, v int) { s.YggLANPeers = v })},
		"ygg.takeback":  {parse: scalar(parseTimeout(false), func(s *spec.Spec, v time.Duration) { s.YggTakeBack = v })},
		"wg":            {parse: scalar(lower(spec.ParseWGMode), func(s *spec.Spec, v spec.WGMode) { s.WG = v })},
		"lldp":          {parse: scalar(lower(spec.ParseLLDPMode), func(s *spec.Spec, v spec.LLDPMode) { s.LLDP = v })},
		"wg.peer":       {list: true, parse: single(parseWGPeer, func(s *spec.Spec) *[]spec.WGPeer { return &s.WGPeers })},
		"wg.address": {list: true, parse: commaList(parseIfacePrefix,
			func(s *spec.Spec) *[]netip.Prefix { return &s.WGAddress })},
		"wg.allowed": {list: true, parse: commaList(parseAllowed,
			func(s *spec.Spec) *[]netip.Prefix { return &s.WGAllowed })},
		"allow":            {list: true, parse: commaList(parsePort, func(s *spec.Spec) *[]spec.Port { return &s.Allow })},
		"probe.targets":    {list: true, parse: commaList(parseHostPort, func(s *spec.Spec) *[]string { return &s.ProbeTargets })},
		"probe.reflectors": {list: true, parse: commaList(parseHostPort, func(s *spec.Spec) *[]string { return &s.ProbeReflectors })},
		"ntp":              {list: true, parse: commaList(parseHost, func(s *spec.Spec) *[]string { return &s.NTP })},
		// netinit.bond=auto|off, or a bond as bond= has it.
		"bond": {list: true, parse: func(val string, _ bool) (func(*spec.Spec, bool), error) {
			t, err := parseNetinitBond(val)
			if err != nil {
				return nil, err
			}
			if t.lacp == spec.LACPDefault {
				return addBond(t.bond), nil
			}
			return func(s *spec.Spec, _ bool) { s.LACP = t.lacp }, nil
		}},
		"bridge": {parse: scalar(func(v string) (string, error) {
			if v == spec.NoBridge {
				return v, nil
			}
			return v, validIfname(v)
		}, func(s *spec.Spec, v string) { s.Bridge = v })},
	}
	kernelKeys = map[string]key{
		"ip":         {list: true, parse: single(parseIP, func(s *spec.Spec) *[]spec.IPConfig { return &s.IP })},
		"nameserver": {list: true, parse: single(parseNameserver, func(s *spec.Spec) *[]netip.Addr { return &s.Nameserver })},
		"vlan":       {list: true, parse: single(parseVLAN, func(s *spec.Spec) *[]spec.VLAN { return &s.VLANs })},
		"bond": {list: true, parse: func(val string, _ bool) (func(*spec.Spec, bool), error) {
			b, err := parseBond(val)
			if err != nil {
				return nil, err
			}
			return addBond(b), nil
		}},
		"BOOTIF": {parse: scalar(parseBootIF, func(s *spec.Spec, v net.HardwareAddr) { s.BootIF = v })},
		// 0-OS's own keys (zosbase pkg/environment). Its other keys
		// (farmer_id, secret, zos-debug, ...) are not netinit's and are
		// ignored without a word, like any unprefixed key.
		"runmode":   {parse: scalar(runmode.Parse, func(s *spec.Spec, v runmode.Mode) { s.RunMode = v })},
		"vlan:priv": {parse: scalar(parseZOSVLAN, func(s *spec.Spec, v int) { s.VLANPriv = v })},
		"vlan:pub":  {parse: scalar(parseZOSVLAN, func(s *spec.Spec, v int) { s.VLANPub = v })},
		// 0-OS's flavour (zosbase pkg/kernel: the last version= wins);
		// v3light and v4 are network-light nodes (spec.Boot.Light).
		"version": {parse: scalar(parseZOSVersion, func(s *spec.Spec, v string) { s.ZOSVersion = v })},
	}
}

// applier applies the tokens of one source.
type applier struct {
	s        *spec.Spec
	config   bool            // tokens come from the config file
	fresh    map[string]bool // list keys already replaced in this source
	problems []Problem
}

func newApplier(s *spec.Spec, config bool) *applier {
	return &applier{s: s, config: config, fresh: map[string]bool{}}
}

var (
	errUnknown = errors.New("unknown netinit key")
	errNoValue = errors.New("needs a value (key=value)")
	// Every value is text, and goes into JSON (the hand-over to the
	// daemon, the state), which cannot carry other bytes.
	errNotUTF8 = errors.New("not valid UTF-8")
)

// token applies one raw token from source (a command line token, or a
// config file line).
func (a *applier) token(source, tok string) {
	var k, v string
	var hasVal bool
	if a.config {
		k, v, hasVal = splitConfigLine(tok)
	} else {
		k, v, hasVal = splitKV(tok)
	}
	name, def, ok := a.lookup(k)
	if !ok {
		if name != "" {
			a.problems = append(a.problems, Problem{source, tok, errUnknown, k, v, hasVal})
		}
		return
	}
	if !hasVal && !def.flag {
		a.problems = append(a.problems, Problem{source, tok, errNoValue, k, v, hasVal})
		return
	}
	if !utf8.ValidString(v) {
		a.problems = append(a.problems, Problem{source, tok, errNotUTF8, k, v, hasVal})
		return
	}
	apply, err := def.parse(v, hasVal)
	if err != nil {
		a.problems = append(a.problems, Problem{source, tok, err, k, v, hasVal})
		return
	}
	fresh := def.list && !a.fresh[name]
	a.fresh[name] = true
	apply(a.s, fresh)
	give(a.s, name)
}

// lookup finds the key definition. name is the canonical full name; it is
// "" for a token that is not netinit's (ignored without a problem).
func (a *applier) lookup(k string) (name string, def key, ok bool) {
	rest, prefixed := strings.CutPrefix(k, "netinit.")
	if prefixed || a.config {
		canon := strings.ReplaceAll(rest, "-", "_")
		if def, ok := netinitKeys[canon]; ok {
			return "netinit." + canon, def, true
		}
		if !prefixed {
			if def, ok := kernelKeys[k]; ok {
				return k, def, true
			}
		}
		if k == "" {
			k = "(empty)"
		}
		return k, key{}, false
	}
	if def, ok := kernelKeys[k]; ok {
		return k, def, true
	}
	return "", key{}, false
}

// scalar builds a key whose value replaces the previous one.
func scalar[T any](parse func(string) (T, error), set func(*spec.Spec, T)) func(string, bool) (func(*spec.Spec, bool), error) {
	return func(val string, _ bool) (func(*spec.Spec, bool), error) {
		v, err := parse(val)
		if err != nil {
			return nil, err
		}
		return func(s *spec.Spec, _ bool) { set(s, v) }, nil
	}
}

// single builds a repeatable key with one element per occurrence.
func single[T any](parse func(string) (T, error), field func(*spec.Spec) *[]T) func(string, bool) (func(*spec.Spec, bool), error) {
	return func(val string, _ bool) (func(*spec.Spec, bool), error) {
		v, err := parse(val)
		if err != nil {
			return nil, err
		}
		return func(s *spec.Spec, fresh bool) {
			l := field(s)
			if fresh {
				*l = nil
			}
			*l = append(*l, v)
		}, nil
	}
}

// commaList builds a key whose value is a comma-separated list; one bad
// element drops the whole token. Duplicates are kept once.
func commaList[T comparable](parse func(string) (T, error), field func(*spec.Spec) *[]T) func(string, bool) (func(*spec.Spec, bool), error) {
	return func(val string, _ bool) (func(*spec.Spec, bool), error) {
		var vs []T
		for i, e := range strings.Split(val, ",") {
			if e == "" {
				return nil, fmt.Errorf("element %d is empty", i+1)
			}
			v, err := parse(e)
			if err != nil {
				return nil, fmt.Errorf("element %d %q: %w", i+1, e, err)
			}
			if !slices.Contains(vs, v) {
				vs = append(vs, v)
			}
		}
		return func(s *spec.Spec, fresh bool) {
			l := field(s)
			if fresh {
				*l = nil
			}
			for _, v := range vs {
				if !slices.Contains(*l, v) {
					*l = append(*l, v)
				}
			}
		}, nil
	}
}

func boolean(set func(*spec.Spec, bool)) func(string, bool) (func(*spec.Spec, bool), error) {
	return func(val string, hasVal bool) (func(*spec.Spec, bool), error) {
		v := true
		if hasVal {
			switch strings.ToLower(val) {
			case "on", "yes", "true", "1":
			case "off", "no", "false", "0":
				v = false
			default:
				return nil, errors.New("not a boolean (want on or off)")
			}
		}
		return func(s *spec.Spec, _ bool) { set(s, v) }, nil
	}
}

// lower makes an enum's parser take its words in any case.
func lower[T any](parse func(string) (T, error)) func(string) (T, error) {
	return func(v string) (T, error) { return parse(strings.ToLower(v)) }
}

// parseNext takes the next stage and its arguments, separated by
// whitespace (quote the value on the command line: netinit.next="/sbin/zinit
// init").
func parseNext(v string) ([]string, error) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return nil, errors.New("empty path")
	}
	if _, err := parseAbsPath(f[0]); err != nil {
		return nil, err
	}
	return f, nil
}

// root is netinit.root='s value: tmpfs[:SIZE] or off. SIZE is tmpfs'
// size= (bytes with an optional k, m or g suffix, or a percentage of RAM).
type root struct {
	kind spec.Root
	size string
}

func parseRoot(v string) (root, error) {
	kind, size, sized := strings.Cut(v, ":")
	switch {
	case kind == "off" && !sized:
		return root{kind: spec.RootOff}, nil
	case kind != "tmpfs":
		return root{}, errors.New("want tmpfs, tmpfs:SIZE or off")
	case !sized:
		return root{kind: spec.RootTmpfs}, nil
	}
	num := strings.TrimRight(strings.ToLower(size), "kmg%")
	if len(size)-len(num) > 1 || num == "" || strings.Trim(num, "0123456789") != "" || len(num) > 12 {
		return root{}, fmt.Errorf("size %q: want a number with an optional k, m, g or %% (tmpfs size=)", size)
	}
	if n, _ := strconv.ParseUint(num, 10, 64); n == 0 {
		return root{}, fmt.Errorf("size %q: must be more than 0", size)
	}
	return root{kind: spec.RootTmpfs, size: size}, nil
}

func parseAbsPath(v string) (string, error) {
	switch {
	case v == "":
		return "", errors.New("empty path")
	case !strings.HasPrefix(v, "/"):
		return "", errors.New("not an absolute path")
	case strings.IndexByte(v, 0) >= 0:
		return "", errors.New("NUL byte in path")
	}
	return v, nil
}

func parseGlob(v string) (string, error) {
	if len(v) > 255 {
		return "", errors.New("pattern too long")
	}
	if _, err := path.Match(v, ""); err != nil {
		return "", fmt.Errorf("not a valid glob: %w", err)
	}
	return v, nil
}

// maxTimeout bounds the deadlines: a typo must not make a node wait for
// days.
const maxTimeout = 24 * time.Hour

func parseTimeout(zeroOK bool) func(string) (time.Duration, error) {
	return func(v string) (time.Duration, error) {
		var d time.Duration
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			d = time.Duration(n) * time.Second
		} else if d, err = time.ParseDuration(v); err != nil {
			return 0, errors.New("not a duration (want e.g. 60s)")
		}
		switch {
		case d < 0:
			return 0, errors.New("negative duration")
		case d == 0 && !zeroOK:
			return 0, errors.New("must be more than 0")
		case d > maxTimeout:
			return 0, fmt.Errorf("more than %v", maxTimeout)
		}
		return d, nil
	}
}

func parseMTU(v string) (int, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < 68 || n > 65535 {
		// 68: the IPv4 minimum (RFC 791); 65535: the IP total length.
		return 0, errors.New("not an MTU (want 68..65535)")
	}
	return int(n), nil
}

// MaxLANPeers bounds netinit.ygg.lan_peers=.
const MaxLANPeers = 1024

func parseLANPeers(v string) (int, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 1 || n > MaxLANPeers {
		// 1 cannot keep a LAN connected (a ring needs 2); 0 = no bound.
		return 0, fmt.Errorf("not a LAN peer count (want 0 for no bound, or 2..%d)", MaxLANPeers)
	}
	return int(n), nil
}

// yggSchemes are the Yggdrasil peer URI schemes that carry host:port.
var yggSchemes = []string{"tcp", "tls", "quic", "ws", "wss", "socks", "sockstls"}

func parseYggPeer(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", errors.New("not a URI")
	}
	if !slices.Contains(yggSchemes, u.Scheme) {
		return "", fmt.Errorf("scheme %q: want one of %s", u.Scheme, strings.Join(yggSchemes, ", "))
	}
	if u.Host == "" {
		return "", errors.New("no host:port (want e.g. tls://host:port)")
	}
	if _, err := parseHostPort(u.Host); err != nil {
		return "", err
	}
	return v, nil
}

// parseYggListen takes a Yggdrasil listener URI: tcp://, tls:// or
// quic:// with an address to bind ([::]:9943, 0.0.0.0:9943, [::1]:0 ...).
func parseYggListen(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", errors.New("not a URI")
	}
	if !slices.Contains([]string{"tcp", "tls", "quic"}, u.Scheme) {
		return "", fmt.Errorf("scheme %q: want tcp, tls or quic", u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", errors.New("no [address]:port (want e.g. tcp://[::]:9943)")
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("listen address %q: not an IP address", host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return "", fmt.Errorf("port %q: not a port", port)
	}
	return v, nil
}

// parseZOSVLAN takes 0-OS's vlan:priv= / vlan:pub= value: a VLAN ID, or
// none/untagged/un (zosbase pkg/environment). 0 means untagged.
func parseZOSVLAN(v string) (int, error) {
	switch v {
	case "none", "untagged", "un":
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n < 1 || n > 4094 {
		// 0 and 4095 are reserved (IEEE 802.1Q, 9.6).
		return 0, errors.New("want a VLAN ID 1..4094, or none/untagged")
	}
	return int(n), nil
}

// parseZOSVersion takes 0-OS's version= value: a short word (v3,
// v3light, v4, ...).
func parseZOSVersion(v string) (string, error) {
	if v == "" || len(v) > 32 || strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	}) >= 0 {
		return "", errors.New("want a 0-OS version such as v3, v3light or v4")
	}
	return v, nil
}

func parseWGPeer(v string) (spec.WGPeer, error) {
	k, ep, ok := strings.Cut(v, "@")
	if !ok {
		return spec.WGPeer{}, errors.New("want PUBKEY@HOST:PORT")
	}
	if b, err := base64.StdEncoding.Strict().DecodeString(k); err != nil || len(b) != 32 {
		return spec.WGPeer{}, fmt.Errorf("public key %q: not base64 of 32 bytes", k)
	}
	hp, err := parseHostPort(ep)
	if err != nil {
		return spec.WGPeer{}, fmt.Errorf("endpoint %q: %w", ep, err)
	}
	return spec.WGPeer{PublicKey: k, Endpoint: hp}, nil
}

// parseIfacePrefix: an interface address with its prefix (198.51.100.1/24).
func parseIfacePrefix(v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, errors.New("not an address/prefix")
	}
	if !isUnicast(p.Addr()) {
		return netip.Prefix{}, errors.New("not a unicast address")
	}
	return p, nil
}

// parseAllowed: a network; host bits are cleared as wg(8) does.
func parseAllowed(v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, errors.New("not an address/prefix")
	}
	return p.Masked(), nil
}

func parsePort(v string) (spec.Port, error) {
	ps, proto, ok := strings.Cut(v, "/")
	if !ok {
		return spec.Port{}, errors.New("want PORT/tcp or PORT/udp")
	}
	pr, err := spec.ParseProto(proto)
	if err != nil {
		return spec.Port{}, fmt.Errorf("protocol %q: want tcp or udp", strings.ToLower(proto))
	}
	n, err := parsePortNumber(ps)
	if err != nil {
		return spec.Port{}, err
	}
	return spec.Port{Port: n, Proto: pr}, nil
}

func parseNameserver(v string) (netip.Addr, error) {
	a, err := parseAddr(v)
	if err != nil {
		return netip.Addr{}, err
	}
	if !isUnicast(a) {
		return netip.Addr{}, errors.New("not a unicast address")
	}
	return a, nil
}

func parseVLAN(v string) (spec.VLAN, error) {
	name, parent, ok := strings.Cut(v, ":")
	if !ok {
		return spec.VLAN{}, errors.New("want NAME:PARENT")
	}
	if err := validIfname(name); err != nil {
		return spec.VLAN{}, fmt.Errorf("name %q: %w", name, err)
	}
	if err := validIfname(parent); err != nil {
		return spec.VLAN{}, fmt.Errorf("parent %q: %w", parent, err)
	}
	// dracut's four naming schemes: vlan0005, vlan5, eth0.0005, eth0.5.
	var digits string
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		digits = name[i+1:]
	} else if d, ok := strings.CutPrefix(name, "vlan"); ok {
		digits = d
	}
	id, err := strconv.ParseUint(digits, 10, 16)
	if digits == "" || err != nil {
		return spec.VLAN{}, fmt.Errorf("name %q: no VLAN ID in it (want vlanN or PARENT.N)", name)
	}
	// IEEE 802.1Q: 0 means priority-tagged only, 4095 is reserved.
	if id < 1 || id > 4094 {
		return spec.VLAN{}, fmt.Errorf("name %q: VLAN ID %d out of 1..4094", name, id)
	}
	if name == parent {
		return spec.VLAN{}, errors.New("name equals parent")
	}
	return spec.VLAN{Name: name, Parent: parent, ID: int(id)}, nil
}
