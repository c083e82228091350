package cmdline

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/spec"
)

func TestIPForms(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		val  string
		want spec.IPConfig
	}{
		{"dhcp", spec.IPConfig{Method: spec.MethodDHCP}},
		{"dhcp6", spec.IPConfig{Method: spec.MethodDHCP6}},
		{"auto6", spec.IPConfig{Method: spec.MethodAuto6}},
		{"either6", spec.IPConfig{Method: spec.MethodEither6}},
		{"on", spec.IPConfig{Method: spec.MethodOn}},
		{"any", spec.IPConfig{Method: spec.MethodOn}},
		{"off", spec.IPConfig{Method: spec.MethodOff}},
		{"none", spec.IPConfig{Method: spec.MethodOff}},
		{"eth0:dhcp", spec.IPConfig{Device: "eth0", Method: spec.MethodDHCP}},
		{"eth0:off", spec.IPConfig{Device: "eth0", Method: spec.MethodOff}},
		{"eth0:auto6:9000", spec.IPConfig{Device: "eth0", Method: spec.MethodAuto6, MTU: 9000}},
		{"eth0:dhcp::52-54-00-12-34-56", spec.IPConfig{Device: "eth0", Method: spec.MethodDHCP, MAC: mustMAC("52:54:00:12:34:56")}},
		{"eth0:dhcp:1500:52:54:00:12:34:56", spec.IPConfig{Device: "eth0", Method: spec.MethodDHCP, MTU: 1500, MAC: mustMAC("52:54:00:12:34:56")}},
		{":dhcp", spec.IPConfig{Method: spec.MethodDHCP}},
		// The long form, IPv4 with a dotted mask and a prefix length.
		{"192.0.2.5::192.0.2.1:255.255.255.0:node1:eth0:none", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1"), Hostname: "node1"}},
		{"192.0.2.5::192.0.2.1:24::eth0:off", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1")}},
		{"192.0.2.5/28::192.0.2.1:::eth0:none", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/28"), Gateway: a("192.0.2.1")}},
		{"192.0.2.5/28::192.0.2.1:255.255.255.240::eth0:none", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/28"), Gateway: a("192.0.2.1")}},
		{"192.0.2.5:192.0.2.6:0.0.0.0:32::ppp0:none", spec.IPConfig{
			Device: "ppp0", Method: spec.MethodStatic, Address: p("192.0.2.5/32"), Peer: a("192.0.2.6")}},
		{"192.0.2.5:192.0.2.6/30::::ppp0:none", spec.IPConfig{
			Device: "ppp0", Method: spec.MethodStatic, Address: p("192.0.2.5/30"), Peer: a("192.0.2.6")}},
		// Everything empty but the device: a DHCP client with a hostname.
		{"::::node1.example.org:eth0:dhcp", spec.IPConfig{Device: "eth0", Method: spec.MethodDHCP, Hostname: "node1.example.org"}},
		{":::::eth0:any", spec.IPConfig{Device: "eth0", Method: spec.MethodOn}},
		// IPv6 in brackets, with DNS.
		{"[2001:db8::2]::[2001:db8::1]:64:node1:eth0:none:[2001:db8::53]", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("2001:db8::2/64"), Gateway: a("2001:db8::1"),
			Hostname: "node1", DNS: addrs("2001:db8::53")}},
		{"[2001:db8::2/64]::[fe80::1]:::eth0:none", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("2001:db8::2/64"), Gateway: a("fe80::1")}},
		{"192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.53:[2001:db8::53]", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1"),
			DNS: addrs("192.0.2.53", "2001:db8::53")}},
		{"192.0.2.5::192.0.2.1:24::eth0:none::192.0.2.54", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1"),
			DNS: addrs("192.0.2.54")}},
		// MTU and MAC after the long form, the MAC with colons or dashes.
		{"192.0.2.5::192.0.2.1:24::eth0:none:9000:52:54:00:12:34:56", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1"),
			MTU: 9000, MAC: mustMAC("52:54:00:12:34:56")}},
		{"192.0.2.5::192.0.2.1:24::eth0:none::52-54-00-12-34-56", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1"),
			MAC: mustMAC("52:54:00:12:34:56")}},
		{"192.0.2.5::192.0.2.1:24::eth0:none:1400", spec.IPConfig{
			Device: "eth0", Method: spec.MethodStatic, Address: p("192.0.2.5/24"), Gateway: a("192.0.2.1"), MTU: 1400}},
		// A client address with an autoconf method is kept as given.
		{"192.0.2.5:::24::eth0:dhcp", spec.IPConfig{Device: "eth0", Method: spec.MethodDHCP, Address: p("192.0.2.5/24")}},
	}
	for _, tt := range tests {
		t.Run(tt.val, func(t *testing.T) {
			s, ps := Parse("ip=" + tt.val)
			if len(ps) != 0 {
				t.Fatalf("problems: %q", problemStrings(ps))
			}
			if len(s.IP) != 1 {
				t.Fatalf("got %d ip configs", len(s.IP))
			}
			if !reflect.DeepEqual(s.IP[0], tt.want) {
				t.Errorf("got  %+v\nwant %+v", s.IP[0], tt.want)
			}
		})
	}
}

// TestIPMalformed: every field's error names the field, and the whole
// token is dropped.
func TestIPMalformed(t *testing.T) {
	tests := []struct{ val, want string }{
		{"", "empty"},
		{"dhcp4", `field 1 (autoconf) "dhcp4": want dhcp`},
		{"ibft", `field 1 (autoconf) "ibft": not supported`},
		{"192.0.2.5", `field 1 (autoconf) "192.0.2.5"`},
		{"eth0/1:dhcp", `field 1 (interface) "eth0/1"`},
		{"192.0.2.5::192.0.2.1:24", `field 1 (client) "192.0.2.5": an address needs the long form`},
		{"[2001:db8::2]:dhcp", `field 1 (client) "[2001:db8::2]": an address needs the long form`},
		{"eth0:link6", `field 2 (autoconf) "link6": not supported`},
		{"eth0:dhcp:12", `field 3 (mtu) "12": not an MTU`},
		{"eth0:dhcp:1500:zz", `field 4 (macaddr) "zz": not a MAC`},
		{"eth0:dhcp:1500:01:00:5e:00:00:01", `field 4 (macaddr) "01:00:5e:00:00:01": not a unicast MAC`},
		{"eth0:dhcp:1500:52:54", "2 fields after field 3 (mtu)"},
		{"192.0.2.300::192.0.2.1:24::eth0:none", `field 1 (client) "192.0.2.300": not an IP address`},
		{"2001:db8::2::2001:db8::1:64::eth0:none", `field 1 (client)`},
		{"[192.0.2.5]::192.0.2.1:24::eth0:none", `field 1 (client) "[192.0.2.5]": IPv4 address in brackets`},
		{"224.0.0.1::192.0.2.1:24::eth0:none", `field 1 (client) "224.0.0.1": not a unicast`},
		{"127.0.0.2:::8::lo:none", `field 1 (client) "127.0.0.2": not a unicast`},
		{"[fe80::2%eth0]:::64::eth0:none", `field 1 (client) "[fe80::2%eth0]": zone not allowed`},
		{"[::ffff:192.0.2.5]:::64::eth0:none", "IPv4-mapped"},
		{"192.0.2.5/0:::::eth0:none", "prefix length 0"},
		{"192.0.2.5:x::24::eth0:none", `field 2 (peer) "x"`},
		{"192.0.2.5:[2001:db8::6::24::eth0:none", `'[' without ']'`},
		{"192.0.2.5:[2001:db8::6]::24::eth0:none", `field 2 (peer) "[2001:db8::6]": address family differs`},
		{"192.0.2.5::192.0.2:24::eth0:none", `field 3 (gateway) "192.0.2": not an IP address`},
		{"192.0.2.5::[2001:db8::1]:24::eth0:none", `field 3 (gateway) "[2001:db8::1]": address family differs`},
		{"192.0.2.5::255.255.255.255:24::eth0:none", `field 3 (gateway) "255.255.255.255": not a unicast`},
		{"192.0.2.5::192.0.2.1:255.0.255.0::eth0:none", `field 4 (netmask) "255.0.255.0": not a contiguous mask`},
		{"192.0.2.5::192.0.2.1:33::eth0:none", `field 4 (netmask) "33": prefix length out of 1..32`},
		{"192.0.2.5::192.0.2.1:0::eth0:none", `field 4 (netmask) "0": prefix length out of 1..32`},
		{"192.0.2.5::192.0.2.1:0.0.0.0::eth0:none", `field 4 (netmask) "0.0.0.0": prefix length 0`},
		{"192.0.2.5::192.0.2.1:mask::eth0:none", `field 4 (netmask) "mask": not a netmask`},
		{"[2001:db8::2]::[2001:db8::1]:255.255.255.0::eth0:none", `field 4 (netmask) "255.255.255.0": dotted netmask for an IPv6`},
		{"[2001:db8::2]::[2001:db8::1]:129::eth0:none", `field 4 (netmask) "129": prefix length out of 1..128`},
		{"192.0.2.5/24::192.0.2.1:16::eth0:none", `field 4 (netmask) "16": disagrees with the /24 given before`},
		{"192.0.2.5/24:192.0.2.6/30::::ppp0:none", `field 2 (peer) "192.0.2.6/30": prefix disagrees with the client's /24`},
		{"192.0.2.5:192.0.2.6/30::29::ppp0:none", `field 4 (netmask) "29": disagrees with the /30 given before`},
		{"192.0.2.5::192.0.2.1:::eth0:none", `field 4 (netmask) "": required with a client address`},
		{"192.0.2.5::192.0.2.1:24:-node:eth0:none", `field 5 (hostname) "-node": not an RFC 1123 host name`},
		{"192.0.2.5::192.0.2.1:24:node_1:eth0:none", `field 5 (hostname) "node_1"`},
		{"192.0.2.5::192.0.2.1:24:" + strings.Repeat("a", 40) + "." + strings.Repeat("b", 30) + ":eth0:none", "more than the kernel's 64 for a hostname"},
		{"192.0.2.5::192.0.2.1:24::eth0 x:none", `field 6 (interface) "eth0 x"`},
		{"192.0.2.5::192.0.2.1:24::0123456789abcdef:none", `field 6 (interface) "0123456789abcdef": interface name longer than 15 bytes`},
		{"192.0.2.5::192.0.2.1:24::eth0:", `field 7 (autoconf) "": empty`},
		{"192.0.2.5::192.0.2.1:24::eth0:static", `field 7 (autoconf) "static"`},
		{"192.0.2.5::192.0.2.1:24::eth0:ibft", `field 7 (autoconf) "ibft": not supported`},
		{"192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.300", `field 8 (dns1) "192.0.2.300"`},
		{"192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.53:[::]", `field 9 (dns2) "[::]": not a unicast`},
		{"192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.53:192.0.2.54:192.0.2.55", "want at most 9"},
		{"192.0.2.5::192.0.2.1:24::eth0:none:abc", `field 8 (mtu) "abc"`},
		{"192.0.2.5::192.0.2.1:24::eth0:none:1500:xx", `field 9 (macaddr) "xx"`},
		{"[2001:db8::2:::64::eth0:none", "'[' without ']'"},
		{"2001:db8::2]:::64::eth0:none", "']' without '['"},
		{"[[2001:db8::2]]:::64::eth0:none", "nested '['"},
	}
	for _, tt := range tests {
		t.Run(tt.val, func(t *testing.T) {
			tok := "ip=" + tt.val
			s, ps := Parse(`ip=eth9:dhcp6 "` + tok + `"`)
			if len(ps) != 1 {
				t.Fatalf("problems %q, want one", problemStrings(ps))
			}
			if !strings.Contains(ps[0].Error(), tt.want) {
				t.Errorf("problem %q, want it to contain %q", ps[0].Error(), tt.want)
			}
			if ps[0].Token != `"`+tok+`"` {
				t.Errorf("token %q", ps[0].Token)
			}
			if len(s.IP) != 1 || s.IP[0].Device != "eth9" {
				t.Errorf("malformed ip= applied: %+v", s.IP)
			}
		})
	}
}

func TestIPExample(t *testing.T) {
	_, ps := Parse("ip=192.0.2.5::192.0.2.1:255.0.255.0::eth0:none")
	want := `cmdline: ip="192.0.2.5::192.0.2.1:255.0.255.0::eth0:none": field 4 (netmask) "255.0.255.0": not a contiguous mask`
	if len(ps) != 1 || ps[0].Error() != want {
		t.Errorf("got %q\nwant %q", problemStrings(ps), want)
	}
}
