package qemu_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// The hardware boots use Debian's plain kernel flavour (the one farm
// hardware runs, with the real NIC drivers as modules), from
// $NETINIT_HW_KERNEL (vmlinuz; modules/ beside it, as `make kernel
// KERNEL_VERSION=6.1.0-47-amd64` unpacks it).

func requireHW(t *testing.T) env {
	t.Helper()
	requireEnv(t)
	k := os.Getenv("NETINIT_HW_KERNEL")
	if k == "" {
		need(t, "NETINIT_HW_KERNEL (the hardware flavour's vmlinuz) must be set")
	}
	e := env{kernel: k, modules: filepath.Join(filepath.Dir(k), "modules")}
	for _, p := range []string{e.kernel, e.modules} {
		if _, err := os.Stat(p); err != nil {
			need(t, err.Error())
		}
	}
	return e
}

var hwImage built

// hardwareImage is netinit's image for the hardware flavour with the
// e1000e driver and qemu/testdata/kmodreq as /sbin/kmodreq, built once.
func hardwareImage(t *testing.T, e env) string {
	t.Helper()
	bin := netinitBinary(t)
	return hwImage.get(t, "the hardware image", func(dir string) (string, error) {
		next := filepath.Join(dir, "kmodreq")
		img := filepath.Join(dir, "initramfs.cpio.gz")
		err := goCmds(t, goBuild(next, "./qemu/testdata/kmodreq"),
			// Only what the test needs: quick to build and to unpack.
			[]string{"run", "./cmd/mkinitramfs", "-init", bin, "-modules-dir", e.modules,
				"-modules", "e1000e,tun,nf_tables,nft_ct,8021q",
				"-file", next + ":/sbin/kmodreq:0755", "-o", img})
		if st, serr := os.Stat(img); err == nil && serr == nil {
			t.Logf("hardware image: %d bytes (%.1f MiB)", st.Size(), float64(st.Size())/(1<<20))
		}
		return img, err
	})
}

// TestBootHardwareNIC boots the release's kernel and image (the hardware
// flavour with every Ethernet driver) with emulated hardware NICs instead
// of virtio: coldplug finds the driver by modalias, the link comes up, the
// node is ready, and nf_tables (which needs libcrc32c and its soft
// dependency crc32c) is loaded for the overlay firewall. (QEMU 7.2 has no
// igb; it came with 8.0.)
func TestBootHardwareNIC(t *testing.T) {
	dir := release(t)
	img, err := filepath.Glob(filepath.Join(dir, "initramfs.cpio.*"))
	if err != nil || len(img) != 1 {
		t.Fatalf("release image: %v %v", img, err)
	}
	for _, tc := range []struct{ nic, driver string }{
		{"e1000e", "e1000e"},
		{"rtl8139", "8139cp"}, // 8139cp claims revision >= 0x20 (QEMU's), else 8139too
	} {
		t.Run(tc.nic, func(t *testing.T) {
			t.Parallel()
			res := bootWith(t, qemu.Options{Kernel: filepath.Join(dir, "vmlinuz"), Initramfs: img[0],
				Append: "netinit.test=poweroff", Firmware: qemu.Firmware{NIC: tc.nic}})
			st := res.State
			m := st.Modules
			if m == nil {
				t.Fatal("no modules in the state")
			}
			t.Logf("modules: loaded %v failed %v in %d ms; load_ms %v", m.Loaded, m.Failed, m.TookMS, m.LoadMS)
			t.Logf("phase %q uplink %q problems %q firewall %q timings %v", st.Phase, st.Uplink, st.Problems, st.Firewall, st.TimingsMS)
			if !slices.Contains(m.Loaded, tc.driver) && !slices.Contains(m.Loaded, "8139too") {
				t.Errorf("driver %s not loaded: %v", tc.driver, m.Loaded)
			}
			for _, mod := range []string{"nf_tables", "nft_ct", "libcrc32c"} {
				if !slices.Contains(m.Loaded, mod) {
					t.Errorf("%s not loaded: loaded %v failed %q", mod, m.Loaded, m.Failed)
				}
			}
			if i, j := slices.Index(m.Loaded, tc.driver), slices.Index(m.Loaded, "nf_tables"); i >= 0 && j >= 0 && i > j {
				t.Errorf("NIC driver %s loaded after nf_tables: %v", tc.driver, m.Loaded)
			}
			for _, p := range st.Problems {
				if strings.Contains(p, "unavailable") {
					t.Errorf("problem: %s", p)
				}
			}
			if st.Phase != state.PhaseReady || st.Uplink == "" {
				t.Errorf("phase %q uplink %q, want ready with an uplink", st.Phase, st.Uplink)
			}
		})
	}
}

// TestBootModprobeHelper: the kernel's own request_module calls reach
// netinit's modprobe helper. The next stage creates a VLAN link; the
// kernel asks for "rtnl-link-vlan", the helper resolves the alias to 8021q
// (in the image, not loaded by the coldplug) and loads it, and the link
// exists.
func TestBootModprobeHelper(t *testing.T) {
	e := requireHW(t)
	img := hardwareImage(t, e)
	t.Parallel()
	res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: img, Append: "netinit.next=/sbin/kmodreq",
		Firmware: qemu.Firmware{NIC: "e1000e"}})
	requireConsole(t, res, "KMODREQ helper=/run/netinit/modprobe", "KMODREQ 8021q-before=false",
		"KMODREQ vlan-add-error=<nil>", "KMODREQ 8021q-after=true")
}
