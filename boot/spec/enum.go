package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// Enum is one of a few named values, W's words by value. String gives the
// word; MarshalText and UnmarshalText carry it through JSON (the hand-over
// to the daemon), where an unknown word or value is an error, never a
// silent default.
type Enum[W words] uint8

// words is an Enum's list of words, by value.
type words interface{ words() []string }

func (e Enum[W]) String() string {
	if ws := wordsOf[W](); int(e) < len(ws) {
		return ws[e]
	}
	return "invalid(" + strconv.Itoa(int(e)) + ")"
}

func (e Enum[W]) MarshalText() ([]byte, error) {
	ws := wordsOf[W]()
	if int(e) >= len(ws) {
		return nil, fmt.Errorf("invalid value %d (want 0..%d)", e, len(ws)-1)
	}
	return []byte(ws[e]), nil
}

func (e *Enum[W]) UnmarshalText(b []byte) error {
	v, err := parseEnum[W](string(b))
	if err != nil {
		return fmt.Errorf("%q: %w", b, err)
	}
	*e = v
	return nil
}

func wordsOf[W words]() []string {
	var w W
	return w.words()
}

// parseEnum takes an Enum's word, exactly.
func parseEnum[W words](s string) (Enum[W], error) {
	ws := wordsOf[W]()
	for i, w := range ws {
		if s == w {
			return Enum[W](i), nil
		}
	}
	var want []string
	for _, w := range ws {
		if w != "" {
			want = append(want, w)
		}
	}
	return 0, fmt.Errorf("want one of %s", strings.Join(want, ", "))
}

// Method is how an ip= configures its links (dracut.cmdline(7) autoconf,
// the kernel's nfsroot ip=; boot/cmdline maps dracut's words to these).
// The zero value is MethodOn.
type Method = Enum[methodWords]

const (
	MethodOn      Method = iota // DHCPv4 and SLAAC (with DHCPv6 as the RA says): dracut's "any available source"
	MethodDHCP                  // DHCPv4 only
	MethodDHCP6                 // DHCPv6 at once, no SLAAC
	MethodAuto6                 // SLAAC, and DHCPv6 when the RA's M or O flag asks
	MethodEither6               // SLAAC and DHCPv6 at once, both kept
	MethodStatic                // the ip='s own address (autoconf none with a client address)
	MethodOff                   // nothing (autoconf none/off without an address)
)

type methodWords struct{}

func (methodWords) words() []string {
	return []string{"on", "dhcp", "dhcp6", "auto6", "either6", "static", "off"}
}

// YggMode is netinit.ygg=. The zero value is YggAuto.
type YggMode = Enum[yggWords]

const (
	YggAuto        YggMode = iota // when the node has no public IPv6
	YggOn                         // always
	YggOff                        // never
	YggAutoInbound                // unless a reflector proved IPv6 inbound reachability
)

type yggWords struct{}

func (yggWords) words() []string { return []string{"auto", "on", "off", "auto-inbound"} }

// ParseYggMode parses netinit.ygg='s value.
var ParseYggMode = parseEnum[yggWords]

// WGMode is netinit.wg=. The zero value is WGAuto.
type WGMode = Enum[wgWords]

const (
	WGAuto WGMode = iota // when peers are given and the node has no public IPv6
	WGOn                 // whenever peers are given
	WGOff                // never
)

type wgWords struct{}

func (wgWords) words() []string { return []string{"auto", "on", "off"} }

// ParseWGMode parses netinit.wg='s value.
var ParseWGMode = parseEnum[wgWords]

// LLDPMode is netinit.lldp=: what netinit does with LLDP (IEEE 802.1AB)
// on its physical links (boot/l2). The zero value is LLDPListen.
type LLDPMode = Enum[lldpWords]

const (
	LLDPListen LLDPMode = iota // record what the switches announce; transmit nothing
	LLDPSend                   // listen, and announce the node (hostname, port) every 30 s
	LLDPOff                    // neither: no LLDP socket (spanning-tree BPDUs are still heard)
)

type lldpWords struct{}

func (lldpWords) words() []string { return []string{"listen", "send", "off"} }

// ParseLLDPMode parses netinit.lldp='s value.
var ParseLLDPMode = parseEnum[lldpWords]

// LACPMode is netinit.bond=auto|off: whether netinit forms IEEE 802.1AX
// (802.3ad) bonds from the LACPDUs its NICs hear. The zero value is
// LACPDefault: not given (on at a 0-OS boot, cmdline.LoadBoot).
type LACPMode = Enum[lacpWords]

const (
	LACPDefault LACPMode = iota // not given
	LACPAuto                    // listen, and bond the ports one partner answers on
	LACPOff                     // never
)

type lacpWords struct{}

func (lacpWords) words() []string { return []string{"", "auto", "off"} }

// Root is netinit.root='s kind. The zero value is RootAuto.
type Root = Enum[rootWords]

const (
	RootAuto  Root = iota // not given: a tmpfs root when the next stage is zinit
	RootTmpfs             // move into a tmpfs root
	RootOff               // stay on the initramfs
)

type rootWords struct{}

func (rootWords) words() []string { return []string{"auto", "tmpfs", "off"} }

// Test is netinit.test=: a test mode prints the state between markers and
// powers off instead of handing off. The zero value is TestNone.
type Test = Enum[testWords]

const (
	TestNone        Test = iota // not a test: hand off
	TestPoweroff                // print and power off (QEMU tests)
	TestPanic                   // also panic in PID 1's bring-up (it must be contained)
	TestDaemonCrash             // also kill the daemon's first start (PID 1 must restart it)
)

type testWords struct{}

func (testWords) words() []string { return []string{"", "poweroff", "panic", "daemon-crash"} }

// ParseTest parses netinit.test='s value ("" is TestNone).
var ParseTest = parseEnum[testWords]

// Proto is the transport of a netinit.allow= port. The zero value is TCP.
type Proto = Enum[protoWords]

const (
	TCP Proto = iota
	UDP
)

type protoWords struct{}

func (protoWords) words() []string { return []string{"tcp", "udp"} }

// ParseProto parses "tcp" or "udp", in any case.
func ParseProto(s string) (Proto, error) { return parseEnum[protoWords](strings.ToLower(s)) }
