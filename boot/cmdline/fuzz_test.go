package cmdline

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/spec"
)

var fuzzSeeds = []string{
	"",
	"BOOT_IMAGE=/vmlinuz console=ttyS0 quiet",
	"ip=dhcp",
	"ip=eth0:dhcp:1500:52:54:00:12:34:56",
	"ip=192.0.2.5::192.0.2.1:255.255.255.0:node1:eth0:none",
	"ip=192.0.2.5::192.0.2.1:255.0.255.0::eth0:none",
	"ip=[2001:db8::2]::[2001:db8::1]:64:node1:eth0:none:[2001:db8::53]:192.0.2.53",
	"ip=[2001:db8::2/64]::[fe80::1]:::eth0:none::52-54-00-12-34-56",
	"ip=::::h:eth0:dhcp ip=:::::eth1:any",
	`netinit.timeout="abc" netinit.ra-timeout=0 "netinit.next=/sbin/a b" -- x`,
	"BOOTIF=01-52-54-00-12-34-56 BOOTIF=52:54:00:12:34:56",
	"vlan=eth0.100:eth0 vlan=vlan0005:eth1 nameserver=[2001:db8::53]",
	"netinit.ygg.peers=tls://198.51.100.7:443,quic://[2001:db8::7]:9651 netinit.ygg.multicast",
	"netinit.wg.peer=" + testKey + "@[2001:db8::9]:51820 netinit.wg.address=10.0.0.2/24 netinit.wg.allowed=::/0",
	"netinit.allow=9900/tcp,53/udp netinit.probe.targets=example.org:443 netinit.ntp=[2001:db8::123]",
	"netinit.ignore=veth*,br[ netinit.mtu=9000 netinit.uplink=eth0 netinit.test=poweroff",
	"runmode=dev vlan:priv=100 vlan:pub=untagged zos-debug farmer_id=1 netinit.identity=/var/cache/seed.txt",
	"runmode=main vlan:priv=4095 netinit.ygg.listen=tcp://[::]:9943,tls://0.0.0.0:9944",
	"netinit.bridge=zos netinit.bridge=off netinit.bridge=a/b netinit.bridge=averyveryverylongname",
	"bond=bond0:eth0,eth1:mode=802.3ad,miimon=100,lacp_rate=fast,xmit_hash_policy=layer3+4:9000",
	"bond=bond0:52:54:00:12:34:56,01-52-54-00-12-34-57:mode=4,ad_actor_system=02:00:00:00:00:01:1500 netinit.bond=auto",
	"netinit.bond=bond1:eth2,eth3:mode=active-backup netinit.bond=off bond=b:x bond=b:x,x bond=:: bond=b:e::",
	`"`, `k="`, `ip=[`, "ip=]", "netinit.=", "=x", "netinit.\x00=\xff",
}

// checkSpec asserts the invariants every parse result must hold.
func checkSpec(t *testing.T, input string, s *spec.Spec, ps []Problem) {
	t.Helper()
	for _, p := range ps {
		if !strings.Contains(input, p.Token) {
			t.Errorf("problem token %q does not occur in the input", p.Token)
		}
		if msg := p.Error(); strings.ContainsAny(msg, "\n\r") {
			t.Errorf("problem %q spans lines", msg)
		}
	}
	for _, c := range s.IP {
		if _, err := c.Method.MarshalText(); err != nil {
			t.Errorf("ip= method: %v", err)
		}
		if c.Address != (netip.Prefix{}) {
			if !c.Address.IsValid() || c.Address.Bits() < 1 || !isUnicast(c.Address.Addr()) || c.Address.Addr().Zone() != "" {
				t.Errorf("ip= with an invalid address %v", c.Address)
			}
		}
		if c.Method == spec.MethodStatic && !c.Address.IsValid() {
			t.Errorf("static ip= without an address: %+v", c)
		}
		if c.Device != "" && validIfname(c.Device) != nil {
			t.Errorf("ip= device %q", c.Device)
		}
		if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
			t.Errorf("ip= mtu %d", c.MTU)
		}
	}
	if s.Timeout <= 0 || s.RATimeout < 0 {
		t.Errorf("timeouts %v %v", s.Timeout, s.RATimeout)
	}
	if s.Next != "" && !strings.HasPrefix(s.Next, "/") {
		t.Errorf("next %q", s.Next)
	}
	for _, b := range s.Bonds {
		if validIfname(b.Name) != nil || len(b.Ports) == 0 || b.MTU != 0 && (b.MTU < 68 || b.MTU > 65535) {
			t.Errorf("bond %+v", b)
		}
		for _, p := range b.Ports {
			if _, err := parseBondPort(p); err != nil || p == b.Name {
				t.Errorf("bond %s: port %q: %v", b.Name, p, err)
			}
		}
	}
	if !reflect.DeepEqual(s.Clone(), s) {
		t.Errorf("Clone differs")
	}
	// PID 1 hands the spec to the daemon as JSON: it must come back whole.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("encoding the spec: %v", err)
	}
	var back spec.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decoding the spec: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(&back, s) {
		t.Errorf("spec changed through JSON:\n%+v\n%+v", s, &back)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, ps := Parse(line)
		checkSpec(t, line, s, ps)
		for _, p := range ps {
			if p.Token == "" {
				t.Errorf("cmdline problem without a token: %v", p)
			}
		}
		s2, ps2 := Parse(line)
		if !reflect.DeepEqual(s, s2) || !reflect.DeepEqual(problemStrings(ps), problemStrings(ps2)) {
			t.Errorf("Parse is not deterministic")
		}
		// Applying the same line twice changes nothing: lists are replaced
		// by the second source, scalars set again.
		s3, ps3 := Merge(s, line)
		if !reflect.DeepEqual(s, s3) || len(ps3) != len(ps) {
			t.Errorf("Merge(Parse(l), l) != Parse(l):\n%+v\n%+v", s, s3)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(strings.ReplaceAll(s, " ", "\n"))
	}
	f.Add(testConfig)
	f.Fuzz(func(t *testing.T, text string) {
		s, ps := ParseConfig(strings.NewReader(text), "c")
		checkSpec(t, text, s, ps)
		s2, ps2 := ParseConfig(strings.NewReader(text), "c")
		if !reflect.DeepEqual(s, s2) || !reflect.DeepEqual(problemStrings(ps), problemStrings(ps2)) {
			t.Errorf("ParseConfig is not deterministic")
		}
	})
}
