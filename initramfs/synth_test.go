package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// fakeModule returns a minimal ELF64 relocatable object whose only
// content is a .modinfo section with the given key=value entries, which
// is all ReadModinfo looks at.
func fakeModule(t *testing.T, fields ...string) []byte {
	t.Helper()
	var modinfo []byte
	for _, f := range fields {
		modinfo = append(modinfo, f...)
		modinfo = append(modinfo, 0)
	}
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modOff := uint64(ehsize)
	strOff := modOff + uint64(len(modinfo))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7

	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	must(t, binary.Write(&b, binary.LittleEndian, hdr))
	b.Write(modinfo)
	b.Write(shstr)
	for uint64(b.Len()) < shOff {
		b.WriteByte(0)
	}
	secs := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modOff, Size: uint64(len(modinfo)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	for _, s := range secs {
		must(t, binary.Write(&b, binary.LittleEndian, s))
	}
	return b.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// synthTree writes a small lib/modules/<rel> tree shaped like a real one:
//
//	virtio_net -> net_failover -> failover, virtio_ring
//	nf_tables -> libcrc32c (softdep pre: crc32c, provided by crc32c_generic via alias)
//	pci-hyperv-intf.ko (dash in the file name), xzmod.ko.xz (compressed)
//	builtin_nic is built in (modules.builtin)
func synthTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-99-test")
	vm := "vermagic=6.1.0-99-test SMP mod_unload"
	mods := map[string][]string{
		"kernel/drivers/net/virtio_net.ko":                 {"alias=virtio:d00000001v*", "depends=net_failover,virtio_ring", "name=virtio_net", vm},
		"kernel/drivers/net/net_failover.ko":               {"depends=failover", "name=net_failover", vm},
		"kernel/net/core/failover.ko":                      {"depends=", "name=failover", vm},
		"kernel/drivers/virtio/virtio_ring.ko":             {"depends=", "name=virtio_ring", vm},
		"kernel/net/netfilter/nf_tables.ko":                {"alias=nfnetlink-subsys-10", "depends=libcrc32c", "name=nf_tables", vm},
		"kernel/lib/libcrc32c.ko":                          {"softdep=pre: crc32c", "depends=", "name=libcrc32c", vm},
		"kernel/crypto/crc32c_generic.ko":                  {"alias=crypto-crc32c", "alias=crc32c", "depends=", "name=crc32c_generic", vm},
		"kernel/drivers/pci/controller/pci-hyperv-intf.ko": {"depends=", "name=pci_hyperv_intf", vm},
		"kernel/drivers/net/unrelated.ko":                  {"depends=", "name=unrelated", vm},
	}
	for rel, f := range mods {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, fakeModule(t, f...), 0o644))
	}
	var xzb bytes.Buffer
	zw, err := xz.NewWriter(&xzb)
	must(t, err)
	_, err = zw.Write(fakeModule(t, "alias=pci:v00008086d*", "depends=failover", "name=xzmod", vm))
	must(t, err)
	must(t, zw.Close())
	must(t, os.WriteFile(filepath.Join(dir, "kernel/drivers/net/xzmod.ko.xz"), xzb.Bytes(), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/net/builtin_nic.ko\n"), 0o644))
	return dir
}

func TestSyntheticClosure(t *testing.T) {
	tree, err := OpenModuleTree(synthTree(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if tree.Release != "6.1.0-99-test" {
		t.Errorf("release %q", tree.Release)
	}
	set, err := tree.Closure([]string{"virtio-net", "nf_tables", "pci_hyperv_intf", "xzmod", "builtin_nic", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range set.Modules {
		got = append(got, m.Name)
	}
	want := "crc32c_generic net_failover virtio_net xzmod pci_hyperv_intf virtio_ring libcrc32c failover nf_tables"
	if strings.Join(got, " ") != want {
		t.Errorf("modules (by path)\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if strings.Join(set.Builtin, ",") != "builtin_nic" || strings.Join(set.Missing, ",") != "nosuch" {
		t.Errorf("builtin %v missing %v", set.Builtin, set.Missing)
	}
	if m, _ := set.Get("xzmod"); m.Path != "kernel/drivers/net/xzmod.ko" {
		t.Errorf("xzmod path %q, want the uncompressed name", m.Path)
	}

	dep := string(set.ModulesDep())
	for _, line := range []string{
		"kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n",
		"kernel/net/core/failover.ko:\n",
		"kernel/net/netfilter/nf_tables.ko: kernel/lib/libcrc32c.ko\n",
		"kernel/drivers/net/xzmod.ko: kernel/net/core/failover.ko\n",
	} {
		if !strings.Contains(dep, line) {
			t.Errorf("modules.dep lacks %q:\n%s", line, dep)
		}
	}
	if strings.Contains(dep, "unrelated") {
		t.Errorf("modules.dep has a module that was not selected:\n%s", dep)
	}
	alias := string(set.ModulesAlias())
	for _, line := range []string{"alias virtio:d00000001v* virtio_net\n", "alias crc32c crc32c_generic\n", "alias pci:v00008086d* xzmod\n"} {
		if !strings.Contains(alias, line) {
			t.Errorf("modules.alias lacks %q:\n%s", line, alias)
		}
	}
	if sd := string(set.ModulesSoftdep()); !strings.Contains(sd, "softdep libcrc32c pre: crc32c\n") {
		t.Errorf("modules.softdep: %q", sd)
	}
}

func TestSyntheticImage(t *testing.T) {
	tree, err := OpenModuleTree(synthTree(t), "")
	must(t, err)
	set, err := tree.Closure([]string{"virtio_net", "xzmod"})
	must(t, err)
	init := filepath.Join(t.TempDir(), "init")
	must(t, os.WriteFile(init, []byte("\x7fELF fake init"), 0o755))
	var a, b bytes.Buffer
	spec := Spec{Init: init, Modules: set, Epoch: 1700000000}
	if _, err := Write(&a, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two builds differ")
	}
	recs, _, err := ReadImage(a.Bytes())
	must(t, err)
	x, ok := recs["lib/modules/6.1.0-99-test/kernel/drivers/net/xzmod.ko"]
	if !ok {
		t.Fatal("xzmod.ko missing")
	}
	buf := make([]byte, x.FileSize)
	_, err = x.ReadAt(buf, 0)
	must(t, err)
	mi, err := ParseModinfo(buf)
	if err != nil || mi.Name != "xzmod" {
		t.Errorf("xzmod.ko in the image is not the decompressed module: %v %+v", err, mi)
	}
	for n, r := range recs {
		if r.MTime != 1700000000 {
			t.Errorf("%s mtime %d", n, r.MTime)
		}
	}
}

// TestCompressions: every compression writes an image that reads back to
// the same records, and twice the same bytes.
func TestCompressions(t *testing.T) {
	init := filepath.Join(t.TempDir(), "init")
	must(t, os.WriteFile(init, []byte("#!/bin/true\n"), 0o755))
	for _, c := range []string{"gzip", "none", "zstd", "xz", "lz4"} {
		t.Run(c, func(t *testing.T) {
			if argv, ok := Compressors[c]; ok {
				if _, err := exec.LookPath(argv[0]); err != nil {
					t.Skipf("%s not installed", argv[0])
				}
			}
			var a, b bytes.Buffer
			for _, w := range []*bytes.Buffer{&a, &b} {
				if _, err := Write(w, Spec{Init: init, Compress: c, Epoch: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Error("two writes differ")
			}
			recs, _, err := ReadImage(a.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if r, ok := recs["init"]; !ok || r.FileSize != 12 {
				t.Errorf("init record %+v", r)
			}
		})
	}
	if _, err := Write(io.Discard, Spec{Init: init, Compress: "lz77"}); err == nil {
		t.Error("unknown compression: no error")
	}
}
