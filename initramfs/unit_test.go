package initramfs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseModinfoSection(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want Modinfo
	}{
		{
			name: "virtio_net",
			data: "alias=virtio:d00000001v*\x00depends=net_failover,virtio_ring\x00retpoline=Y\x00name=virtio_net\x00vermagic=6.1.0 SMP\x00",
			want: Modinfo{Name: "virtio_net", Depends: []string{"net_failover", "virtio_ring"}, Aliases: []string{"virtio:d00000001v*"}},
		},
		{
			name: "padding and empty depends",
			data: "\x00\x00license=GPL\x00\x00\x00depends=\x00name=failover\x00",
			want: Modinfo{Name: "failover"},
		},
		{
			name: "dashes in depends, unsorted",
			data: "depends=pci-hyperv-intf,mlxfw\x00name=mlx5_core\x00softdep=pre: mlx5_ib\x00",
			want: Modinfo{Name: "mlx5_core", Depends: []string{"mlxfw", "pci_hyperv_intf"}, SoftDeps: []string{"pre: mlx5_ib"}},
		},
		{
			name: "garbage entries skipped",
			data: "noequals\x00alias=a\x00alias=b\x00",
			want: Modinfo{Aliases: []string{"a", "b"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseModinfoSection([]byte(tc.data))
			got.Fields = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestModuleName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"kernel/drivers/net/virtio_net.ko", "virtio_net", true},
		{"pci-hyperv-intf.ko", "pci_hyperv_intf", true},
		{"/x/e1000e.ko.xz", "e1000e", true},
		{"a.ko.gz", "a", true},
		{"modules.dep", "", false},
		{"a.ko.zst", "", false},
	} {
		got, ok := ModuleName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ModuleName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseFile(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    File
		wantErr string
	}{
		{in: "a:/b", want: File{Src: "a", Dst: "/b"}},
		{in: "a:/etc/x.conf:600", want: File{Src: "a", Dst: "/etc/x.conf", Mode: 0o600}},
		{in: "a:/b:4755", want: File{Src: "a", Dst: "/b", Mode: 0o4755}},
		{in: "a", wantErr: "SRC:DST"},
		{in: ":/b", wantErr: "SRC:DST"},
		{in: "a:/b:999", wantErr: "octal"},
		{in: "a:/b:1:2", wantErr: "SRC:DST"},
	} {
		got, err := ParseFile(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseFile(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseFile(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestDepsOrder(t *testing.T) {
	// a -> b, c; b -> d; c -> d. Loading the list backwards must load d
	// before b and c, and both before a.
	s := &ModuleSet{byName: map[string]*Module{}}
	for _, m := range []Module{
		{Name: "a", Path: "a.ko", Info: Modinfo{Depends: []string{"b", "c"}}},
		{Name: "b", Path: "b.ko", Info: Modinfo{Depends: []string{"d"}}},
		{Name: "c", Path: "c.ko", Info: Modinfo{Depends: []string{"d"}}},
		{Name: "d", Path: "d.ko"},
	} {
		s.Modules = append(s.Modules, m)
	}
	for i := range s.Modules {
		s.byName[s.Modules[i].Name] = &s.Modules[i]
	}
	if got := strings.Join(s.Deps("a"), " "); got != "c b d" {
		t.Errorf("Deps(a) = %q, want %q", got, "c b d")
	}
	want := "a.ko: c.ko b.ko d.ko\nb.ko: d.ko\nc.ko: d.ko\nd.ko:\n"
	if got := string(s.ModulesDep()); got != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, want)
	}
}
