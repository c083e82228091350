package qemu_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// TestBootHandoff: netinit hands off to a next stage placed in the image
// (qemu/testdata/nextstage). After the exec, the network daemon is still
// alive, answers "status" on its control socket, and renews the DHCP lease
// when asked. Killed (SIGKILL) under the next stage, which did not start
// it, the daemon's worker is restarted by the supervisor PID 1 handed it
// to, and answers again.
//
// The kernel's module helper stays netinit's while the root has no
// modprobe (netinit's own image has none); when the next stage gives the
// root one later (nextstage.modprobe=later: the stand-in copied to
// /sbin/modprobe) the daemon hands the helper to it, and the kernel runs
// it for the next request_module().
func TestBootHandoff(t *testing.T) {
	e := requireEnv(t)
	t.Parallel()
	res := bootHandoff(t, imageWithNextStage(t, e), "netinit.next=/sbin/nextstage nextstage.kill=1 nextstage.modprobe=later",
		"handing off to /sbin/nextstage", "keeps the network, supervisor pid", "NEXTSTAGE pid=1", "NEXTSTAGE state-file-phase=ready",
		"NEXTSTAGE socket-phase=ready", "NEXTSTAGE daemon-alive=true", "NEXTSTAGE renewed=true",
		"NEXTSTAGE modprobe-helper=/run/netinit/modprobe\n", "NEXTSTAGE modprobe-handed-back=true",
		"NEXTSTAGE modprobe-ran=-q -- net-pf-12\n",
		"NEXTSTAGE worker-restarted=true", "is gone; restarting in 1s")
	st := res.State
	if st == nil || st.Phase != state.PhaseReady || st.PID <= 1 {
		t.Fatalf("live state from the socket after the handoff: %+v", st)
	}
	if st.Interfaces[0].DHCP4Renewals < 1 {
		t.Errorf("no renewal counted in the live state: %+v", st.Interfaces[0])
	}
}

// bootHandoff boots img with a next stage that reports and powers off
// (no netinit.test mode), shows the console's end if the test fails, and
// checks that the console has every line of want.
func bootHandoff(t *testing.T, img, appendArgs string, want ...string) *qemu.Result {
	t.Helper()
	e := requireEnv(t)
	res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: img, Append: appendArgs})
	requireConsole(t, res, want...)
	return res
}

var nextStageImage built

// imageWithNextStage builds netinit's image with qemu/testdata/nextstage
// as /sbin/nextstage, and the files given as mkinitramfs -file specs
// (SRC:DST:MODE). Without files, the image is built once.
func imageWithNextStage(t *testing.T, e env, files ...string) string {
	t.Helper()
	if len(files) > 0 {
		return imageWithNextStageAt(t, e, "/sbin/nextstage", files...)
	}
	bin, next := netinitBinary(t), nextStageBinary(t)
	return nextStageImage.get(t, "the image with the next stage", func(dir string) (string, error) {
		return nextStageImageIn(t, e, bin, next, dir, "/sbin/nextstage")
	})
}

// imageWithNextStageAt builds netinit's image with qemu/testdata/nextstage
// at path in the image, and the files given as -file specs.
func imageWithNextStageAt(t *testing.T, e env, path string, files ...string) string {
	t.Helper()
	img, err := nextStageImageIn(t, e, netinitBinary(t), nextStageBinary(t), t.TempDir(), path, files...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// nextStageImageIn builds in dir the image of netinit bin with the next
// stage next at path, the stand-in modprobe at /usr/lib/standin/modprobe
// (the next stage installs it as the root's own with
// nextstage.modprobe=later), and the files given as -file specs.
func nextStageImageIn(t *testing.T, e env, bin, next, dir, path string, files ...string) (string, error) {
	t.Helper()
	img := filepath.Join(dir, "initramfs.cpio.lz4")
	mk := []string{"run", "./cmd/mkinitramfs", "-compress", "lz4", "-init", bin, "-modules-dir", e.modules, "-file", next + ":" + path + ":0755",
		"-file", standinModprobeBinary(t) + ":/usr/lib/standin/modprobe:0755", "-o", img}
	for _, f := range files {
		mk = append(mk, "-file", f)
	}
	return img, goCmd(t, mk...)
}

// TestBootHandoffModprobe: in an image whose root has its own modprobe
// (a baked 0-OS image has kmod's; here the stand-in at /sbin/modprobe),
// PID 1 hands the kernel's module helper to it at the handoff, and the
// kernel runs it for the next stage's request_module().
func TestBootHandoffModprobe(t *testing.T) {
	e := requireEnv(t)
	t.Parallel()
	img := imageWithNextStage(t, e, standinModprobeBinary(t)+":/sbin/modprobe:0755")
	bootHandoff(t, img, "netinit.next=/sbin/nextstage netinit.ygg=off",
		"module helper: handed back to /sbin/modprobe", "handing off to /sbin/nextstage",
		"NEXTSTAGE modprobe-helper=/sbin/modprobe\n", "NEXTSTAGE modprobe-ran=-q -- net-pf-12\n")
}

// TestBootHandoffBridge: a 0-OS command line (runmode=) makes netinit
// build the zos management bridge at boot (the bridge driver loaded by
// the coldplug); the next stage finds what 0-OS's networkd requires
// (DefaultBridgeValid) and the state says uplink zos on the NIC.
func TestBootHandoffBridge(t *testing.T) {
	e := requireEnv(t)
	t.Parallel()
	res := bootHandoff(t, imageWithNextStage(t, e), "netinit.next=/sbin/nextstage runmode=dev netinit.ygg=off nextstage.bridge=1",
		"zos: management bridge with port eth0", "NEXTSTAGE bridge-valid=true", "NEXTSTAGE renewed=true")
	st := res.State
	if st == nil || st.Phase != state.PhaseReady || st.Uplink != "zos" || st.UplinkNIC != "eth0" {
		t.Fatalf("live state after the handoff: %+v", st)
	}
	if st.Modules == nil || !slices.Contains(st.Modules.Loaded, "bridge") && !slices.Contains(st.Modules.Builtin, "bridge") {
		t.Errorf("bridge driver not loaded: %+v", st.Modules)
	}
}
