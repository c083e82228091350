package main

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
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
		code, err := superviseWorker(ctx, console.New(time.Now(), os.Stdout), "/bin/sh", "-c",
			"echo $$ >> "+filepath.Join(dir, "pids")+"; exec sleep 60")
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
	pids := func() []int {
		b, _ := os.ReadFile(filepath.Join(dir, "pids"))
		var ps []int
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				ps = append(ps, p)
			}
		}
		return ps
	}
	wait := func(n int) []int {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if ps := pids(); len(ps) >= n {
				return ps
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("worker start %d not seen; output:\n%s", n, out.String())
		return nil
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
