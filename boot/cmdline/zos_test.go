package cmdline

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/runmode"
	"github.com/threefoldtech/netinit/boot/spec"
)

// A real 0-OS command line: netinit understands runmode= and vlan:*=,
// and passes over 0-OS's other keys without a problem.
func TestZOSKeys(t *testing.T) {
	s := must(Parse("console=ttyS1,115200n8 zos-debug runmode=test farmer_id=42 secret=s3cr3t " +
		"vlan:priv=100 vlan:pub=none pub:mac=swap version=v3 nomodeset"))
	if s.RunMode != runmode.Test || s.VLANPriv != 100 || s.VLANPub != 0 {
		t.Fatalf("runmode %q vlan:priv %d vlan:pub %d", s.RunMode, s.VLANPriv, s.VLANPub)
	}
	if !reflect.DeepEqual(s.YggPeers, runmode.For(runmode.Test).YggPeers) ||
		!reflect.DeepEqual(s.ProbeTargets, runmode.For(runmode.Test).ProbeTargets) {
		t.Fatalf("runmode defaults not applied: peers %v targets %v", s.YggPeers, s.ProbeTargets)
	}
	for _, k := range []string{"runmode", "vlan:priv", "vlan:pub"} {
		if !s.IsSet(k) {
			t.Errorf("%s not recorded as set (keys %v)", k, s.Given)
		}
	}
}

// Keys given by a source win over the run mode's defaults, in whatever
// order the sources give them; without runmode= nothing is added.
func TestRunModeDefaultsYield(t *testing.T) {
	s := must(Parse("netinit.ygg.peers=tcp://198.51.100.1:9943 runmode=prod"))
	if !slices.Equal(s.YggPeers, []string{"tcp://198.51.100.1:9943"}) {
		t.Fatalf("peers %v", s.YggPeers)
	}
	if !slices.Equal(s.ProbeTargets, runmode.For(runmode.Prod).ProbeTargets) {
		t.Fatalf("targets %v", s.ProbeTargets)
	}
	cfg, ps := ParseConfig(strings.NewReader("runmode=prod\n"), "netinit.conf")
	if len(ps) != 0 {
		t.Fatal(ps)
	}
	s, ps = Merge(cfg, "runmode=dev netinit.probe.targets=192.0.2.1:80")
	if len(ps) != 0 || s.RunMode != runmode.Dev || !slices.Equal(s.ProbeTargets, []string{"192.0.2.1:80"}) ||
		!slices.Equal(s.YggPeers, runmode.For(runmode.Dev).YggPeers) {
		t.Fatalf("config prod + cmdline dev: %q %v %v %v", s.RunMode, s.ProbeTargets, s.YggPeers, ps)
	}
	if s := must(Parse("ip=dhcp")); s.YggPeers != nil || s.ProbeTargets != nil || s.RunMode != "" {
		t.Fatalf("defaults without runmode=: %+v", s)
	}
}

// TestRunModeDefaultsOnce: the defaults that depend on runmode= are in
// the spec as it is built, nowhere downstream: the NTP pool (prod's
// without runmode=), the election's probe targets (the probe targets,
// else the grid's), and at a boot (LoadBoot) the management bridge zos,
// unless netinit.bridge= says otherwise; `netinit up` (Load) none.
func TestRunModeDefaultsOnce(t *testing.T) {
	prod := runmode.For(runmode.Prod)
	for _, tc := range []struct {
		line, bridge, upBridge string
		targets                []string
	}{
		{"ip=dhcp", "", "", prod.ProbeTargets},
		{"runmode=dev", "zos", "", runmode.For(runmode.Dev).ProbeTargets},
		{"runmode=dev netinit.bridge=off", "", "", runmode.For(runmode.Dev).ProbeTargets},
		{"runmode=qa netinit.bridge=br0 netinit.probe.targets=192.0.2.1:80", "br0", "br0", []string{"192.0.2.1:80"}},
		{"netinit.bridge=zos", "zos", "zos", prod.ProbeTargets},
	} {
		boot, ps := LoadBoot("", tc.line)
		up, ps2 := Load("", tc.line)
		if len(ps)+len(ps2) != 0 {
			t.Fatal(ps, ps2)
		}
		if boot.BridgeName() != tc.bridge || up.BridgeName() != tc.upBridge {
			t.Errorf("%q: bridge at boot %q, by up %q; want %q, %q", tc.line, boot.BridgeName(), up.BridgeName(), tc.bridge, tc.upBridge)
		}
		if !slices.Equal(boot.UplinkTargets, tc.targets) || !slices.Equal(boot.NTPPool, prod.NTP) {
			t.Errorf("%q: election targets %v, NTP pool %v", tc.line, boot.UplinkTargets, boot.NTPPool)
		}
	}
	if d := spec.Defaults(); !slices.Equal(d.UplinkTargets, prod.ProbeTargets) || !slices.Equal(d.NTPPool, prod.NTP) {
		t.Errorf("spec.Defaults: targets %v pool %v", d.UplinkTargets, d.NTPPool)
	}
}

// TestLACPDefault: at a 0-OS boot (LoadBoot with runmode=) netinit
// listens for LACP unless netinit.bond=off; elsewhere only when asked.
func TestLACPDefault(t *testing.T) {
	for _, tc := range []struct {
		line     string
		boot, up spec.LACPMode
	}{
		{"ip=dhcp", spec.LACPDefault, spec.LACPDefault},
		{"runmode=dev", spec.LACPAuto, spec.LACPDefault},
		{"runmode=dev netinit.bond=off", spec.LACPOff, spec.LACPOff},
		{"netinit.bond=auto", spec.LACPAuto, spec.LACPAuto},
		{"runmode=prod bond=bond0:eth0,eth1", spec.LACPAuto, spec.LACPDefault},
	} {
		boot, ps := LoadBoot("", tc.line)
		up, ps2 := Load("", tc.line)
		if len(ps)+len(ps2) != 0 {
			t.Fatal(ps, ps2)
		}
		if boot.LACP != tc.boot || up.LACP != tc.up {
			t.Errorf("%q: LACP at boot %v, by up %v; want %v, %v", tc.line, boot.LACP, up.LACP, tc.boot, tc.up)
		}
	}
}

func TestZOSKeysMalformed(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"runmode=main", `runmode="main": want one of prod, test, qa, dev`},
		{"vlan:priv=4095", `vlan:priv="4095": want a VLAN ID 1..4094, or none/untagged`},
		{"vlan:pub=0", `vlan:pub="0": want a VLAN ID`},
		{"vlan:priv", `vlan:priv: needs a value`},
		{"netinit.identity=seed.txt", `netinit.identity="seed.txt": not an absolute path`},
		{"netinit.ygg.listen=tcp://gent01.grid.tf:9943", `not an IP address`},
		{"netinit.ygg.listen=ws://[::]:9943", `scheme "ws"`},
		{"netinit.ygg.listen=tcp://[::]:99999", `port "99999"`},
	} {
		s, ps := Parse(tc.line)
		if len(ps) != 1 || !strings.Contains(ps[0].Error(), tc.want) {
			t.Errorf("%s: problems %v, want one saying %q", tc.line, problemStrings(ps), tc.want)
		}
		if s.RunMode != "" || s.VLANPriv != 0 || s.Identity != "" || s.YggListen != nil {
			t.Errorf("%s: malformed value applied: %+v", tc.line, s)
		}
	}
}

func TestIdentityAndListen(t *testing.T) {
	s := must(Parse("netinit.identity=/var/cache/modules/identityd/seed.txt netinit.ygg.listen=tcp://[::]:9943,tls://[::]:9944"))
	if s.Identity != "/var/cache/modules/identityd/seed.txt" ||
		!slices.Equal(s.YggListen, []string{"tcp://[::]:9943", "tls://[::]:9944"}) {
		t.Fatalf("%q %v", s.Identity, s.YggListen)
	}
}

// The image's own config file parses cleanly and selects production.
func TestImageConfig(t *testing.T) {
	s, ps := Load("../../initramfs/netinit.conf", "")
	if len(ps) != 0 {
		t.Fatalf("problems: %v", problemStrings(ps))
	}
	if s.RunMode != runmode.Prod || !reflect.DeepEqual(s.YggPeers, runmode.For(runmode.Prod).YggPeers) || !s.YggMulticast {
		t.Fatalf("image config: runmode %q peers %v", s.RunMode, s.YggPeers)
	}
}

func TestNextAndRoot(t *testing.T) {
	s := must(Parse(`netinit.next="/sbin/zinit init" netinit.root=tmpfs:2g`))
	if s.Next != "/sbin/zinit" || !slices.Equal(s.NextArgs, []string{"init"}) || s.Root != spec.RootTmpfs || s.RootSize != "2g" {
		t.Fatalf("next %q %q root %q %q", s.Next, s.NextArgs, s.Root, s.RootSize)
	}
	if s := must(Parse("netinit.root=off netinit.next=/init")); s.Root != spec.RootOff || s.Next != "/init" || len(s.NextArgs) != 0 {
		t.Fatalf("%+v", s)
	}
	if s := must(Parse("netinit.root=tmpfs")); s.Root != spec.RootTmpfs || s.RootSize != "" {
		t.Fatalf("%+v", s)
	}
	for _, bad := range []string{"netinit.root=ramfs", "netinit.root=tmpfs:", "netinit.root=tmpfs:0", "netinit.root=tmpfs:1.5g",
		"netinit.root=tmpfs:12mg", "netinit.root=off:1g", `netinit.next=" "`, `netinit.next="zinit init"`} {
		if s, ps := Parse(bad); len(ps) != 1 || s.Root != spec.RootAuto || s.Next != "" {
			t.Errorf("%s: problems %v, spec root %q next %q", bad, problemStrings(ps), s.Root, s.Next)
		}
	}
}

// TestBridgeKey: netinit.bridge= takes an interface name or off, and
// refuses what cannot be one.
func TestBridgeKey(t *testing.T) {
	for _, c := range []struct{ line, want, problem string }{
		{"", "", ""},
		{"netinit.bridge=zos", "zos", ""},
		{"netinit.bridge=off", "off", ""},
		{"netinit.bridge=a/b", "", `contains '/'`},
		{"netinit.bridge=averyveryverylongname", "", "longer than 15"},
	} {
		s, probs := Parse(c.line)
		if s.Bridge != c.want {
			t.Errorf("%q: bridge %q, want %q", c.line, s.Bridge, c.want)
		}
		if got := fmt.Sprint(probs); c.problem == "" && len(probs) > 0 || c.problem != "" && !strings.Contains(got, c.problem) {
			t.Errorf("%q: problems %v, want %q", c.line, probs, c.problem)
		}
	}
}

// TestZOSVersion: 0-OS's version= tells a network-light node (v3light,
// v4); the last one wins, as zosbase's Params.GetOne reads it; a value
// that is not a version word is a problem naming the token.
func TestZOSVersion(t *testing.T) {
	for _, tc := range []struct {
		line  string
		want  string
		light bool
	}{
		{"runmode=prod", "", false},
		{"version=v3", "v3", false},
		{"version=v3light", "v3light", true},
		{"version=v4", "v4", true},
		{"version=v4 version=v3", "v3", false},
		{"version=v3 version=v3light", "v3light", true},
	} {
		s := must(Parse(tc.line))
		if s.ZOSVersion != tc.want || s.Light() != tc.light {
			t.Errorf("%q: version %q light %v, want %q %v", tc.line, s.ZOSVersion, s.Light(), tc.want, tc.light)
		}
	}
	s, probs := Parse("version=v4;rm")
	if len(probs) != 1 || !strings.Contains(probs[0].Error(), `version="v4;rm"`) || s.Light() {
		t.Errorf("bad version: problems %v, light %v", probs, s.Light())
	}
}
