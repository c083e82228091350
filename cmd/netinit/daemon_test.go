package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/internal/lab"
)

const supervisorChild = "NETINIT_SUPERVISOR_CHILD"

// TestSuperviseWorker runs the daemon's supervisor (in a child: the test
// binary again, since it reaps every child) over a shell worker that
// records its pid: a worker killed with SIGKILL is started again, and
// SIGTERM to the supervisor ends the worker and the supervisor.
func TestSuperviseWorker(t *testing.T) {
	if dir := os.Getenv(supervisorChild); dir != "" {
		ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM)
		defer stop()
		code, err := superviseWorker(ctx, console.New(time.Now(), os.Stdout), "/bin/sh", workerScript(dir)...)
		if err != nil {
			os.Stdout.WriteString(err.Error())
			os.Exit(9)
		}
		os.Exit(code)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSuperviseWorker$")
	cmd.Env = append(os.Environ(), supervisorChild+"="+dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait := func(n int) []int {
		ps, ok := waitPids(dir, n)
		if !ok {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("worker start %d not seen; output:\n%s", n, out.String())
		}
		return ps
	}
	first := wait(1)[0]
	_ = unix.Kill(first, unix.SIGKILL)
	second := wait(2)[1]
	if second == first {
		t.Fatalf("same pid twice: %d", first)
	}
	_ = cmd.Process.Signal(unix.SIGTERM)
	err := cmd.Wait()
	if err != nil {
		t.Errorf("supervisor: %v\n%s", err, out.String())
	}
	if unix.Kill(second, 0) != unix.ESRCH {
		t.Errorf("worker %d still running after the supervisor stopped", second)
		_ = unix.Kill(second, unix.SIGKILL)
	}
	if !strings.Contains(out.String(), "killed by killed; restarting in 1s (start 2)") {
		t.Errorf("the restart is not logged:\n%s", out.String())
	}
}

// workerScript is a worker that appends its pid to dir/pids and sleeps.
func workerScript(dir string) []string {
	return []string{"-c", "echo $$ >> " + filepath.Join(dir, "pids") + "; exec sleep 60"}
}

// readPids is what the workers of workerScript wrote.
func readPids(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "pids"))
	var ps []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// waitPids waits (15 s at most) until n workers have started.
func waitPids(dir string, n int) ([]int, bool) {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ps := readPids(dir); len(ps) >= n {
			return ps, true
		}
	}
	return nil, false
}

const adoptChild = "NETINIT_ADOPT_CHILD"

// TestSuperviseAdopted runs `netinit daemon --adopt`'s supervisor (in a
// child: the test binary again) over a "worker" it did not start — a
// sleep, the test's child, as the worker is PID 1's — given as a pidfd on
// fd 3. Killed, the adopted worker is left a zombie (as under a next
// stage that does not reap); the supervisor still sees it exit and starts
// a new worker of its own. SIGTERM to the supervisor ends it and its
// current worker: the new one, or the adopted one if it still runs.
func TestSuperviseAdopted(t *testing.T) {
	if dir := os.Getenv(adoptChild); dir != "" {
		ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM)
		defer stop()
		logf, err := os.Create(filepath.Join(dir, "log"))
		if err != nil {
			os.Exit(8)
		}
		code, err := superviseAdopted(ctx, console.New(time.Now(), logf), adoptFD, "/bin/sh", workerScript(dir)...)
		if err != nil {
			os.Stdout.WriteString(err.Error())
			os.Exit(9)
		}
		os.Exit(code)
	}
	t.Run("restart", func(t *testing.T) { testSuperviseAdopted(t, true) })
	t.Run("stop", func(t *testing.T) { testSuperviseAdopted(t, false) })
}

func testSuperviseAdopted(t *testing.T, kill bool) {
	dir := t.TempDir()
	adopted := exec.Command("sleep", "60")
	if err := adopted.Start(); err != nil {
		t.Fatal(err)
	}
	apid := adopted.Process.Pid
	t.Cleanup(func() {
		_ = adopted.Process.Kill()
		_ = adopted.Wait()
	})
	fd, err := unix.PidfdOpen(apid, 0)
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSuperviseAdopted$")
	cmd.Env = append(os.Environ(), adoptChild+"="+dir)
	cmd.ExtraFiles = []*os.File{pidfd}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	pidfd.Close()
	if err != nil {
		t.Fatal(err)
	}
	log := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return string(b)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf(format+"\nsupervisor log:\n%s\noutput:\n%s", append(args, log(), out.String())...)
	}
	watching := fmt.Sprintf("watching worker pid %d", apid)
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(log(), watching); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			fail("the supervisor does not say %q", watching)
		}
	}
	var worker int
	if kill {
		_ = unix.Kill(apid, unix.SIGKILL) // not reaped: a zombie
		ps, ok := waitPids(dir, 1)
		if !ok {
			fail("no new worker after the adopted one (pid %d) was killed", apid)
		}
		worker = ps[0]
		if worker == apid {
			fail("the new worker has the adopted one's pid %d", apid)
		}
		if st, ppid := procStat(worker); st == 'Z' || st == 0 || ppid != cmd.Process.Pid {
			fail("new worker %d: state %q, parent %d (want running, child of the supervisor %d)", worker, st, ppid, cmd.Process.Pid)
		}
	}
	_ = cmd.Process.Signal(unix.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("supervisor: %v\nlog:\n%s\noutput:\n%s", err, log(), out.String())
	}
	if kill {
		if unix.Kill(worker, 0) != unix.ESRCH {
			t.Errorf("worker %d still running after the supervisor stopped", worker)
			_ = unix.Kill(worker, unix.SIGKILL)
		}
		if want := fmt.Sprintf("network daemon (pid %d) is gone; restarting in 1s", apid); !strings.Contains(log(), want) {
			t.Errorf("the restart is not logged (%q):\n%s", want, log())
		}
		return
	}
	// The supervisor returns once the adopted worker has exited: it is
	// a zombie now, killed by the SIGTERM, and no worker was started.
	if st, _ := procStat(apid); st != 'Z' {
		t.Errorf("adopted worker %d in state %q after the supervisor stopped, want exited (Z)", apid, st)
	} else if err := adopted.Wait(); adopted.ProcessState.Sys().(syscall.WaitStatus).Signal() != unix.SIGTERM {
		t.Errorf("adopted worker: %v, want killed by SIGTERM", err)
	}
	if ps := readPids(dir); len(ps) != 0 {
		t.Errorf("workers started while the adopted one ran: %v", ps)
	}
}

// procStat is a process's state letter (0: no such process) and parent
// pid, from /proc/PID/stat.
func procStat(pid int) (byte, int) {
	f, err := lab.ProcStat(pid)
	if err != nil || len(f) < 2 {
		return 0, 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return f[0][0], ppid
}
