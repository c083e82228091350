package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
)

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		has  [][]string // consecutive argument pairs that must appear
		not  []string
	}{
		{
			name: "defaults",
			opts: Options{Kernel: "k", Initramfs: "i", Accel: "tcg", Append: "netinit.test=poweroff"},
			has: [][]string{
				{"-accel", "tcg"}, {"-cpu", "max"}, {"-kernel", "k"}, {"-initrd", "i"},
				{"-append", "console=ttyS0 panic=-1 quiet " + BootParams + " netinit.test=poweroff"},
				{"-netdev", "user,id=n0,ipv4=on,ipv6=on"},
				{"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"},
				{"-machine", "q35"}, {"-m", "512"},
			},
		},
		{
			name: "kvm, no nic, kernel log",
			opts: Options{Kernel: "k", Accel: "kvm", NetDev: "none", KernelLog: true, MAC: "52:54:00:00:00:01", ExtraArgs: []string{"-smp", "2"}},
			has:  [][]string{{"-accel", "kvm"}, {"-cpu", "host"}, {"-append", "console=ttyS0 panic=-1 " + BootParams}},
			not:  []string{"-netdev", "-initrd"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, _ := Args(tc.opts)
			for _, pair := range tc.has {
				i := slices.Index(args, pair[0])
				for i >= 0 && i+1 < len(args) && args[i+1] != pair[1] {
					j := slices.Index(args[i+1:], pair[0])
					if j < 0 {
						i = -1
						break
					}
					i += 1 + j
				}
				if i < 0 {
					t.Errorf("args lack %q: %q", pair, args)
				}
			}
			for _, a := range tc.not {
				if slices.Contains(args, a) {
					t.Errorf("args have %q: %q", a, args)
				}
			}
			if !slices.Contains(args, "-no-reboot") {
				t.Errorf("args lack -no-reboot")
			}
		})
	}
}

func TestParseResult(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		phase     string
		wantErr   bool
	}{
		{"one line", `{"schema":1,"phase":"ready","uplink":"eth0"}`, "ready", false},
		{"indented", "{\n  \"schema\": 1,\n  \"phase\": \"degraded\"\n}", "degraded", false},
		{"kernel line inside", "{\n  \"schema\": 1,\n[    3.141592] virtio_net virtio0 eth0: renamed\n  \"phase\": \"offline\"\n}", "offline", false},
		{"garbage", "{\"schema\": 1,", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseResult(tc.raw)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && string(st.Phase) != tc.phase {
				t.Errorf("phase %q, want %q", st.Phase, tc.phase)
			}
		})
	}
}

// fakeQEMU writes a shell script that stands in for QEMU: these tests
// check the runner's console handling, deadlines and cleanup, not a VM.
func fakeQEMU(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const fakeResult = `echo 'SeaBIOS'
echo '[    0.900000] Run /init as init process'
echo 'netinit: starting (fake)'
echo 'NETINIT-RESULT-BEGIN'
printf '{"schema":1,\r\n"phase":"ready","uplink":"eth0"}\r\n'
echo 'NETINIT-RESULT-END'
`

// TestBootTimerPanic: a boot whose kernel panics in its timer check
// before /init (TCG starved on a loaded host) is booted again once, and
// says so; a panic again, or a panic after the init started, is the
// boot's failure.
func TestBootTimerPanic(t *testing.T) {
	const panicLine = `echo "[    0.412000] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug and send a report.  Then try booting with the 'noapic' option."; exit 0` + "\n"
	// body's $runs is the file every boot adds a line to.
	boot := func(t *testing.T, body string) (*Result, string, int, error) {
		runs := filepath.Join(t.TempDir(), "runs")
		q := fakeQEMU(t, "runs="+runs+"\necho run >> $runs\n"+body)
		var console strings.Builder
		res, err := Boot(context.Background(), Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: 10 * time.Second, Console: &console})
		b, _ := os.ReadFile(runs)
		return res, console.String(), strings.Count(string(b), "run\n"), err
	}
	t.Run("once", func(t *testing.T) {
		res, console, n, err := boot(t, `[ "$(wc -l < $runs)" -gt 1 ] || { `+strings.TrimSuffix(panicLine, "\n")+`; }`+"\n"+fakeResult+"exit 0\n")
		if err != nil || res.State == nil || res.State.Phase != "ready" || n != 2 {
			t.Fatalf("Boot: %v, state %+v after %d boots; want ready after 2", err, res.State, n)
		}
		if !strings.Contains(res.Rebooted, "timer check") || !strings.Contains(console, "panicked in its timer check before /init") {
			t.Errorf("the second boot is not said: Rebooted %q, console:\n%s", res.Rebooted, console)
		}
	})
	t.Run("twice", func(t *testing.T) {
		res, _, n, err := boot(t, panicLine)
		if !errors.Is(err, ErrNoResult) || n != 2 || res.Rebooted == "" {
			t.Errorf("Boot: %v after %d boots (rebooted %q), want no result after 2", err, n, res.Rebooted)
		}
	})
	t.Run("after init", func(t *testing.T) {
		res, _, n, err := boot(t, "echo 'netinit: starting (fake)'\n"+panicLine)
		if !errors.Is(err, ErrNoResult) || n != 1 || res.Rebooted != "" {
			t.Errorf("Boot: %v after %d boots (rebooted %q), want no result after 1", err, n, res.Rebooted)
		}
	})
}

func TestBootFake(t *testing.T) {
	var console strings.Builder
	log := filepath.Join(t.TempDir(), "console.log")
	q := fakeQEMU(t, fakeResult+"exit 0\n")
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: 10 * time.Second, Console: &console, LogFile: log})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if res.State == nil || res.State.Phase != "ready" || res.State.Uplink != "eth0" {
		t.Errorf("State = %+v", res.State)
	}
	if res.InitAt <= 0 || res.ResultAt < res.InitAt || res.InitToResult != res.ResultAt-res.InitAt {
		t.Errorf("timings InitAt %v ResultAt %v InitToResult %v", res.InitAt, res.ResultAt, res.InitToResult)
	}
	if res.KernelRunInit != 0.9 {
		t.Errorf("KernelRunInit = %v, want 0.9", res.KernelRunInit)
	}
	if !res.PoweredOff {
		t.Error("PoweredOff = false for a clean exit")
	}
	b, err := os.ReadFile(log)
	if err != nil || string(b) != console.String() || !strings.Contains(string(b), "netinit: starting (fake)\n") {
		t.Errorf("log file %q (err %v) vs console %q", b, err, console.String())
	}
	if strings.Contains(res.Console, "\r") {
		t.Error("console keeps CRs")
	}
}

// TestBootMarkers: with other markers the document between them is the
// caller's, not a state: it arrives raw, and netinit's markers are text.
func TestBootMarkers(t *testing.T) {
	q := fakeQEMU(t, fakeResult+`echo 'OTHER-BEGIN'
echo '{"phase":1}'
echo 'OTHER-END'
exit 0
`)
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: 10 * time.Second, Markers: [2]string{"OTHER-BEGIN", "OTHER-END"}})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if res.State != nil || res.RawResult != `{"phase":1}` || res.ResultAt <= 0 {
		t.Errorf("State %+v RawResult %q ResultAt %v", res.State, res.RawResult, res.ResultAt)
	}
}

// gone waits until pid no longer runs (an orphaned zombie that this
// sandbox's PID 1 has not reaped yet counts as gone).
func gone(pid int) bool {
	for i := 0; i < 50; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if f, err := lab.ProcStat(pid); err == nil && len(f) > 0 && f[0] == "Z" {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestBootTimeout: a guest that never prints a result is killed at the
// deadline, with everything QEMU started.
func TestBootTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	q := fakeQEMU(t, "sleep 100 & echo $$ $! > "+pidFile+"\necho 'netinit: hanging'\nwait\n")
	t0 := time.Now()
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: time.Second})
	if !errors.Is(err, ErrNoResult) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("err = %v, want ErrNoResult on timeout", err)
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("Boot took %v with a 1s timeout", d)
	}
	if res == nil || !strings.Contains(res.Console, "netinit: hanging") || res.InitAt == 0 {
		t.Errorf("partial result lost: %+v", res)
	}
	b, _ := os.ReadFile(pidFile)
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if pid > 0 && !gone(pid) {
			t.Errorf("process %d survived Boot", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestBootNoPoweroff: a result followed by a guest that does not power
// off is kept; QEMU is killed after AfterResult.
func TestBootNoPoweroff(t *testing.T) {
	q := fakeQEMU(t, fakeResult+"exec sleep 100\n")
	t0 := time.Now()
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: 20 * time.Second, AfterResult: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("Boot took %v", d)
	}
	if res.PoweredOff || res.State == nil || res.State.Phase != "ready" {
		t.Errorf("PoweredOff %v State %+v", res.PoweredOff, res.State)
	}
}

func TestBootContextCancel(t *testing.T) {
	q := fakeQEMU(t, "exec sleep 100\n")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Boot(ctx, Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: time.Minute}); !errors.Is(err, ErrNoResult) {
		t.Errorf("err = %v", err)
	}
}

// TestBootIsolated: QEMU runs in a network namespace of its own that has
// only a loopback, so user-mode networking cannot reach any real network.
func TestBootIsolated(t *testing.T) {
	q := fakeQEMU(t, `echo "netinit: links $(awk -F: 'NR>2{gsub(/ /,"",$1); printf "%s,", $1}' /proc/self/net/dev)"`+"\n"+fakeResult)
	res, err := Boot(context.Background(), Options{QEMU: q, Kernel: "k", Accel: "tcg", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if !strings.Contains(res.Console, "netinit: links lo,\n") {
		t.Errorf("QEMU saw other links than lo:\n%s", res.Console)
	}
}
