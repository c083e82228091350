package initramfs

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/u-root/u-root/pkg/cpio"
)

// TestFirmwareHardwareImage: the hardware flavour's image with every
// default module carries, under /lib/firmware, each file those modules
// name that the fetched firmware packages ($NETINIT_FIRMWARE_DIR, `make
// firmware`) have, byte for byte (a packaged symlink as that symlink, with
// its target), and nothing the modules do not name.
func TestFirmwareHardwareImage(t *testing.T) {
	dir := os.Getenv("NETINIT_FIRMWARE_DIR")
	if dir == "" {
		lab.Missing(t, "NETINIT_FIRMWARE_DIR (the unpacked firmware packages, make firmware) is not set")
	}
	hw := os.Getenv("NETINIT_HW_KERNEL")
	if hw == "" {
		lab.Missing(t, "NETINIT_HW_KERNEL is not set")
	}
	tree, err := OpenModuleTree(filepath.Join(filepath.Dir(hw), "modules"), "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := tree.Closure(DefaultModules)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := SelectFirmware(dir, set.Firmware())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Records(Spec{Init: os.Args[0], Modules: set, Firmware: fw})
	if err != nil {
		t.Fatal(err)
	}
	img := map[string]cpio.Record{}
	for _, r := range recs {
		if strings.HasPrefix(r.Name, "lib/firmware/") {
			img[strings.TrimPrefix(r.Name, "lib/firmware/")] = r
		}
	}
	named := map[string]bool{}
	var found int
	for _, ref := range set.Firmware() {
		named[ref.File] = true
		want, err := os.ReadFile(filepath.Join(dir, ref.File)) // through a symlink
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		found++
		got, err := follow(img, ref.File)
		if err != nil {
			t.Errorf("%s of %s: %v", ref.File, ref.Module, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s of %s: %d bytes in the image, %d in the package", ref.File, ref.Module, len(got), len(want))
		}
	}
	// The drivers farm NICs use most, and an example of a packaged symlink.
	for _, f := range []string{"rtl_nic/rtl8168h-2.fw", "bnx2x/bnx2x-e2-7.13.21.0.fw", "intel/ice/ddp/ice.pkg", "e100/d101m_ucode.bin"} {
		if _, ok := img[f]; !ok {
			t.Errorf("no %s in the image", f)
		}
	}
	for name, r := range img {
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR || named[name] {
			continue
		}
		if !linkedTo(img, name) {
			t.Errorf("%s is in the image but no module names it", name)
		}
	}
	t.Logf("%d of %d named firmware files found in the packages, %d files (%.1f MiB) in the image; missing: %d",
		found, len(set.Firmware()), len(fw.Files), float64(fw.Bytes())/(1<<20), len(fw.Missing))
	if found == 0 || len(fw.Missing) != len(set.Firmware())-found {
		t.Errorf("found %d, missing %d, named %d", found, len(fw.Missing), len(set.Firmware()))
	}
}

// follow is the bytes of name in the image, through symlinks.
func follow(img map[string]cpio.Record, name string) ([]byte, error) {
	for range 8 {
		r, ok := img[name]
		if !ok {
			return nil, fmt.Errorf("not in the image")
		}
		b := content(r)
		if r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
			return b, nil
		}
		name = path.Join(path.Dir(name), string(b))
	}
	return nil, fmt.Errorf("symlink loop")
}

// linkedTo reports whether a symlink in the image points to name.
func linkedTo(img map[string]cpio.Record, name string) bool {
	for n, r := range img {
		if r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
			continue
		}
		if path.Join(path.Dir(n), string(content(r))) == name {
			return true
		}
	}
	return false
}

// TestSelectFirmware: a named file, a symlink (carried with its target),
// a missing file, and names that would leave lib/firmware.
func TestSelectFirmware(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "intel/ice/ddp"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "intel/ice/ddp/ice-1.3.30.0.pkg"), []byte("ddp"), 0o644))
	must(os.Symlink("ice-1.3.30.0.pkg", filepath.Join(dir, "intel/ice/ddp/ice.pkg")))
	must(os.MkdirAll(filepath.Join(dir, "rtl_nic"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "rtl_nic/rtl8168h-2.fw"), []byte("rtl"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "unnamed.bin"), []byte("x"), 0o644))
	must(os.Symlink("../../etc/passwd", filepath.Join(dir, "rtl_nic/evil.fw")))

	fw, err := SelectFirmware(dir, []FirmwareRef{
		{"ice", "intel/ice/ddp/ice.pkg"}, {"r8169", "rtl_nic/rtl8168h-2.fw"}, {"r8169", "rtl_nic/rtl8125b-2.fw"},
	})
	must(err)
	var names []string
	for _, f := range fw.Files {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "intel/ice/ddp/ice-1.3.30.0.pkg intel/ice/ddp/ice.pkg rtl_nic/rtl8168h-2.fw" {
		t.Errorf("files %s", got)
	}
	if got := string(fw.MissingList()); got != "r8169: rtl_nic/rtl8125b-2.fw\n" {
		t.Errorf("missing %q", got)
	}
	if fw.Bytes() != 6 {
		t.Errorf("bytes %d", fw.Bytes())
	}
	for _, bad := range []string{"rtl_nic/evil.fw", "../x", "/etc/passwd"} {
		if _, err := SelectFirmware(dir, []FirmwareRef{{"m", bad}}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
