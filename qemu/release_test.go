package qemu_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// The release boots: `make release` builds the artifacts a farmer uses
// (with RELEASE_APPEND putting the console on the serial port and the test
// mode on), and QEMU boots them through real firmware — SeaBIOS with the
// NIC's iPXE option ROM over slirp's TFTP, and OVMF from the USB image.

var releaseDir built

// releaseBootTimeout bounds a boot through real firmware. Under TCG the
// firmware runs emulated before the kernel does (OVMF, or SeaBIOS and
// iPXE's TFTP transfer of the kernel and image): power-on to the result
// took 17 s at load 4 on 2 cores and ~40 s in CI, where a direct boot
// takes ~10 s, and more than bootTimeout (90 s) at load 12, when QEMU
// gets a sixth of a core. A hung boot still ends within it.
const releaseBootTimeout = 3 * time.Minute

// release runs `make release` once into a temporary build directory.
func release(t *testing.T) string {
	t.Helper()
	requireHW(t)
	return releaseDir.get(t, "the release (make release)", func(build string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "release", "BUILD="+build,
			"HW_KERNEL_VERSION="+filepath.Base(filepath.Dir(os.Getenv("NETINIT_HW_KERNEL"))),
			"CACHE="+filepath.Dir(filepath.Dir(filepath.Dir(os.Getenv("NETINIT_HW_KERNEL")))),
			"RELEASE_APPEND=console=ttyS0 netinit.test=poweroff")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		t.Logf("make release:\n%s", out)
		return filepath.Join(build, "release"), err
	})
}

// TestReleasePXE: SeaBIOS runs the NIC's iPXE ROM, which takes
// netinit.ipxe from slirp's TFTP server (the release directory), loads the
// kernel and image relative to it and passes BOOTIF. A second NIC (no
// boot ROM) also gets a lease, and BOOTIF makes the PXE NIC the uplink.
func TestReleasePXE(t *testing.T) {
	dir := release(t)
	t.Parallel()
	const second = "52:54:00:12:34:57"
	res := bootWith(t, qemu.Options{
		NetDev: qemu.DefaultNetDev + ",tftp=" + dir + ",bootfile=netinit.ipxe",
		ExtraArgs: []string{"-netdev", "user,id=n1,ipv4=on,ipv6=off",
			"-device", "virtio-net-pci,netdev=n1,romfile=,mac=" + second},
		Firmware: qemu.Firmware{NIC: "e1000e", PXE: true, Kernel: filepath.Join(dir, "vmlinuz")},
		Timeout:  releaseBootTimeout,
	})
	st := res.State
	t.Logf("phase %q uplink %q problems %q timings %v", st.Phase, st.Uplink, st.Problems, st.TimingsMS)
	if st.Phase != state.PhaseReady {
		t.Errorf("phase %q, want ready", st.Phase)
	}
	var uplinkMAC string
	for _, ifc := range st.Interfaces {
		if ifc.Name == st.Uplink {
			uplinkMAC = ifc.MAC
		}
	}
	if !strings.EqualFold(uplinkMAC, qemu.DefaultMAC) {
		t.Errorf("uplink %q has MAC %q, want the PXE NIC %s (BOOTIF)", st.Uplink, uplinkMAC, qemu.DefaultMAC)
	}
}

// TestReleaseUSB: OVMF boots the USB image (usb-storage on qemu-xhci):
// systemd-boot from the ESP loads the kernel and image with the release's
// parameters.
func TestReleaseUSB(t *testing.T) {
	dir := release(t)
	t.Parallel()
	vars, err := qemu.CopyOVMFVars(t.TempDir())
	if errors.Is(err, fs.ErrNotExist) {
		need(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	res := bootWith(t, qemu.Options{
		Firmware: qemu.Firmware{UEFIVars: vars, USBDisk: filepath.Join(dir, "netinit-usb.img"), Kernel: filepath.Join(dir, "vmlinuz")},
		Timeout:  releaseBootTimeout,
	})
	st := res.State
	t.Logf("phase %q uplink %q problems %q timings %v", st.Phase, st.Uplink, st.Problems, st.TimingsMS)
	if st.Phase != state.PhaseReady {
		t.Errorf("phase %q, want ready", st.Phase)
	}
}
