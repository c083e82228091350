package kernelconfig

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/initramfs"
)

const smallConfig = `#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_DEVTMPFS=y
# CONFIG_DEVTMPFS_MOUNT is not set
CONFIG_TUN=m
CONFIG_NR_CPUS=512
CONFIG_IPV6=y
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(smallConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"CONFIG_DEVTMPFS", "y"},
		{"CONFIG_DEVTMPFS_MOUNT", "n"},
		{"CONFIG_TUN", "m"},
		{"CONFIG_NR_CPUS", "512"},
		{"CONFIG_CC_VERSION_TEXT", `"gcc (Debian 12.2.0-14) 12.2.0"`},
		{"CONFIG_ABSENT", "n"},
	} {
		if got := c.Get(tc.name); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := ParseConfig(strings.NewReader("CONFIG_X=y\nbogus\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bogus line: err = %v", err)
	}
}

func TestParseFragment(t *testing.T) {
	frag := `# header
CONFIG_DEVTMPFS=y   # no udev
CONFIG_TUN=ym
# @class hw
CONFIG_E1000=ym # Intel
CONFIG_DEVTMPFS_MOUNT=n # netinit mounts it itself
CONFIG_NR_CPUS=512
CONFIG_CMDLINE="x y" # exact string
`
	reqs, err := ParseFragment(strings.NewReader(frag))
	if err != nil {
		t.Fatal(err)
	}
	want := []Requirement{
		{Name: "CONFIG_DEVTMPFS", Want: "y", Class: "core", Why: "no udev", Line: 2},
		{Name: "CONFIG_TUN", Want: "ym", Class: "core", Line: 3},
		{Name: "CONFIG_E1000", Want: "ym", Class: "hw", Why: "Intel", Line: 5},
		{Name: "CONFIG_DEVTMPFS_MOUNT", Want: "n", Class: "hw", Why: "netinit mounts it itself", Line: 6},
		{Name: "CONFIG_NR_CPUS", Want: "512", Class: "hw", Line: 7},
		{Name: "CONFIG_CMDLINE", Want: `"x y"`, Class: "hw", Why: "exact string", Line: 8},
	}
	if !reflect.DeepEqual(reqs, want) {
		t.Errorf("got  %+v\nwant %+v", reqs, want)
	}
	for _, bad := range []string{"CONFIG_X", "TUN=y", "CONFIG_X=y\nCONFIG_X=m"} {
		if _, err := ParseFragment(strings.NewReader(bad)); err == nil {
			t.Errorf("fragment %q: no error", bad)
		}
	}
}

func TestSatisfied(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"y", "y", true}, {"y", "m", false}, {"y", "n", false},
		{"m", "m", true}, {"m", "y", false},
		{"ym", "y", true}, {"ym", "m", true}, {"ym", "n", false},
		{"n", "n", true}, {"n", "y", false}, {"n", "m", false},
		{"512", "512", true}, {"512", "64", false},
	} {
		if got := (Requirement{Want: tc.want}).Satisfied(tc.got); got != tc.ok {
			t.Errorf("want %s, got %s: satisfied = %v", tc.want, tc.got, got)
		}
	}
}

func TestCheck(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(smallConfig))
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := ParseFragment(strings.NewReader("CONFIG_DEVTMPFS=y\nCONFIG_TUN=ym\nCONFIG_PACKET=y # raw sockets\n# @class hw\nCONFIG_IGB=ym\nCONFIG_DEVTMPFS_MOUNT=n\n"))
	if err != nil {
		t.Fatal(err)
	}
	un := Check(cfg, reqs)
	var got []string
	for _, u := range un {
		got = append(got, u.String())
	}
	want := []string{
		"CONFIG_PACKET: want y, got n [core]: raw sockets",
		"CONFIG_IGB: want y or m, got n [hw]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unmet %q, want %q", got, want)
	}
	if c := Classes(reqs); !reflect.DeepEqual(c, []string{"core", "hw"}) {
		t.Errorf("classes %v", c)
	}
}

// The fragment in the repository states every requirement of the brief.
func TestNetinitFragment(t *testing.T) {
	reqs, err := ReadFragment("netinit.config")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Requirement{}
	for _, r := range reqs {
		if r.Why == "" {
			t.Errorf("%s has no reason", r.Name)
		}
		got[r.Name] = r
	}
	for _, n := range []string{"DEVTMPFS", "BLK_DEV_INITRD", "RD_GZIP", "IPV6", "IPV6_OPTIMISTIC_DAD", "PACKET", "UNIX", "INET", "TUN", "NF_TABLES", "NF_TABLES_INET", "NFT_CT", "MODULES", "VIRTIO_NET", "VLAN_8021Q"} {
		if r, ok := got["CONFIG_"+n]; !ok || r.Class != ClassCore {
			t.Errorf("CONFIG_%s missing or not core: %+v", n, r)
		}
	}
	for _, n := range []string{"E1000", "E1000E", "IGB", "IXGBE", "I40E", "ICE", "BNXT", "TIGON3", "R8169", "MLX4_EN", "MLX5_CORE"} {
		if r, ok := got["CONFIG_"+n]; !ok || r.Class != ClassHW || r.Want != "ym" {
			t.Errorf("CONFIG_%s missing or not hw/ym: %+v", n, r)
		}
	}
}

// Debian's kernels meet the core requirements; the cloud flavour lacks
// (only) hardware NIC drivers, the plain amd64 flavour has them all.
func TestDebianKernel(t *testing.T) {
	reqs, err := ReadFragment("netinit.config")
	if err != nil {
		t.Fatal(err)
	}
	k, err := initramfs.FindKernel("")
	if err != nil {
		if os.Getenv("NETINIT_LAB") == "1" {
			t.Fatalf("NETINIT_LAB=1 but %v", err)
		}
		t.Skip(err)
	}
	check := func(t *testing.T, k initramfs.Kernel) (core, hw []string) {
		cfg, err := ReadConfig(k.Config)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg) < 1000 {
			t.Fatalf("%s: only %d options parsed", k.Config, len(cfg))
		}
		for _, u := range Check(cfg, reqs) {
			if u.Class == ClassHW {
				hw = append(hw, strings.TrimPrefix(u.Name, "CONFIG_"))
			} else {
				core = append(core, u.String())
			}
		}
		sort.Strings(hw)
		return core, hw
	}
	t.Run(k.Version, func(t *testing.T) {
		core, hw := check(t, k)
		if len(core) > 0 {
			t.Errorf("core requirements unmet:\n%s", strings.Join(core, "\n"))
		}
		t.Logf("hardware NIC drivers missing: %v", hw)
		if strings.Contains(k.Version, "cloud") && !reflect.DeepEqual(hw, []string{"BNXT", "E1000", "E1000E", "I40E", "ICE", "IGB", "IXGBE", "R8169", "TIGON3"}) {
			t.Errorf("cloud flavour hw unmet %v; has Debian's cloud config changed?", hw)
		}
	})
	// The plain flavour only when it was fetched (KERNEL_FLAVOUR=amd64).
	plain := strings.Replace(k.Version, "-cloud-amd64", "-amd64", 1)
	if kp, err := initramfs.FindKernel(plain); err == nil && plain != k.Version {
		t.Run(plain, func(t *testing.T) {
			core, hw := check(t, kp)
			if len(core)+len(hw) > 0 {
				t.Errorf("unmet: core %v hw %v", core, hw)
			}
		})
	}
}
