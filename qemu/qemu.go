// Package qemu boots a kernel + initramfs in qemu-system-x86_64 with one
// virtio NIC, streams its serial console, and parses the result document
// that netinit prints when booted with netinit.test=poweroff:
//
//	NETINIT-RESULT-BEGIN
//	{ ...state.State as JSON... }
//	NETINIT-RESULT-END
//
// after which the init powers the VM off.
//
// This is a small runner on os/exec rather than hugelgupf/vmtest's qemu
// package: vmtest wants its QEMU command from VMTEST_QEMU, drives the
// console through a pty and go-expect (two more dependencies), and has no
// notion of per-line timestamps, which the boot-time measurements here
// need. What is needed fits in one file: build the command line, pick KVM
// only when it really works, read the console line by line with wallclock
// stamps, and always kill QEMU at the deadline.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
)

// Markers around the result document on the console.
const (
	ResultBegin = "NETINIT-RESULT-BEGIN"
	ResultEnd   = "NETINIT-RESULT-END"
	// InitPrefix starts every line the init prints.
	InitPrefix = "netinit: "
)

// Defaults.
const (
	DefaultNetDev  = "user,id=n0,ipv4=on,ipv6=on" // ipv6=on alone turns IPv4 off
	DefaultMAC     = "52:54:00:12:34:56"
	DefaultTimeout = 90 * time.Second // generous for TCG on 2 cores
	DefaultMemory  = "512"
	DefaultMachine = "q35"
	// DefaultKVMGuard is generous: under KVM the kernel's first line
	// comes within a second, the init's within a few.
	DefaultKVMGuard = 10 * time.Second
)

// BootParams are the kernel parameters every boot gets, the ones a real
// node boots with too (initramfs/mkrelease.sh):
//
//   - cryptomgr.notests: the kernel's crypto self-tests (crypto/testmgr.c,
//     run for every algorithm registered at boot, most at
//     crypto_algapi_init's late initcall) check the implementations
//     against test vectors; they are no defence against anything from the
//     network. Under TCG they cost ~0.6 s before /init (kernel up,
//     median of 10 interleaved boots at load ~3.5 on 2 cores: 3.16 s
//     with them, 2.58 s without). netinit needs no kernel crypto
//     (WireGuard and Yggdrasil are in Go); with fips=1 the kernel runs
//     them regardless.
const BootParams = "cryptomgr.notests"

// Options describe one boot.
type Options struct {
	// QEMU binary; default qemu-system-x86_64.
	QEMU      string
	Kernel    string // bzImage / vmlinuz
	Initramfs string
	// Append is added to the kernel command line after
	// "console=ttyS0 panic=-1 quiet " + BootParams.
	Append string
	// KernelLog drops "quiet": the kernel logs everything to the serial
	// console. Under TCG the emulated UART then needs 10-20 s for the boot
	// messages alone (and the init's lines queue behind them), so the
	// timings are only meaningful without it.
	KernelLog bool
	// NetDev is the -netdev spec of the NIC's backend; its id must be n0.
	// Default DefaultNetDev. "none" boots without a NIC.
	NetDev string
	// MAC of the virtio NIC; default DefaultMAC.
	MAC string
	// Accel is "kvm", "tcg" or "" for $NETINIT_QEMU_ACCEL, else KVM when
	// the kernel really runs under it (see ChooseAccel), else TCG.
	Accel string
	// KVMGuard: a KVM boot that the accelerator was not forced for and
	// that shows no line from the kernel or the init within this time is
	// killed and booted again under TCG; default DefaultKVMGuard, three
	// times that for a firmware boot (the firmware loads the kernel and
	// the image over TFTP or USB first).
	KVMGuard time.Duration
	Machine  string // default DefaultMachine
	Memory   string // -m, default DefaultMemory
	// ExtraArgs are appended to QEMU's arguments.
	ExtraArgs []string
	// HostNet lets QEMU run in the caller's network namespace. By default
	// it runs in a new, empty one (as root; otherwise inside a new user
	// namespace too): user-mode networking still serves DHCP, RA and the
	// virtual router to the guest, but nothing the guest sends can leave
	// the machine. ("restrict=on" would isolate too, but then slirp's DHCP
	// offers no router and no DNS.)
	HostNet bool
	// NetNS runs QEMU in this named network namespace (`ip netns exec`)
	// instead of a new empty one: tests put a peer for the guest there,
	// reachable through user-mode networking at 10.0.2.2.
	NetNS string
	// Timeout bounds the whole boot; default DefaultTimeout.
	Timeout time.Duration
	// Console receives the serial console as it comes (nil: discarded).
	Console io.Writer
	// LogFile, when set, receives the serial console too.
	LogFile string
	// AfterResult is how long QEMU gets to power off after the result was
	// printed before it is killed; default 15 s.
	AfterResult time.Duration
	// Markers are the lines around the result document: default
	// ResultBegin and ResultEnd, around netinit's state (Result.State).
	// Other markers are around a document of the caller's (the guest
	// lab's): Result.RawResult has it, Result.State stays nil.
	Markers [2]string
	// Firmware: boot path and NIC model (firmware.go).
	Firmware
}

// Result is what one boot showed.
type Result struct {
	// State is the parsed result document; nil when none arrived.
	State *state.State
	// RawResult is the text between the markers.
	RawResult string
	// Console is the whole serial log (CR stripped).
	Console string
	// Args is QEMU's command line.
	Args []string
	// Accel is the accelerator used ("kvm" or "tcg"), AccelWhy why
	// ("kvm", "tcg: /dev/kvm missing", ...; see ChooseAccel).
	Accel    string
	AccelWhy string

	// Wallclock durations since QEMU was started; 0 when not seen.
	InitAt   time.Duration // the first "netinit: " line
	ResultAt time.Duration // the end marker
	Exited   time.Duration // QEMU exited
	// InitToResult is ResultAt - InitAt.
	InitToResult time.Duration

	// Kernel timestamps (printk time, seconds since the kernel started)
	// when the console lines carry them; -1 when not seen.
	KernelRunInit float64 // "Run /init as init process"
	KernelInit    float64 // first "netinit: " line, if logged via /dev/kmsg

	// PoweredOff is true when QEMU exited by itself (the guest powered
	// off or rebooted with -no-reboot) rather than being killed.
	PoweredOff bool

	// Rebooted says why this is a second boot ("" for the first): the
	// first one's kernel panicked before /init (timerPanic).
	Rebooted string
}

// ErrNoResult is returned (wrapped) when the console ended without a
// complete result document.
var ErrNoResult = errors.New("no result document on the console")

// Args returns QEMU's arguments for opts (defaults applied) and the
// accelerator chosen.
func Args(opts Options) ([]string, string) {
	accel := opts.Accel
	if accel == "" {
		accel = ChooseAccel(opts.QEMU, opts.ProbeKernel(), "").Name
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	mach := or(opts.Machine, DefaultMachine)
	cmdline := "console=ttyS0 panic=-1"
	if !opts.KernelLog {
		cmdline += " quiet"
	}
	cmdline += " " + BootParams
	if opts.Append != "" {
		cmdline += " " + opts.Append
	}
	args := []string{
		"-nodefaults", "-no-user-config",
		"-machine", mach, "-accel", accel, "-cpu", cpu,
		"-m", or(opts.Memory, DefaultMemory),
		"-smp", "1",
		"-display", "none",
		"-serial", "stdio",
		"-no-reboot",
	}
	if opts.Kernel != "" {
		args = append(args, "-kernel", opts.Kernel, "-append", cmdline)
	}
	if opts.Initramfs != "" {
		args = append(args, "-initrd", opts.Initramfs)
	}
	if nd := or(opts.NetDev, DefaultNetDev); nd != "none" {
		args = append(args,
			"-netdev", nd,
			"-device", opts.nicModel()+",netdev=n0,mac="+or(opts.MAC, DefaultMAC))
	}
	args = append(args, opts.Firmware.args()...)
	args = append(args, opts.ExtraArgs...)
	return args, accel
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Line stamps: "[    1.234567] text".
var printkTime = regexp.MustCompile(`^\[\s*(\d+\.\d+)\]\s?`)

// Boot runs one VM to completion: until the guest powers off after
// printing its result, or the timeout, or ctx ends. QEMU never outlives
// Boot. The Result is returned also with an error, filled as far as the
// boot got (its Console is what to show a human).
func Boot(ctx context.Context, opts Options) (*Result, error) {
	if opts.Kernel == "" && !opts.firmwareBoot() {
		return nil, errNoKernel
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.AfterResult <= 0 {
		opts.AfterResult = 15 * time.Second
	}
	if opts.KVMGuard <= 0 {
		opts.KVMGuard = DefaultKVMGuard
		if opts.firmwareBoot() {
			opts.KVMGuard *= 3
		}
	}
	deadline := time.Now().Add(opts.Timeout)
	res, err := accelBoot(ctx, opts, deadline)
	if !timerCheckPanic(res, err) {
		return res, err
	}
	if opts.Console != nil {
		fmt.Fprintf(opts.Console, "qemu: the guest kernel panicked in its timer check before /init (%q): booting again, once\n", timerPanic)
	}
	if opts.Timeout = time.Until(deadline); opts.Timeout <= 0 {
		return res, err
	}
	res, err = accelBoot(ctx, opts, deadline)
	if res != nil {
		res.Rebooted = "the first boot's kernel panicked in its timer check: " + timerPanic
	}
	return res, err
}

// timerPanic is the panic of the kernel's check_timer
// (arch/x86/kernel/apic/io_apic.c) when its timer interrupt did not tick
// during a short calibrated delay. Under TCG on a loaded host the vCPU
// thread can be starved through that delay: an artefact of the
// emulation, before /init, that a real machine does not have. Boot
// starts such a boot again, once, rather than giving the kernel
// no_timer_check, which would change the boots it measures.
const timerPanic = "IO-APIC + timer doesn't work!"

// timerCheckPanic reports whether a boot ended in timerPanic before the
// init printed anything.
func timerCheckPanic(res *Result, err error) bool {
	return errors.Is(err, ErrNoResult) && res != nil && res.InitAt == 0 && strings.Contains(res.Console, timerPanic)
}

// accelBoot is one boot under the accelerator ChooseAccel picks: a KVM
// boot that it did not force and that shows nothing from the kernel
// within KVMGuard is booted again under TCG, by deadline.
func accelBoot(ctx context.Context, opts Options, deadline time.Time) (*Result, error) {
	a := ChooseAccel(opts.QEMU, opts.ProbeKernel(), opts.Accel)
	if a.Name != "kvm" || a.Forced {
		return boot(ctx, opts, a, 0)
	}
	res, err := boot(ctx, opts, a, opts.KVMGuard)
	if !errors.Is(err, errKernelSilent) {
		return res, err
	}
	a = demoteKVM(opts.QEMU, opts.ProbeKernel(), fmt.Sprintf("a KVM boot printed nothing from the kernel in %v", opts.KVMGuard))
	a.Why += "; rebooted under TCG"
	if opts.Console != nil {
		fmt.Fprintf(opts.Console, "qemu: the KVM boot printed nothing from the kernel in %v: killed, booting again under TCG\n", opts.KVMGuard)
	}
	if opts.Timeout = time.Until(deadline); opts.Timeout <= 0 {
		return res, fmt.Errorf("qemu: %w: timeout under KVM", ErrNoResult)
	}
	return boot(ctx, opts, a, 0)
}

// errKernelSilent: the guard killed a boot that showed nothing from the
// kernel.
var errKernelSilent = errors.New("the kernel printed nothing")

// boot is one boot under accelerator a; when guard is not 0, QEMU is
// killed with errKernelSilent if neither the kernel nor the init printed
// a line by then.
func boot(ctx context.Context, opts Options, a Accel, guard time.Duration) (*Result, error) {
	opts.Accel = a.Name
	args, accel := Args(opts)
	res := &Result{Args: append([]string{or(opts.QEMU, "qemu-system-x86_64")}, args...), Accel: accel, AccelWhy: a.Why, KernelRunInit: -1, KernelInit: -1}

	sinks := []io.Writer{}
	if opts.Console != nil {
		sinks = append(sinks, opts.Console)
	}
	if opts.LogFile != "" {
		f, err := os.Create(opts.LogFile)
		if err != nil {
			return res, fmt.Errorf("qemu: console log: %w", err)
		}
		defer f.Close()
		sinks = append(sinks, f)
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, res.Args[0], args...)
	if opts.NetNS != "" {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", opts.NetNS, res.Args[0]}, args...)...)
	}
	// Own process group, so a kill reaches anything QEMU might spawn.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !opts.HostNet && opts.NetNS == "" {
		isolate(cmd.SysProcAttr)
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, fmt.Errorf("qemu: %w", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("qemu: starting %s: %w", res.Args[0], err)
	}

	// The reader is owned by Boot: it ends when QEMU's stdout closes
	// (QEMU exited or was killed) and is waited for below.
	begin, end := ResultBegin, ResultEnd
	if opts.Markers != [2]string{} {
		begin, end = opts.Markers[0], opts.Markers[1]
	}
	var (
		console    strings.Builder
		raw        []string
		inResult   bool
		gotEnd     = make(chan struct{})
		kernelSeen = make(chan struct{})
		readDone   = make(chan struct{})
	)
	go func() {
		defer close(readDone)
		kernelSaid := false
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
		for sc.Scan() {
			now := time.Since(start)
			line := strings.TrimRight(sc.Text(), "\r")
			console.WriteString(line)
			console.WriteByte('\n')
			for _, w := range sinks {
				fmt.Fprintln(w, line)
			}
			ts := -1.0
			body := line
			if m := printkTime.FindStringSubmatch(line); m != nil {
				ts, _ = strconv.ParseFloat(m[1], 64)
				body = line[len(m[0]):]
			}
			switch {
			case strings.Contains(body, begin):
				inResult, raw = true, nil
			case strings.Contains(body, end) && inResult:
				inResult = false
				if res.ResultAt == 0 {
					res.ResultAt = now
					res.RawResult = strings.Join(raw, "\n")
					close(gotEnd)
				}
			case inResult:
				raw = append(raw, line)
			}
			if !kernelSaid && (ts >= 0 || kernelLine.MatchString(body) || strings.HasPrefix(body, InitPrefix)) {
				kernelSaid = true
				close(kernelSeen)
			}
			if strings.HasPrefix(body, InitPrefix) && res.InitAt == 0 {
				res.InitAt = now
				res.KernelInit = ts
			}
			if strings.Contains(body, "Run /init as init process") && res.KernelRunInit < 0 {
				res.KernelRunInit = ts
			}
		}
	}()

	// After the result, give the guest AfterResult to power off.
	waitErr := make(chan error, 1)
	go func() {
		<-readDone
		waitErr <- cmd.Wait()
	}()
	var (
		werr   error
		guardC <-chan time.Time
		silent bool
	)
	seen := (<-chan struct{})(kernelSeen)
	if guard > 0 {
		g := time.NewTimer(guard)
		defer g.Stop()
		guardC = g.C
	}
wait:
	for {
		select {
		case werr = <-waitErr:
			break wait
		case <-seen:
			seen, guardC = nil, nil
		case <-guardC:
			silent = true
			cancel()
			werr = <-waitErr
			break wait
		case <-gotEnd:
			t := time.NewTimer(opts.AfterResult)
			select {
			case werr = <-waitErr:
			case <-t.C:
				cancel()
				werr = <-waitErr
			}
			t.Stop()
			break wait
		}
	}
	res.Exited = time.Since(start)
	res.Console = console.String()
	res.PoweredOff = werr == nil
	if res.ResultAt > 0 && res.InitAt > 0 {
		res.InitToResult = res.ResultAt - res.InitAt
	}

	if silent {
		return res, fmt.Errorf("qemu: %w in %v under KVM", errKernelSilent, guard)
	}
	if res.ResultAt == 0 {
		why := "QEMU exited"
		if ctx.Err() != nil {
			why = fmt.Sprintf("timeout after %v", opts.Timeout)
		}
		if werr != nil {
			why += fmt.Sprintf(" (%v; stderr: %s)", werr, strings.TrimSpace(stderr.String()))
		}
		return res, fmt.Errorf("qemu: %w: %s", ErrNoResult, why)
	}
	if begin != ResultBegin {
		return res, nil
	}
	st, err := ParseResult(res.RawResult)
	if err != nil {
		return res, fmt.Errorf("qemu: %w", err)
	}
	res.State = st
	return res, nil
}

// isolate makes the process start in a new network namespace that has
// only a loopback (down): slirp then cannot reach any network.
func isolate(a *syscall.SysProcAttr) {
	a.Cloneflags |= syscall.CLONE_NEWNET
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	}
}

// ParseResult decodes the text between the markers. Kernel messages that
// the console interleaved with the document (lines starting with a printk
// timestamp) are dropped if the document does not parse as it is.
func ParseResult(raw string) (*state.State, error) {
	var st state.State
	err := json.Unmarshal([]byte(raw), &st)
	if err == nil {
		return &st, nil
	}
	var kept []string
	for _, l := range strings.Split(raw, "\n") {
		if !printkTime.MatchString(l) {
			kept = append(kept, l)
		}
	}
	st = state.State{}
	if err2 := json.Unmarshal([]byte(strings.Join(kept, "\n")), &st); err2 != nil {
		return nil, fmt.Errorf("parsing result document: %w", err)
	}
	return &st, nil
}
