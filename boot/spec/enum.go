package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// Method is how an ip= configures its links (dracut.cmdline(7) autoconf,
// the kernel's nfsroot ip=). The zero value is MethodOn.
type Method uint8

const (
	MethodOn      Method = iota // DHCPv4 and SLAAC (with DHCPv6 as the RA says): dracut's "any available source"
	MethodDHCP                  // DHCPv4 only
	MethodDHCP6                 // DHCPv6 at once, no SLAAC
	MethodAuto6                 // SLAAC, and DHCPv6 when the RA's M or O flag asks
	MethodEither6               // SLAAC and DHCPv6 at once, both kept
	MethodStatic                // the ip='s own address (autoconf none with a client address)
	MethodOff                   // nothing (autoconf none/off without an address)
)

var methodNames = names{"on", "dhcp", "dhcp6", "auto6", "either6", "static", "off"}

func (m Method) String() string                { return methodNames.of(uint8(m)) }
func (m Method) MarshalText() ([]byte, error)  { return methodNames.marshal(uint8(m)) }
func (m *Method) UnmarshalText(b []byte) error { return methodNames.unmarshal((*uint8)(m), b) }

// YggMode is netinit.ygg=. The zero value is YggAuto.
type YggMode uint8

const (
	YggAuto        YggMode = iota // when the node has no public IPv6
	YggOn                         // always
	YggOff                        // never
	YggAutoInbound                // unless a reflector proved IPv6 inbound reachability
)

var yggNames = names{"auto", "on", "off", "auto-inbound"}

func (m YggMode) String() string                { return yggNames.of(uint8(m)) }
func (m YggMode) MarshalText() ([]byte, error)  { return yggNames.marshal(uint8(m)) }
func (m *YggMode) UnmarshalText(b []byte) error { return yggNames.unmarshal((*uint8)(m), b) }

// ParseYggMode parses netinit.ygg='s value.
func ParseYggMode(s string) (YggMode, error) {
	v, err := yggNames.parse(s)
	return YggMode(v), err
}

// WGMode is netinit.wg=. The zero value is WGAuto.
type WGMode uint8

const (
	WGAuto WGMode = iota // when peers are given and the node has no public IPv6
	WGOn                 // whenever peers are given
	WGOff                // never
)

var wgNames = names{"auto", "on", "off"}

func (m WGMode) String() string                { return wgNames.of(uint8(m)) }
func (m WGMode) MarshalText() ([]byte, error)  { return wgNames.marshal(uint8(m)) }
func (m *WGMode) UnmarshalText(b []byte) error { return wgNames.unmarshal((*uint8)(m), b) }

// ParseWGMode parses netinit.wg='s value.
func ParseWGMode(s string) (WGMode, error) {
	v, err := wgNames.parse(s)
	return WGMode(v), err
}

// Root is netinit.root='s kind. The zero value is RootAuto.
type Root uint8

const (
	RootAuto  Root = iota // not given: a tmpfs root when the next stage is zinit
	RootTmpfs             // move into a tmpfs root
	RootOff               // stay on the initramfs
)

var rootNames = names{"auto", "tmpfs", "off"}

func (r Root) String() string                { return rootNames.of(uint8(r)) }
func (r Root) MarshalText() ([]byte, error)  { return rootNames.marshal(uint8(r)) }
func (r *Root) UnmarshalText(b []byte) error { return rootNames.unmarshal((*uint8)(r), b) }

// Test is netinit.test=: a test mode prints the state between markers and
// powers off instead of handing off. The zero value is TestNone.
type Test uint8

const (
	TestNone        Test = iota // not a test: hand off
	TestPoweroff                // print and power off (QEMU tests)
	TestPanic                   // also panic in PID 1's bring-up (it must be contained)
	TestDaemonCrash             // also kill the daemon's first start (PID 1 must restart it)
)

var testNames = names{"", "poweroff", "panic", "daemon-crash"}

func (t Test) String() string                { return testNames.of(uint8(t)) }
func (t Test) MarshalText() ([]byte, error)  { return testNames.marshal(uint8(t)) }
func (t *Test) UnmarshalText(b []byte) error { return testNames.unmarshal((*uint8)(t), b) }

// ParseTest parses netinit.test='s value ("" is TestNone).
func ParseTest(s string) (Test, error) {
	v, err := testNames.parse(s)
	return Test(v), err
}

// Proto is the transport of a netinit.allow= port. The zero value is TCP.
type Proto uint8

const (
	TCP Proto = iota
	UDP
)

var protoNames = names{"tcp", "udp"}

func (p Proto) String() string                { return protoNames.of(uint8(p)) }
func (p Proto) MarshalText() ([]byte, error)  { return protoNames.marshal(uint8(p)) }
func (p *Proto) UnmarshalText(b []byte) error { return protoNames.unmarshal((*uint8)(p), b) }

// ParseProto parses "tcp" or "udp", in any case.
func ParseProto(s string) (Proto, error) {
	v, err := protoNames.parse(strings.ToLower(s))
	return Proto(v), err
}

// names are the text forms of an enum's values, by value.
type names []string

func (n names) of(v uint8) string {
	if int(v) < len(n) {
		return n[v]
	}
	return "invalid(" + strconv.Itoa(int(v)) + ")"
}

func (n names) parse(s string) (uint8, error) {
	for i, name := range n {
		if s == name {
			return uint8(i), nil
		}
	}
	var want []string
	for _, name := range n {
		if name != "" {
			want = append(want, name)
		}
	}
	return 0, fmt.Errorf("want one of %s", strings.Join(want, ", "))
}

func (n names) marshal(v uint8) ([]byte, error) {
	if int(v) >= len(n) {
		return nil, fmt.Errorf("invalid value %d (want 0..%d)", v, len(n)-1)
	}
	return []byte(n[v]), nil
}

func (n names) unmarshal(v *uint8, b []byte) error {
	x, err := n.parse(string(b))
	if err != nil {
		return fmt.Errorf("%q: %w", b, err)
	}
	*v = x
	return nil
}
