package kmod

import (
	"reflect"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000012v00001AF4", false},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00", true},
		{"pci:v00008086d000010D3sv*sd*bc*sc*i*", "pci:v00008086d000010D4sv00008086sd0000A01Fbc02sc00i00", false},
		// Character classes from real modules.alias lines.
		{"usb:v13FDp3940d0[0-2]*dc*dsc*dp*ic*isc*ip*in*", "usb:v13FDp3940d0100dc00dsc00dp00ic08isc06ip50in00", true},
		{"usb:v13FDp3940d0[0-2]*dc*dsc*dp*ic*isc*ip*in*", "usb:v13FDp3940d0300dc00dsc00dp00ic08isc06ip50in00", false},
		{"usb:v1645p0007d013[0-3]dc*", "usb:v1645p0007d0133dc00", true},
		{"usb:v1645p0007d013[!0-3]dc*", "usb:v1645p0007d0133dc00", false},
		{"usb:v1645p0007d013[^0-3]dc*", "usb:v1645p0007d0134dc00", true},
		{"x[]a]y", "x]y", true},
		{"x[ab", "x[ab", true}, // unclosed class: literal '['
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*", "a/b/c", true}, // fnmatch flags 0: '*' matches '/'
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"acpi*:LNRO0005:*", "acpi:LNRO0005:", true},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
	} {
		if got := Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestAliasesMatch(t *testing.T) {
	const file = `# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias acpi*:LNRO0005:* virtio_mmio
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000-dup
alias char-major-10-200 tun
`
	a, err := ParseAliases(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 7 {
		t.Errorf("Len = %d, want 7", a.Len())
	}
	for _, tc := range []struct {
		modalias string
		want     []string
	}{
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_pci"}},
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"pci:v00008086d0000100Esv00008086sd00000000bc02sc00i00", []string{"e1000", "e1000_dup"}},
		{"acpi:LNRO0005:", []string{"virtio_mmio"}},
		{"char-major-10-200", []string{"tun"}},
		{"pci:v000010ECd00008139sv*", nil},
	} {
		if got := a.Match(tc.modalias); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Match(%q) = %v, want %v", tc.modalias, got, tc.want)
		}
	}
	if _, err := ParseAliases(strings.NewReader("alias onlyone\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/virtio_net.ko":    "virtio_net",
		"kernel/drivers/net/virtio-net.ko.xz": "virtio_net",
		"mlx5-core.ko.zst":                    "mlx5_core",
		"8021q":                               "8021q",
		"snd-hda-intel":                       "snd_hda_intel",
		"kernel/x/kobj.ko":                    "kobj",
	} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDeps(t *testing.T) {
	const file = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/foo-bar.ko.xz: kernel/drivers/virtio/virtio.ko
`
	d, err := ParseDeps(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Dep{
		"virtio":      {Path: "kernel/drivers/virtio/virtio.ko"},
		"virtio_ring": {Path: "kernel/drivers/virtio/virtio_ring.ko", Deps: []string{"virtio"}},
		"virtio_net":  {Path: "kernel/drivers/net/virtio_net.ko", Deps: []string{"net_failover", "failover", "virtio_ring", "virtio"}},
		"foo_bar":     {Path: "kernel/drivers/net/foo-bar.ko.xz", Deps: []string{"virtio"}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("ParseDeps = %#v\nwant %#v", d, want)
	}
	if _, err := ParseDeps(strings.NewReader("no colon here\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestParseBuiltinModinfo(t *testing.T) {
	b := []byte("e1000e.alias=pci:v00008086d000010D3sv*sd*bc*sc*i*\x00e1000e.license=GPL\x00serio.description=x\x00")
	a := ParseBuiltinModinfo(b)
	if got := a.Match("pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"); !reflect.DeepEqual(got, []string{"e1000e"}) {
		t.Errorf("Match = %v", got)
	}
	if a.Len() != 1 {
		t.Errorf("Len = %d, want 1", a.Len())
	}
}

func TestParseSoftdeps(t *testing.T) {
	got, err := ParseSoftdeps(strings.NewReader("softdep a pre: b c post: d\nsoftdep a post: e\nsoftdep x-y pre: z\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Softdep{"a": {Pre: []string{"b", "c"}, Post: []string{"d", "e"}}, "x_y": {Pre: []string{"z"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"softdep a\n", "softdep a b pre: c\n", "alias x y\n"} {
		if _, err := ParseSoftdeps(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if sd, err := ParseSoftdep("pre: crc32c post: a b"); err != nil || !reflect.DeepEqual(sd, Softdep{Pre: []string{"crc32c"}, Post: []string{"a", "b"}}) {
		t.Errorf("ParseSoftdep = %+v, %v", sd, err)
	}
	if _, err := ParseSoftdep("crc32c pre: x"); err == nil || !strings.Contains(err.Error(), `"crc32c" before`) {
		t.Errorf("ParseSoftdep without pre:/post: gave %v", err)
	}
}

func TestParseBuiltin(t *testing.T) {
	got := ParseBuiltin([]byte("kernel/drivers/net/virtio-net.ko\nkernel/net/bridge/bridge.ko\n"))
	if want := map[string]bool{"virtio_net": true, "bridge": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseBuiltin = %v, want %v", got, want)
	}
}
