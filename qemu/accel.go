package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Choosing the accelerator.
//
// A /dev/kvm that opens and creates VMs proves little: nested
// virtualisation on cloud VMs and CI runners often runs the firmware and
// the kernel's 16-bit setup code ("Probing EDD ... ok") under KVM and then
// hangs for good when the kernel enters long mode. So the probe boots the
// very kernel the VMs will use, without an initramfs, under -accel kvm and
// requires a line from the kernel proper (a printk-stamped line or the
// "Linux version" banner; the setup code and the decompressor print
// neither) within ProbeTimeout. Anything else means TCG, with the reason.
//
// The verdict is cached for the run: in the process (all the VMs of one
// test binary) and in a small file, accelCacheFile, that the next process
// (the next `go test` package, `make qemu`) reads. Its entries are keyed
// by the QEMU binary and the kernel (path, size, mtime) and live one hour;
// the file is only consulted when /dev/kvm works, so a vanished /dev/kvm
// is seen at once. A KVM boot that still shows nothing from the kernel
// within Options.KVMGuard is killed and booted again under TCG (see Boot),
// and the cached verdict flips to TCG.

// ProbeTimeout bounds the KVM probe boot: a working KVM prints the kernel
// banner well within a second.
var ProbeTimeout = 5 * time.Second

// Hooks the tests replace: the /dev/kvm check and where the verdicts are
// cached.
var (
	kvmCheck       = kvmProbe
	accelCacheFile = filepath.Join(os.TempDir(), fmt.Sprintf("netinit-qemu-accel-%d.json", os.Geteuid()))
	accelCacheTTL  = time.Hour
)

// Accel is the accelerator chosen for a boot and why.
type Accel struct {
	Name string // "kvm" or "tcg"
	// Why is what a human reads: "kvm", "tcg: /dev/kvm missing",
	// "tcg: KVM runs firmware but the kernel printed nothing in 5s",
	// "tcg: forced by NETINIT_QEMU_ACCEL", ...
	Why string
	// Forced is true when the caller or NETINIT_QEMU_ACCEL chose it; a
	// forced KVM boot is not watched by the KVM guard.
	Forced bool
}

var (
	accelMu  sync.Mutex
	accelRes = map[string]Accel{} // key: see accelKey
)

// ChooseAccel returns the accelerator for booting kernel with QEMU binary
// qemuBin (default qemu-system-x86_64): forced is "kvm", "tcg" or "" (then
// $NETINIT_QEMU_ACCEL, then the probe).
func ChooseAccel(qemuBin, kernel, forced string) Accel {
	if forced != "" {
		return Accel{Name: forced, Why: forced + ": forced by the caller", Forced: true}
	}
	env := os.Getenv("NETINIT_QEMU_ACCEL")
	if env == "kvm" || env == "tcg" {
		return Accel{Name: env, Why: env + ": forced by NETINIT_QEMU_ACCEL", Forced: true}
	}
	a := probed(qemuBin, kernel)
	if env != "" {
		a.Why += fmt.Sprintf(" (NETINIT_QEMU_ACCEL=%q ignored: not kvm or tcg)", env)
	}
	return a
}

// KVMWorks reports whether kernel really runs under KVM with qemuBin
// (default qemu-system-x86_64), whatever NETINIT_QEMU_ACCEL says.
func KVMWorks(qemuBin, kernel string) bool {
	return probed(qemuBin, kernel).Name == "kvm"
}

// probed returns the cached or probed verdict. Without a kernel there is
// nothing to probe with (a firmware boot that did not name the kernel it
// loads): TCG, and nothing is cached (a key made of "" would name the
// working directory).
func probed(qemuBin, kernel string) Accel {
	if err := kvmCheck(); err != nil {
		return Accel{Name: "tcg", Why: "tcg: " + err.Error()}
	}
	if kernel == "" {
		return Accel{Name: "tcg", Why: "tcg: no kernel to probe KVM with (a firmware boot without Firmware.Kernel)"}
	}
	qemuBin = or(qemuBin, "qemu-system-x86_64")
	key := accelKey(qemuBin, kernel)
	accelMu.Lock()
	defer accelMu.Unlock()
	if a, ok := accelRes[key]; ok {
		return a
	}
	a, ok := readAccelCache(key)
	if !ok {
		a = probeKVM(qemuBin, kernel, ProbeTimeout)
		writeAccelCache(key, a)
	}
	accelRes[key] = a
	return a
}

// demoteKVM records that a KVM boot of kernel showed nothing: the rest of
// the run uses TCG.
func demoteKVM(qemuBin, kernel, why string) Accel {
	a := Accel{Name: "tcg", Why: "tcg: " + why}
	key := accelKey(or(qemuBin, "qemu-system-x86_64"), kernel)
	accelMu.Lock()
	defer accelMu.Unlock()
	accelRes[key] = a
	writeAccelCache(key, a)
	return a
}

// accelKey names a (QEMU binary, kernel) pair by path, size and mtime, so
// a rebuilt kernel or an upgraded QEMU is probed again.
func accelKey(qemuBin, kernel string) string {
	id := func(p string) string {
		if lp, err := exec.LookPath(p); err == nil {
			p = lp
		}
		if ap, err := filepath.Abs(p); err == nil {
			p = ap
		}
		fi, err := os.Stat(p)
		if err != nil {
			return p
		}
		return fmt.Sprintf("%s:%d:%d", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return id(qemuBin) + "|" + id(kernel)
}

type accelEntry struct {
	Accel Accel     `json:"accel"`
	At    time.Time `json:"at"`
}

// readAccelCache returns the cached verdict for key when the file is ours
// and the entry is younger than accelCacheTTL.
func readAccelCache(key string) (Accel, bool) {
	m := loadAccelCache()
	e, ok := m[key]
	if !ok || time.Since(e.At) > accelCacheTTL || time.Since(e.At) < 0 {
		return Accel{}, false
	}
	if e.Accel.Name != "kvm" && e.Accel.Name != "tcg" {
		return Accel{}, false
	}
	return e.Accel, true
}

func loadAccelCache() map[string]accelEntry {
	m := map[string]accelEntry{}
	f, err := os.Open(accelCacheFile)
	if err != nil {
		return m
	}
	defer f.Close()
	// Only a file of our own: the temp dir is shared.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() ||
		fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		return m
	}
	if json.NewDecoder(f).Decode(&m) != nil {
		return map[string]accelEntry{}
	}
	return m
}

// writeAccelCache stores a verdict (best effort: without the file, the
// next process probes again). Entries past their TTL are dropped.
func writeAccelCache(key string, a Accel) {
	m := loadAccelCache()
	for k, e := range m {
		if time.Since(e.At) > accelCacheTTL {
			delete(m, k)
		}
	}
	m[key] = accelEntry{Accel: a, At: time.Now()}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(accelCacheFile), ".netinit-qemu-accel-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), accelCacheFile) != nil {
		os.Remove(tmp.Name())
	}
}

// kernelLine matches a console line that only the kernel proper prints.
var kernelLine = regexp.MustCompile(`^\[\s*\d+\.\d+\]|Linux version `)

// probeKVM boots kernel (no initramfs, so it would panic and power off
// soon after mounting root fails) under KVM and waits up to timeout for a
// line from the kernel proper. The firmware's banner on the debug port
// tells "KVM runs nothing" from "KVM runs firmware but not the kernel".
func probeKVM(qemuBin, kernel string, timeout time.Duration) Accel {
	dir, err := os.MkdirTemp("", "netinit-kvm-probe-")
	if err != nil {
		return Accel{Name: "tcg", Why: fmt.Sprintf("tcg: KVM probe: %v", err)}
	}
	defer os.RemoveAll(dir)
	fwLog := filepath.Join(dir, "firmware.log")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuBin,
		"-nodefaults", "-no-user-config",
		"-machine", DefaultMachine, "-accel", "kvm", "-cpu", "host",
		"-m", "128", "-smp", "1", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-chardev", "file,id=fw,path="+fwLog, "-device", "isa-debugcon,iobase=0x402,chardev=fw",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Accel{Name: "tcg", Why: fmt.Sprintf("tcg: KVM probe: %v", err)}
	}
	if err := cmd.Start(); err != nil {
		return Accel{Name: "tcg", Why: fmt.Sprintf("tcg: KVM probe: starting %s: %v", qemuBin, err)}
	}
	ok := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if kernelLine.MatchString(strings.TrimRight(sc.Text(), "\r")) {
			ok = true
			break
		}
	}
	timedOut := ctx.Err() != nil
	cancel()
	werr := cmd.Wait()
	if ok {
		return Accel{Name: "kvm", Why: "kvm"}
	}
	secs := timeout.Round(100 * time.Millisecond).String()
	fw, _ := os.ReadFile(fwLog)
	switch {
	case !timedOut && werr != nil && !errors.Is(werr, exec.ErrWaitDelay):
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return Accel{Name: "tcg", Why: fmt.Sprintf("tcg: QEMU fails under KVM (%v): %q", werr, msg)}
	case len(fw) > 0:
		return Accel{Name: "tcg", Why: "tcg: KVM runs firmware but the kernel printed nothing in " + secs}
	default:
		return Accel{Name: "tcg", Why: "tcg: KVM ran neither firmware nor kernel in " + secs}
	}
}
