package cmdline

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/threefoldtech/netinit/boot/spec"
)

const testConfig = `# netinit config
timeout = 90s
netinit.ra-timeout=1s

ip=eth0:dhcp
ip = 192.0.2.5::192.0.2.1:24:node1:eth1:none
nameserver=192.0.2.53
netinit.ignore="veth*,docker*"
  # indented comment
ygg.peers=tls://198.51.100.7:443
ygg.multicast
BOOTIF=01-52-54-00-12-34-56
mtu = abc
console=ttyS0
netinit.bogus=1
netinit.wg
`

func TestParseConfig(t *testing.T) {
	s, ps := ParseConfig(strings.NewReader(testConfig), "netinit.conf")
	if s.Timeout != 90*time.Second || s.RATimeout != time.Second {
		t.Errorf("timeouts %v %v", s.Timeout, s.RATimeout)
	}
	if len(s.IP) != 2 || s.IP[0].Device != "eth0" || s.IP[1].Address != netip.MustParsePrefix("192.0.2.5/24") {
		t.Errorf("IP %+v", s.IP)
	}
	if !reflect.DeepEqual(s.Ignore, []string{"veth*", "docker*"}) || !reflect.DeepEqual(s.YggPeers, []string{"tls://198.51.100.7:443"}) {
		t.Errorf("lists %q %q", s.Ignore, s.YggPeers)
	}
	if !reflect.DeepEqual(s.Nameservers(), addrs("192.0.2.53")) || s.BootIF.String() != "52:54:00:12:34:56" || !s.YggMulticast {
		t.Errorf("%+v", s)
	}
	want := []string{
		`netinit.conf:13: mtu="abc": not an MTU (want 68..65535)`,
		`netinit.conf:14: console="ttyS0": unknown netinit key`,
		`netinit.conf:15: netinit.bogus="1": unknown netinit key`,
		`netinit.conf:16: netinit.wg: needs a value (key=value)`,
	}
	if got := problemStrings(ps); !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n%q\nwant\n%q", got, want)
	}
	for _, p := range ps {
		if !strings.Contains(testConfig, p.Token) {
			t.Errorf("token %q not in the file", p.Token)
		}
	}
}

func TestConfigLineTooLong(t *testing.T) {
	long := "netinit.next=/" + strings.Repeat("a", maxConfigLine) + "\n"
	s, ps := ParseConfig(strings.NewReader("timeout=5\n"+long), "c")
	if s.Timeout != 5*time.Second || len(ps) != 1 || !strings.HasPrefix(ps[0].Error(), "c:2: reading config") {
		t.Errorf("%v %q", s.Timeout, problemStrings(ps))
	}
}

func TestConfigReadError(t *testing.T) {
	_, ps := ParseConfig(iotest.ErrReader(os.ErrClosed), "c")
	if len(ps) != 1 || !strings.Contains(ps[0].Error(), "file already closed") {
		t.Errorf("%q", problemStrings(ps))
	}
}

func TestConfigCRLF(t *testing.T) {
	s, ps := ParseConfig(strings.NewReader("timeout=7\r\nnetinit.uplink=eth1\r\n"), "c")
	if len(ps) != 0 || s.Timeout != 7*time.Second || s.Uplink != "eth1" {
		t.Errorf("%+v %q", s, problemStrings(ps))
	}
}

// TestPrecedence: cmdline > config > defaults; a cmdline list replaces the
// config's list; a malformed cmdline value keeps the config's value.
func TestPrecedence(t *testing.T) {
	conf, ps := ParseConfig(strings.NewReader(`timeout=90s
uplink=eth0
ignore=veth*
ip=eth0:dhcp
ip=eth1:dhcp
nameserver=192.0.2.53
ntp=ntp1.example.org
wg.peer=`+testKey+`@203.0.113.9:51820
`), "netinit.conf")
	if len(ps) != 0 {
		t.Fatal(problemStrings(ps))
	}
	if conf.RATimeout != 0 {
		t.Errorf("config ip=dhcp only: RATimeout %v", conf.RATimeout)
	}
	s, ps := Merge(conf, "netinit.uplink=eth2 netinit.ignore=docker* netinit.ignore=br-* ip=eth3:auto6 netinit.timeout=bad netinit.ntp=bad_name")
	if len(ps) != 2 {
		t.Errorf("problems %q", problemStrings(ps))
	}
	if s.Uplink != "eth2" || s.Timeout != 90*time.Second {
		t.Errorf("uplink %q timeout %v", s.Uplink, s.Timeout)
	}
	if !reflect.DeepEqual(s.Ignore, []string{"docker*", "br-*"}) {
		t.Errorf("Ignore %q", s.Ignore)
	}
	if len(s.IP) != 1 || s.IP[0].Device != "eth3" {
		t.Errorf("IP %+v", s.IP)
	}
	if s.RATimeout != spec.DefaultRATimeout {
		t.Errorf("RATimeout %v after auto6 on the cmdline", s.RATimeout)
	}
	// Untouched lists are inherited.
	if !reflect.DeepEqual(s.NTP, []string{"ntp1.example.org"}) || len(s.WGPeers) != 1 || !reflect.DeepEqual(s.Nameservers(), addrs("192.0.2.53")) {
		t.Errorf("inherited lists %q %v %v", s.NTP, s.WGPeers, s.Nameservers())
	}
	// The base is not modified.
	if conf.Uplink != "eth0" || len(conf.IP) != 2 || conf.Ignore[0] != "veth*" {
		t.Errorf("Merge modified its base: %+v", conf)
	}
	// A config ra_timeout stays explicit under a cmdline ip=dhcp.
	conf2, _ := ParseConfig(strings.NewReader("ra_timeout=2s\n"), "c")
	s2, _ := Merge(conf2, "ip=dhcp")
	if s2.RATimeout != 2*time.Second {
		t.Errorf("RATimeout %v", s2.RATimeout)
	}
	// Nameservers from a config ip= go with the config's ip= list.
	conf3, _ := ParseConfig(strings.NewReader("ip=192.0.2.5::192.0.2.1:24::eth0:none:192.0.2.54\n"), "c")
	s3, _ := Merge(conf3, "ip=eth0:dhcp")
	if len(s3.Nameservers()) != 0 {
		t.Errorf("Nameservers %v", s3.Nameservers())
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netinit.conf")
	if err := os.WriteFile(path, []byte("timeout=90\nuplink=eth0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, ps := Load(path, "netinit.uplink=eth1 netinit.mtu=1")
	if s.Timeout != 90*time.Second || s.Uplink != "eth1" || len(ps) != 1 || !strings.HasPrefix(ps[0].Error(), "cmdline: netinit.mtu") {
		t.Errorf("%+v %q", s, problemStrings(ps))
	}
	_, ps = Load(filepath.Join(dir, "missing.conf"), "")
	if len(ps) != 1 || !strings.Contains(ps[0].Error(), "missing.conf: reading config") {
		t.Errorf("%q", problemStrings(ps))
	}
	if _, ps = Load("", "netinit.uplink=eth1"); len(ps) != 0 {
		t.Errorf("%q", problemStrings(ps))
	}
}
