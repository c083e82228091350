package qemu

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeKVM sets up the accelerator choice as on a host whose /dev/kvm
// works (kvmCheck says yes), with a verdict cache of the test's own and a
// short probe; everything is restored at the end of the test. The tests
// using it are not parallel (they change package state).
func fakeKVM(t *testing.T) {
	t.Helper()
	oldCheck, oldFile, oldProbe := kvmCheck, accelCacheFile, ProbeTimeout
	t.Cleanup(func() {
		kvmCheck, accelCacheFile, ProbeTimeout = oldCheck, oldFile, oldProbe
		forgetAccel()
	})
	kvmCheck = func() error { return nil }
	accelCacheFile = filepath.Join(t.TempDir(), "accel.json")
	ProbeTimeout = 700 * time.Millisecond
	t.Setenv("NETINIT_QEMU_ACCEL", "")
	forgetAccel()
}

// forgetAccel drops the in-process verdicts, as a new process starts.
func forgetAccel() {
	accelMu.Lock()
	clear(accelRes)
	accelMu.Unlock()
}

// kvmQEMU is a fake QEMU: every run appends its arguments to runs. Under
// -accel kvm it writes the firmware banner to the debug console file and
// prints the setup code's line; then a probe boot (the one with the debug
// console) prints the kernel's banner when probeOK is set, and any other
// boot prints the fake result when bootOK is set. Otherwise it hangs
// silently, as nested KVM does when the kernel enters long mode. Under TCG
// it prints the fake result.
func kvmQEMU(t *testing.T, probeOK, bootOK bool) (bin, runs string) {
	t.Helper()
	runs = filepath.Join(t.TempDir(), "runs")
	yes := func(b bool) string {
		if b {
			return "1"
		}
		return ""
	}
	bin = fakeQEMU(t, `echo "$*" >> `+runs+`
for a; do case "$a" in file,id=fw,path=*) echo 'SeaBIOS (version fake)' > "${a#*path=}";; esac; done
case " $* " in *" -accel kvm "*)
	echo 'Probing EDD (edd=off to disable)... ok'
	case " $* " in
	*" isa-debugcon,"*) [ -n "`+yes(probeOK)+`" ] || exec sleep 100
	   echo '[    0.000000] Linux version 6.1.0-fake'; exec sleep 100;;
	*) [ -n "`+yes(bootOK)+`" ] || exec sleep 100;;
	esac;;
esac
`+fakeResult)
	return bin, runs
}

func kernelFile(t *testing.T) string {
	t.Helper()
	k := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(k, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func countRuns(t *testing.T, runs, what string) int {
	t.Helper()
	b, _ := os.ReadFile(runs)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && strings.Contains(" "+l+" ", what) {
			n++
		}
	}
	return n
}

// TestAccelProbeFallback: KVM that runs the firmware but not the kernel is
// found by the probe; the boot runs under TCG and says why; the verdict
// is probed once per run (in the process and through the cache file) and
// again when the kernel changes.
func TestAccelProbeFallback(t *testing.T) {
	fakeKVM(t)
	q, runs := kvmQEMU(t, false, false)
	k := kernelFile(t)

	t0 := time.Now()
	a := ChooseAccel(q, k, "")
	want := "tcg: KVM runs firmware but the kernel printed nothing in 700ms"
	if a.Name != "tcg" || a.Why != want || a.Forced {
		t.Fatalf("ChooseAccel = %+v, want tcg with %q", a, want)
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("the probe took %v with a %v bound", d, ProbeTimeout)
	}
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: k, Initramfs: "i", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if res.Accel != "tcg" || res.AccelWhy != want || res.State == nil || res.State.Phase != "ready" {
		t.Errorf("Boot: accel %q (%q), state %+v", res.Accel, res.AccelWhy, res.State)
	}
	if n := countRuns(t, runs, " -accel kvm "); n != 1 {
		t.Errorf("%d KVM runs, want the one probe", n)
	}

	forgetAccel() // a new process of the same run reads the cache file
	if a := ChooseAccel(q, k, ""); a.Why != want {
		t.Errorf("cached verdict %+v", a)
	}
	if n := countRuns(t, runs, " -accel kvm "); n != 1 {
		t.Errorf("%d KVM runs after a cached verdict, want 1", n)
	}

	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(k, later, later); err != nil {
		t.Fatal(err)
	}
	forgetAccel()
	ChooseAccel(q, k, "")
	if n := countRuns(t, runs, " -accel kvm "); n != 2 {
		t.Errorf("%d KVM runs after the kernel changed, want 2", n)
	}
}

// TestAccelProbeNothing: KVM that runs not even the firmware.
func TestAccelProbeNothing(t *testing.T) {
	fakeKVM(t)
	q := fakeQEMU(t, "exec sleep 100\n")
	if a := ChooseAccel(q, kernelFile(t), ""); a.Name != "tcg" || a.Why != "tcg: KVM ran neither firmware nor kernel in 700ms" {
		t.Errorf("ChooseAccel = %+v", a)
	}
}

// TestAccelQEMUFails: QEMU refuses to start under KVM (say, -cpu host on
// an MSR it cannot set); its message is the reason.
func TestAccelQEMUFails(t *testing.T) {
	fakeKVM(t)
	q := fakeQEMU(t, "echo 'qemu: kvm: cannot set MSR' >&2; exit 1\n")
	a := ChooseAccel(q, kernelFile(t), "")
	if a.Name != "tcg" || !strings.Contains(a.Why, "QEMU fails under KVM") || !strings.Contains(a.Why, "cannot set MSR") {
		t.Errorf("ChooseAccel = %+v", a)
	}
}

// TestAccelKVM: the kernel's banner within the probe's time means KVM.
func TestAccelKVM(t *testing.T) {
	fakeKVM(t)
	q, _ := kvmQEMU(t, true, true)
	k := kernelFile(t)
	if !KVMWorks(q, k) {
		t.Fatal("KVMWorks = false though the kernel printed its banner")
	}
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: k, Initramfs: "i", Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if res.Accel != "kvm" || res.AccelWhy != "kvm" || res.State == nil {
		t.Errorf("Boot: accel %q (%q), state %+v", res.Accel, res.AccelWhy, res.State)
	}
}

// TestBootKVMGuard: the probe passes, yet the boot under KVM shows
// nothing from the kernel: it is killed after KVMGuard and booted again
// under TCG, and the rest of the run uses TCG.
func TestBootKVMGuard(t *testing.T) {
	fakeKVM(t)
	q, runs := kvmQEMU(t, true, false)
	k := kernelFile(t)
	var console strings.Builder
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: k, Initramfs: "i", Timeout: 20 * time.Second,
		KVMGuard: 500 * time.Millisecond, Console: &console})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	want := "tcg: a KVM boot printed nothing from the kernel in 500ms; rebooted under TCG"
	if res.Accel != "tcg" || res.AccelWhy != want || res.State == nil || res.State.Phase != "ready" {
		t.Errorf("Boot: accel %q (%q), state %+v", res.Accel, res.AccelWhy, res.State)
	}
	if !strings.Contains(console.String(), "booting again under TCG") {
		t.Errorf("the console does not say the reboot:\n%s", console.String())
	}
	if n := countRuns(t, runs, " -initrd "); n != 2 {
		t.Errorf("%d boots, want the killed KVM one and the TCG one", n)
	}
	forgetAccel()
	if a := ChooseAccel(q, k, ""); a.Name != "tcg" || a.Why != "tcg: a KVM boot printed nothing from the kernel in 500ms" {
		t.Errorf("after the guard, ChooseAccel = %+v", a)
	}
}

// TestAccelFirmwareBoot: a PXE or USB boot gives QEMU no kernel. The KVM
// probe boots the kernel the firmware will load (Firmware.Kernel); without
// one the boot runs under TCG, saying why, with no probe and no verdict
// cached. (The probe used to boot an empty kernel path, which QEMU
// refuses, and cache that refusal under a key naming the working
// directory: firmware boots never got KVM.)
func TestAccelFirmwareBoot(t *testing.T) {
	fakeKVM(t)
	q, runs := kvmQEMU(t, true, true)
	opts := Options{QEMU: q, Timeout: 20 * time.Second, Firmware: Firmware{PXE: true}}
	res, err := Boot(context.Background(), opts)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if res.Accel != "tcg" || !strings.Contains(res.AccelWhy, "no kernel to probe KVM with") || res.State == nil {
		t.Errorf("Boot without Firmware.Kernel: accel %q (%q), state %+v", res.Accel, res.AccelWhy, res.State)
	}
	if n := countRuns(t, runs, " -accel kvm "); n != 0 {
		t.Errorf("%d KVM runs without a kernel to probe, want none", n)
	}
	if _, err := os.Stat(accelCacheFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a verdict was cached without a kernel (%v)", err)
	}

	opts.Firmware.Kernel = kernelFile(t)
	res, err = Boot(context.Background(), opts)
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if res.Accel != "kvm" || res.AccelWhy != "kvm" || res.State == nil {
		t.Errorf("Boot with Firmware.Kernel: accel %q (%q), state %+v", res.Accel, res.AccelWhy, res.State)
	}
	if n := countRuns(t, runs, " -kernel "+opts.Firmware.Kernel+" "); n != 1 {
		t.Errorf("%d runs with the firmware's kernel, want the one probe", n)
	}
	if n := countRuns(t, runs, " -boot n "); n != 2 || slices.Contains(res.Args, "-kernel") {
		t.Errorf("%d PXE boots, args %q: want 2, the firmware loading the kernel", n, res.Args)
	}
	forgetAccel()
	if a := ChooseAccel(q, opts.Firmware.Kernel, ""); a.Name != "kvm" || countRuns(t, runs, " isa-debugcon,") != 1 {
		t.Errorf("cached verdict %+v after %d probes, want kvm after 1", a, countRuns(t, runs, " isa-debugcon,"))
	}
}

// TestAccelForced: NETINIT_QEMU_ACCEL wins over the probe, and a forced
// KVM boot is not second-guessed by the guard.
func TestAccelForced(t *testing.T) {
	fakeKVM(t)
	q, runs := kvmQEMU(t, false, false)
	t.Setenv("NETINIT_QEMU_ACCEL", "kvm")
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: kernelFile(t), Initramfs: "i",
		Timeout: 1500 * time.Millisecond, KVMGuard: 300 * time.Millisecond})
	if !errors.Is(err, ErrNoResult) || res.Accel != "kvm" || res.AccelWhy != "kvm: forced by NETINIT_QEMU_ACCEL" {
		t.Errorf("Boot: err %v accel %q (%q)", err, res.Accel, res.AccelWhy)
	}
	if n := countRuns(t, runs, ""); n != 1 {
		t.Errorf("%d QEMU runs, want 1 (no probe, no TCG retry)", n)
	}

	t.Setenv("NETINIT_QEMU_ACCEL", "hvf")
	if a := ChooseAccel(q, kernelFile(t), ""); a.Name != "tcg" || a.Forced || !strings.Contains(a.Why, `NETINIT_QEMU_ACCEL="hvf" ignored`) {
		t.Errorf("with a bad NETINIT_QEMU_ACCEL, ChooseAccel = %+v", a)
	}
}

// TestAccelNoDevKVM: on a host without /dev/kvm (like this CI) the real
// check says so and no QEMU is run for the choice.
func TestAccelNoDevKVM(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err == nil {
		t.Skip("this host has /dev/kvm")
	}
	t.Setenv("NETINIT_QEMU_ACCEL", "")
	ran := filepath.Join(t.TempDir(), "ran")
	q := fakeQEMU(t, "echo ran > "+ran+"\nexit 1\n")
	if a := ChooseAccel(q, "k", ""); a.Name != "tcg" || a.Why != "tcg: /dev/kvm missing" {
		t.Errorf("ChooseAccel = %+v", a)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("QEMU ran although /dev/kvm is missing")
	}
}
