package cmdline

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/spec"
)

const testKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0..31

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addrs(ss ...string) []netip.Addr {
	var r []netip.Addr
	for _, s := range ss {
		r = append(r, netip.MustParseAddr(s))
	}
	return r
}

func prefixes(ss ...string) []netip.Prefix {
	var r []netip.Prefix
	for _, s := range ss {
		r = append(r, netip.MustParsePrefix(s))
	}
	return r
}

func problemStrings(ps []Problem) []string {
	var r []string
	for _, p := range ps {
		r = append(r, p.Error())
	}
	return r
}

func TestDefaults(t *testing.T) {
	for name, s := range map[string]*spec.Spec{"Defaults": spec.Defaults(), "Parse empty": must(Parse("")), "kernel noise": must(Parse("BOOT_IMAGE=/boot/vmlinuz console=ttyS0,115200 root=/dev/sda1 quiet ro"))} {
		if s.Timeout != 60*time.Second || s.RATimeout != 3*time.Second || s.Ygg != spec.YggAuto || !s.YggMulticast || s.WG != spec.WGAuto {
			t.Errorf("%s: %+v", name, s)
		}
		if len(s.Given) != 0 || len(s.IP) != 0 || s.Next != "" || s.MTU != 0 {
			t.Errorf("%s: keys %v, %+v", name, s.Given, s)
		}
	}
}

func must(s *spec.Spec, ps []Problem) *spec.Spec {
	if len(ps) > 0 {
		panic(problemStrings(ps))
	}
	return s
}

// TestKeys covers every key: valid values and a malformed one each.
func TestKeys(t *testing.T) {
	d := spec.Defaults()
	tests := []struct {
		line string
		get  func(*spec.Spec) any
		want any
		// problem is a substring of the only expected problem; "" none.
		problem string
	}{
		{"netinit.next=/sbin/zinit", func(s *spec.Spec) any { return s.Next }, "/sbin/zinit", ""},
		{"netinit.next=", func(s *spec.Spec) any { return s.Next }, "", `cmdline: netinit.next="": empty path`},
		{"netinit.next=sbin/init", func(s *spec.Spec) any { return s.Next }, "", "not an absolute path"},
		{"netinit.next", func(s *spec.Spec) any { return s.Next }, "", "needs a value"},
		{"netinit.test=poweroff", func(s *spec.Spec) any { return s.Test.String() }, "poweroff", ""},
		{"netinit.test=reboot", func(s *spec.Spec) any { return s.Test.String() }, "", "want one of poweroff, panic, daemon-crash"},
		{"netinit.uplink=enp1s0", func(s *spec.Spec) any { return s.Uplink }, "enp1s0", ""},
		{"netinit.uplink=averyveryverylongname", func(s *spec.Spec) any { return s.Uplink }, "", "longer than 15"},
		{"netinit.uplink=a/b", func(s *spec.Spec) any { return s.Uplink }, "", `contains '/'`},
		{`netinit.uplink="a b"`, func(s *spec.Spec) any { return s.Uplink }, "", `netinit.uplink="a b": interface name contains ' '`},
		{"BOOTIF=01-52-54-00-12-34-56", func(s *spec.Spec) any { return s.BootIF }, mustMAC("52:54:00:12:34:56"), ""},
		{"BOOTIF=01-52-54-00-AB-CD-EF", func(s *spec.Spec) any { return s.BootIF }, mustMAC("52:54:00:ab:cd:ef"), ""},
		{"BOOTIF=52:54:00:12:34:56", func(s *spec.Spec) any { return s.BootIF }, mustMAC("52:54:00:12:34:56"), ""},
		{"BOOTIF=52-54-00-12-34-56", func(s *spec.Spec) any { return s.BootIF }, mustMAC("52:54:00:12:34:56"), ""},
		{"BOOTIF=06-52-54-00-12-34-56", func(s *spec.Spec) any { return s.BootIF }, net.HardwareAddr(nil), `hardware type "06"`},
		{"BOOTIF=01-53-54-00-12-34-56", func(s *spec.Spec) any { return s.BootIF }, net.HardwareAddr(nil), "not a unicast MAC"},
		{"BOOTIF=01-52-54-00-12-34", func(s *spec.Spec) any { return s.BootIF }, net.HardwareAddr(nil), "not a MAC address"},
		{"BOOTIF=01-00-00-00-00-00-00", func(s *spec.Spec) any { return s.BootIF }, net.HardwareAddr(nil), "all-zero"},
		{"netinit.ignore=veth*,docker?,br-[a-f]*", func(s *spec.Spec) any { return s.Ignore }, []string{"veth*", "docker?", "br-[a-f]*"}, ""},
		{"netinit.ignore=veth*,br[", func(s *spec.Spec) any { return s.Ignore }, []string(nil), `element 2 "br[": not a valid glob`},
		{"netinit.ignore=veth*,,x", func(s *spec.Spec) any { return s.Ignore }, []string(nil), "element 2 is empty"},
		{"netinit.timeout=90s", func(s *spec.Spec) any { return s.Timeout }, 90 * time.Second, ""},
		{"netinit.timeout=2m", func(s *spec.Spec) any { return s.Timeout }, 2 * time.Minute, ""},
		{"netinit.timeout=45", func(s *spec.Spec) any { return s.Timeout }, 45 * time.Second, ""},
		{"netinit.timeout=abc", func(s *spec.Spec) any { return s.Timeout }, d.Timeout, `cmdline: netinit.timeout="abc": not a duration (want e.g. 60s)`},
		{"netinit.timeout=0", func(s *spec.Spec) any { return s.Timeout }, d.Timeout, "more than 0"},
		{"netinit.timeout=-5s", func(s *spec.Spec) any { return s.Timeout }, d.Timeout, "negative"},
		{"netinit.timeout=48h", func(s *spec.Spec) any { return s.Timeout }, d.Timeout, "more than 24h"},
		{"netinit.ra_timeout=0", func(s *spec.Spec) any { return s.RATimeout }, time.Duration(0), ""},
		{"netinit.ra-timeout=500ms", func(s *spec.Spec) any { return s.RATimeout }, 500 * time.Millisecond, ""},
		{"netinit.ra_timeout=x", func(s *spec.Spec) any { return s.RATimeout }, d.RATimeout, "not a duration"},
		{"netinit.dhcp4_timeout=0", func(s *spec.Spec) any { return s.DHCP4Timeout }, time.Duration(0), ""},
		{"netinit.dhcp4-timeout=10s", func(s *spec.Spec) any { return s.DHCP4Timeout }, 10 * time.Second, ""},
		{"netinit.dhcp4_timeout=x", func(s *spec.Spec) any { return s.DHCP4Timeout }, d.DHCP4Timeout, "not a duration"},
		{"netinit.mtu=9000", func(s *spec.Spec) any { return s.MTU }, 9000, ""},
		{"netinit.mtu=67", func(s *spec.Spec) any { return s.MTU }, 0, "68..65535"},
		{"netinit.mtu=65536", func(s *spec.Spec) any { return s.MTU }, 0, "68..65535"},
		{"netinit.mtu=+1500", func(s *spec.Spec) any { return s.MTU }, 0, "68..65535"},
		{"nameserver=192.0.2.53 nameserver=[2001:db8::53] nameserver=2001:db8::54", func(s *spec.Spec) any { return s.Nameservers() }, addrs("192.0.2.53", "2001:db8::53", "2001:db8::54"), ""},
		{"nameserver=192.0.2.53 nameserver=192.0.2.300", func(s *spec.Spec) any { return s.Nameservers() }, addrs("192.0.2.53"), "not an IP address"},
		{"nameserver=0.0.0.0", func(s *spec.Spec) any { return s.Nameservers() }, []netip.Addr(nil), "not a unicast"},
		{"bond=bond0:eth0,eth1:mode=802.3ad,miimon=100,lacp_rate=fast,xmit_hash_policy=layer3+4:9000", func(s *spec.Spec) any { return s.Bonds },
			[]spec.Bond{{Name: "bond0", Ports: []string{"eth0", "eth1"}, MTU: 9000, Options: []spec.BondOption{
				{Name: "mode", Value: "802.3ad"}, {Name: "miimon", Value: "100"}, {Name: "lacp_rate", Value: "fast"}, {Name: "xmit_hash_policy", Value: "layer3+4"}}}}, ""},
		// Ports by MAC, with colons (not a field's end) or as BOOTIF=;
		// a mode by number; a MAC in an option's value.
		{"bond=bond0:52:54:00:12:34:56,01-52-54-00-12-34-57:mode=1,ad_actor_system=02:00:00:00:00:01:1500", func(s *spec.Spec) any { return s.Bonds },
			[]spec.Bond{{Name: "bond0", Ports: []string{"52:54:00:12:34:56", "52:54:00:12:34:57"}, MTU: 1500, Options: []spec.BondOption{
				{Name: "mode", Value: "active-backup"}, {Name: "ad_actor_system", Value: "02:00:00:00:00:01"}}}}, ""},
		{"netinit.bond=bond1:eth2 bond=bond1:eth3,eth4", func(s *spec.Spec) any { return s.Bonds },
			[]spec.Bond{{Name: "bond1", Ports: []string{"eth3", "eth4"}}}, ""},
		{"bond=bond0", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "want NAME:PORT,PORT"},
		{"bond=bond0:eth0,eth0", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "given twice"},
		{"bond=bond0:eth0:mode=fast", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "not a bonding mode"},
		{"bond=bond0:eth0:speed=10", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "not a bonding option"},
		{"bond=bond0:eth0:mode=4:12", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "68..65535"},
		{"bond=bond0:eth0,:mode=4", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "empty interface name"},
		{"bond=bond0:eth0:miimon=1/0", func(s *spec.Spec) any { return s.Bonds }, []spec.Bond(nil), "contains"},
		{"netinit.bond=auto", func(s *spec.Spec) any { return s.LACP }, spec.LACPAuto, ""},
		{"netinit.bond=OFF", func(s *spec.Spec) any { return s.LACP }, spec.LACPOff, ""},
		{"netinit.bond=maybe", func(s *spec.Spec) any { return s.LACP }, spec.LACPDefault, "(or auto, off)"},
		{"vlan=vlan0005:eth0 vlan=vlan7:eth0 vlan=eth1.0100:eth1 vlan=eth1.4094:eth1", func(s *spec.Spec) any { return s.VLANs },
			[]spec.VLAN{{Name: "vlan0005", Parent: "eth0", ID: 5}, {Name: "vlan7", Parent: "eth0", ID: 7}, {Name: "eth1.0100", Parent: "eth1", ID: 100}, {Name: "eth1.4094", Parent: "eth1", ID: 4094}}, ""},
		{"vlan=eth0.4095:eth0", func(s *spec.Spec) any { return s.VLANs }, []spec.VLAN(nil), "out of 1..4094"},
		{"vlan=eth0.0:eth0", func(s *spec.Spec) any { return s.VLANs }, []spec.VLAN(nil), "out of 1..4094"},
		{"vlan=mgmt:eth0", func(s *spec.Spec) any { return s.VLANs }, []spec.VLAN(nil), "no VLAN ID"},
		{"vlan=vlan5", func(s *spec.Spec) any { return s.VLANs }, []spec.VLAN(nil), "want NAME:PARENT"},
		{"vlan=vlan5:", func(s *spec.Spec) any { return s.VLANs }, []spec.VLAN(nil), "parent"},
		{"netinit.keydir=/var/cache/netinit", func(s *spec.Spec) any { return s.KeyDir }, "/var/cache/netinit", ""},
		{"netinit.keydir=cache", func(s *spec.Spec) any { return s.KeyDir }, "", "absolute"},
		{"netinit.ygg=off", func(s *spec.Spec) any { return s.Ygg.String() }, "off", ""},
		{"netinit.ygg=Auto-Inbound", func(s *spec.Spec) any { return s.Ygg.String() }, "auto-inbound", ""},
		{"netinit.ygg=maybe", func(s *spec.Spec) any { return s.Ygg.String() }, "auto", "want one of auto, on, off, auto-inbound"},
		{"netinit.ygg.peers=tls://198.51.100.7:443,tcp://[2001:db8::7]:9651,quic://peer.example.org:443?key=abc",
			func(s *spec.Spec) any { return s.YggPeers },
			[]string{"tls://198.51.100.7:443", "tcp://[2001:db8::7]:9651", "quic://peer.example.org:443?key=abc"}, ""},
		{"netinit.ygg.peers=http://198.51.100.7:80", func(s *spec.Spec) any { return s.YggPeers }, []string(nil), `scheme "http"`},
		{"netinit.ygg.peers=tls://198.51.100.7", func(s *spec.Spec) any { return s.YggPeers }, []string(nil), "not HOST:PORT"},
		{"netinit.ygg.peers=tls://198.51.100.7:0", func(s *spec.Spec) any { return s.YggPeers }, []string(nil), "1..65535"},
		{"netinit.ygg.peers=tls:198.51.100.7:443", func(s *spec.Spec) any { return s.YggPeers }, []string(nil), "no host:port"},
		{"netinit.ygg.peers=tcp://bad_host:1", func(s *spec.Spec) any { return s.YggPeers }, []string(nil), "RFC 1123"},
		{"netinit.ygg.multicast=off", func(s *spec.Spec) any { return s.YggMulticast }, false, ""},
		{"netinit.ygg.multicast=off netinit.ygg.multicast", func(s *spec.Spec) any { return s.YggMulticast }, true, ""},
		{"netinit.ygg.multicast=perhaps", func(s *spec.Spec) any { return s.YggMulticast }, true, "not a boolean"},
		{"netinit.ygg.seed=/var/cache/ygg.seed", func(s *spec.Spec) any { return s.YggSeed }, "/var/cache/ygg.seed", ""},
		{"", func(s *spec.Spec) any { return s.YggLANPeers }, 8, ""},
		{"netinit.ygg.lan_peers=12", func(s *spec.Spec) any { return s.YggLANPeers }, 12, ""},
		{"netinit.ygg.lan-peers=0", func(s *spec.Spec) any { return s.YggLANPeers }, 0, ""},
		{"netinit.ygg.lan_peers=1", func(s *spec.Spec) any { return s.YggLANPeers }, 8, "not a LAN peer count"},
		{"netinit.ygg.lan_peers=-3", func(s *spec.Spec) any { return s.YggLANPeers }, 8, "not a LAN peer count"},
		{"netinit.ygg.lan_peers=5000", func(s *spec.Spec) any { return s.YggLANPeers }, 8, "not a LAN peer count"},
		{"netinit.ygg.takeback=15s", func(s *spec.Spec) any { return s.YggTakeBack }, 15 * time.Second, ""},
		{"netinit.ygg.takeback=0", func(s *spec.Spec) any { return s.YggTakeBack }, spec.DefaultYggTakeBack, "must be more than 0"},
		{"netinit.ygg.takeback=90d", func(s *spec.Spec) any { return s.YggTakeBack }, spec.DefaultYggTakeBack, "not a duration"},
		{"netinit.wg=on", func(s *spec.Spec) any { return s.WG.String() }, "on", ""},
		{"netinit.lldp=send", func(s *spec.Spec) any { return s.LLDP.String() }, "send", ""},
		{"netinit.lldp=OFF", func(s *spec.Spec) any { return s.LLDP.String() }, "off", ""},
		{"netinit.lldp=transmit", func(s *spec.Spec) any { return s.LLDP.String() }, "listen", "want one of listen, send, off"},
		{"netinit.wg=auto-inbound", func(s *spec.Spec) any { return s.WG.String() }, "auto", "want one of auto, on, off"},
		{"netinit.wg.peer=" + testKey + "@203.0.113.9:51820 netinit.wg.peer=" + testKey + "@[2001:db8::9]:51820 netinit.wg.peer=" + testKey + "@wg.example.net:1",
			func(s *spec.Spec) any { return s.WGPeers },
			[]spec.WGPeer{{PublicKey: testKey, Endpoint: "203.0.113.9:51820"}, {PublicKey: testKey, Endpoint: "[2001:db8::9]:51820"}, {PublicKey: testKey, Endpoint: "wg.example.net:1"}}, ""},
		{"netinit.wg.peer=" + testKey, func(s *spec.Spec) any { return s.WGPeers }, []spec.WGPeer(nil), "want PUBKEY@HOST:PORT"},
		{"netinit.wg.peer=AAAA@203.0.113.9:51820", func(s *spec.Spec) any { return s.WGPeers }, []spec.WGPeer(nil), "not base64 of 32 bytes"},
		{"netinit.wg.peer=" + testKey + "@2001:db8::9:51820", func(s *spec.Spec) any { return s.WGPeers }, []spec.WGPeer(nil), "not HOST:PORT"},
		{"netinit.wg.address=10.10.0.2/24,fd00::2/64", func(s *spec.Spec) any { return s.WGAddress }, prefixes("10.10.0.2/24", "fd00::2/64"), ""},
		{"netinit.wg.address=10.10.0.2", func(s *spec.Spec) any { return s.WGAddress }, []netip.Prefix(nil), "not an address/prefix"},
		{"netinit.wg.allowed=10.10.0.9/16,::/0", func(s *spec.Spec) any { return s.WGAllowed }, prefixes("10.10.0.0/16", "::/0"), ""},
		{"netinit.allow=9900/tcp,53/UDP,9900/tcp", func(s *spec.Spec) any { return s.Allow }, []spec.Port{{Port: 9900, Proto: spec.TCP}, {Port: 53, Proto: spec.UDP}}, ""},
		{"netinit.allow=9900", func(s *spec.Spec) any { return s.Allow }, []spec.Port(nil), "want PORT/tcp"},
		{"netinit.allow=9900/sctp", func(s *spec.Spec) any { return s.Allow }, []spec.Port(nil), `protocol "sctp"`},
		{"netinit.allow=70000/tcp", func(s *spec.Spec) any { return s.Allow }, []spec.Port(nil), "1..65535"},
		{"netinit.probe.targets=198.51.100.1:443,[2001:db8::1]:443,example.org:80", func(s *spec.Spec) any { return s.ProbeTargets },
			[]string{"198.51.100.1:443", "[2001:db8::1]:443", "example.org:80"}, ""},
		{"netinit.probe.reflectors=203.0.113.1:7", func(s *spec.Spec) any { return s.ProbeReflectors }, []string{"203.0.113.1:7"}, ""},
		{"netinit.probe.reflectors=203.0.113.1", func(s *spec.Spec) any { return s.ProbeReflectors }, []string(nil), "not HOST:PORT"},
		{"netinit.ntp=pool.ntp.org,192.0.2.123,[2001:db8::123],2001:db8::124", func(s *spec.Spec) any { return s.NTP },
			[]string{"pool.ntp.org", "192.0.2.123", "2001:db8::123", "2001:db8::124"}, ""},
		{"netinit.ntp=-bad-", func(s *spec.Spec) any { return s.NTP }, []string(nil), "RFC 1123"},
		{"netinit.nosuchkey=1", func(s *spec.Spec) any { return len(s.Given) }, 0, `netinit.nosuchkey="1": unknown netinit key`},
		{"ip=\xe8:dhcp", func(s *spec.Spec) any { return len(s.Given) }, 0, `ip="\xe8:dhcp": not valid UTF-8`},
		{"netinit.", func(s *spec.Spec) any { return len(s.Given) }, 0, "unknown netinit key"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			s, ps := Parse(tt.line)
			got := tt.get(s)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			switch {
			case tt.problem == "" && len(ps) > 0:
				t.Errorf("unexpected problems %q", problemStrings(ps))
			case tt.problem != "" && (len(ps) != 1 || !strings.Contains(ps[0].Error(), tt.problem)):
				t.Errorf("problems %q, want one containing %q", problemStrings(ps), tt.problem)
			}
			for _, p := range ps {
				if !strings.Contains(tt.line, p.Token) || p.Token == "" {
					t.Errorf("problem token %q not in the input", p.Token)
				}
			}
		})
	}
}

func TestLex(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"", nil},
		{"  a  b\tc\n", []string{"a", "b", "c"}},
		{`k="a b" "x=y z" q=a"b c"d`, []string{`k="a b"`, `"x=y z"`, `q=a"b c"d`}},
		{`a -- netinit.next=/x`, []string{"a"}},
		{`a "--" b`, []string{"a"}},
		{`a --x b`, []string{"a", "--x", "b"}},
		{`a --=1 b`, []string{"a", "--=1", "b"}},
		{`k="unterminated x y`, []string{`k="unterminated x y`}},
	}
	for _, tt := range tests {
		if got := lexCmdline(tt.line); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("lex(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
	kv := []struct{ tok, k, v string }{
		{`k="a b"`, "k", "a b"},
		{`"k=a b"`, "k", "a b"},
		{`k=a"b"`, "k", `a"b"`},
		{`k="a`, "k", "a"},
		{`k=`, "k", ""},
		{`k==`, "k", "="},
		{`k="`, "k", ""},
		{`"`, "", ""},
	}
	for _, tt := range kv {
		if k, v, _ := splitKV(tt.tok); k != tt.k || v != tt.v {
			t.Errorf("splitKV(%q) = %q, %q; want %q, %q", tt.tok, k, v, tt.k, tt.v)
		}
	}
}

func TestQuotedValues(t *testing.T) {
	s, ps := Parse(`netinit.next="/sbin/zinit  init" "netinit.keydir=/var/x y"`)
	if len(ps) != 0 || s.Next != "/sbin/zinit" || !slices.Equal(s.NextArgs, []string{"init"}) || s.KeyDir != "/var/x y" {
		t.Fatalf("%+v %q", s, problemStrings(ps))
	}
}

func TestInitArgsNotParsed(t *testing.T) {
	s, ps := Parse(`netinit.next=/a -- netinit.next=/b netinit.bogus`)
	if len(ps) != 0 || s.Next != "/a" {
		t.Fatalf("%+v %q", s, problemStrings(ps))
	}
}

func TestKeysSet(t *testing.T) {
	s, _ := Parse("ip=dhcp netinit.ra-timeout=1 BOOTIF=52:54:00:12:34:56 netinit.timeout=bad console=ttyS0")
	want := []string{"BOOTIF", "ip", "netinit.ra_timeout"}
	if got := s.Given; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
	if !s.IsSet("ip") || s.IsSet("netinit.timeout") {
		t.Error("IsSet")
	}
}

// TestRATimeout: ip=dhcp asks for IPv4 only, so no RA wait unless the
// key is given.
func TestRATimeout(t *testing.T) {
	tests := []struct {
		line string
		want time.Duration
	}{
		{"", 3 * time.Second},
		{"ip=dhcp", 0},
		{"ip=eth0:dhcp ip=eth1:dhcp", 0},
		{"ip=eth0:dhcp ip=eth1:auto6", 3 * time.Second},
		{"ip=on", 3 * time.Second},
		{"ip=either6", 3 * time.Second},
		{"ip=dhcp6", 3 * time.Second},
		{"ip=dhcp netinit.ra_timeout=5s", 5 * time.Second},
		{"netinit.ra_timeout=5s ip=dhcp", 5 * time.Second},
		{"ip=bogus", 3 * time.Second},
	}
	for _, tt := range tests {
		s, _ := Parse(tt.line)
		if s.RATimeout != tt.want {
			t.Errorf("%q: RATimeout %v, want %v", tt.line, s.RATimeout, tt.want)
		}
	}
}

func TestNameserversFromIP(t *testing.T) {
	s, ps := Parse("nameserver=192.0.2.53 ip=192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.53:192.0.2.54 nameserver=[2001:db8::53]")
	if len(ps) != 0 {
		t.Fatal(problemStrings(ps))
	}
	want := addrs("192.0.2.53", "2001:db8::53", "192.0.2.54")
	if !reflect.DeepEqual(s.Nameservers(), want) {
		t.Errorf("Nameservers = %v, want %v", s.Nameservers(), want)
	}
}

func TestListsAccumulateAndReplace(t *testing.T) {
	s, ps := Parse("netinit.ignore=a* netinit.ignore=b*,a*")
	if len(ps) != 0 || !reflect.DeepEqual(s.Ignore, []string{"a*", "b*"}) {
		t.Errorf("Ignore = %q %q", s.Ignore, problemStrings(ps))
	}
}

func TestProblemDisplay(t *testing.T) {
	_, ps := Parse("netinit.uplink=\"a\tb\" netinit.x\x01=1")
	got := problemStrings(ps)
	want := []string{
		`cmdline: netinit.uplink="a\tb": interface name contains '\t'`,
		`cmdline: "netinit.x\x01"="1": unknown netinit key`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestCloneIsDeep(t *testing.T) {
	s := must(Parse("ip=192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.53 netinit.ignore=a* BOOTIF=52:54:00:12:34:56"))
	c := s.Clone()
	c.IP[0].DNS[0] = netip.MustParseAddr("192.0.2.99")
	c.Ignore[0] = "z"
	c.BootIF[0] = 0
	c.Given[0] = "x"
	if s.IP[0].DNS[0].String() != "192.0.2.53" || s.Ignore[0] != "a*" || s.BootIF[0] != 0x52 || s.Given[0] == "x" {
		t.Error("Clone shares memory")
	}
	if (*spec.Spec)(nil).Clone().Timeout != spec.DefaultTimeout {
		t.Error("nil Clone")
	}
}
