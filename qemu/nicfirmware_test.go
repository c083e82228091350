package qemu_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/qemu"
)

// TestBootNICFirmware boots the hardware flavour with QEMU's i82559ER NIC,
// the one QEMU model whose driver asks for a firmware file: e100 loads the
// CPUSaver microcode e100/d101s_ucode.bin for its PCI revision 9, D101S
// (e100.c, e100_request_firmware; QEMU's eepro100.c gives the i82559ER
// revision 0x09, its i82559C 0x0c, which needs none; virtio, e1000,
// e1000e, rtl8139, pcnet, ne2k and vmxnet3 ask for none, and QEMU 7.2
// has no igb) and works without it.
// The image carries e100's files from the firmware packages; without
// d101m_ucode.bin the kernel's "Direct firmware load ... failed" becomes a
// problem naming the module and the file, with it the kernel loads the
// file from /lib/firmware itself (no udev) and no problem is reported.
func TestBootNICFirmware(t *testing.T) {
	e := requireHW(t)
	fwDir := os.Getenv("NETINIT_FIRMWARE_DIR")
	if fwDir == "" {
		need(t, "NETINIT_FIRMWARE_DIR (make firmware) must be set")
	}
	const file = "e100/d101s_ucode.bin"
	bin := netinitBinary(t)
	for _, tc := range []struct {
		name    string
		without bool
	}{{"without", true}, {"with", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fw := filepath.Join(dir, "firmware")
			if err := os.MkdirAll(filepath.Join(fw, "e100"), 0o755); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(filepath.Join(fwDir, "e100"))
			if err != nil {
				t.Fatal(err)
			}
			for _, ent := range ents {
				if tc.without && "e100/"+ent.Name() == file {
					continue
				}
				b, err := os.ReadFile(filepath.Join(fwDir, "e100", ent.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(fw, "e100", ent.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img := filepath.Join(dir, "initramfs.cpio.gz")
			if err := goCmds(t, []string{"run", "./cmd/mkinitramfs", "-init", bin, "-modules-dir", e.modules,
				"-modules", "e100,tun,nf_tables,nft_ct", "-firmware-dir", fw, "-o", img}); err != nil {
				t.Fatal(err)
			}
			res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: img, Append: "netinit.test=poweroff",
				Firmware: qemu.Firmware{NIC: "i82559er"}})
			st := res.State
			if st.Modules == nil || !strings.Contains(strings.Join(st.Modules.Loaded, " "), "e100") {
				t.Fatalf("e100 not loaded: %+v", st.Modules)
			}
			var got []string
			for _, p := range st.Problems {
				if strings.HasPrefix(p, "firmware:") {
					got = append(got, p)
				}
			}
			t.Logf("firmware problems: %q", got)
			switch {
			case tc.without && (len(got) != 1 || !strings.Contains(got[0], "module e100 ") || !strings.Contains(got[0], `"`+file+`"`)):
				t.Errorf("want one problem naming module e100 and %s, got %q", file, got)
			case !tc.without && len(got) != 0:
				t.Errorf("the file is in the image, yet: %q", got)
			}
			if st.Phase != "ready" {
				t.Errorf("phase %s (e100 works without its microcode)", st.Phase)
			}
		})
	}
}
