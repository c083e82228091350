package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/spec"
)

// cmdDaemon is `netinit daemon`: the network daemon PID 1 starts at boot.
// It keeps the network (leases, RAs, the overlays) after PID 1 has
// handed off to the next stage, serves the control socket, and never
// dies of its own errors.
//
// It is two processes. `netinit daemon` is a supervisor that does nothing
// but keep `netinit daemon --worker` (the network code) running,
// restarting it with backoff whenever it dies (pid1.Supervisor, the one
// PID 1 uses until the handoff). After the handoff PID 1 is the next
// stage (zinit), which did not start the daemon and does not restart it;
// the supervisor, which runs no network code, is what brings a killed
// or crashed worker back. SIGTERM or SIGINT to the supervisor stops both.
func cmdDaemon(args []string) int {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	info := fs.String("boot-info", bootInfoPath, "PID 1's hand-over file")
	worker := fs.Bool("worker", false, "run the network code (started by the supervisor)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*worker {
		log := console.New(time.Now(), os.Stdout)
		if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			log.AttachKmsg(k)
		}
		exe, err := os.Executable()
		if err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
			defer stop()
			var code int
			if code, err = superviseWorker(ctx, log, exe, "daemon", "--worker", "--boot-info", *info); err == nil {
				return code
			}
		}
		log.Logf("ERROR network daemon supervisor: %v; running the network without it", err)
	}
	bi, own := readBootInfo(*info, parseKernel)
	log := console.New(bi.Start, os.Stdout)
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		log.AttachKmsg(k)
	}
	log.Logf("network daemon running (pid %d)", os.Getpid())
	for _, p := range own { // PID 1 printed its own
		log.Logf("%s", p)
	}
	if bi.Spec.Test == spec.TestDaemonCrash {
		// Fault test: the first start dies, PID 1 must restart it.
		marker := filepath.Join(filepath.Dir(*info), "daemon-crashed")
		if _, err := os.Stat(marker); err != nil {
			_ = os.WriteFile(marker, nil, 0o644)
			// PID 1 must also survive the signals a stray kill or a
			// Ctrl-Alt-Del sends it before the handoff.
			for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP} {
				_ = unix.Kill(1, sig)
			}
			log.Logf("netinit.test=daemon-crash: sent SIGTERM, SIGINT, SIGHUP to PID 1; dying on purpose")
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	n := newBringUp(atBoot, bi, bootFiles, log)
	n.runKept(ctx)
	log.Logf("network daemon stopping (leases and addresses stay in place)")
	return 0
}

// superviseWorker keeps path with args running until ctx ends, then
// sends it SIGTERM and waits (bounded) for it to exit. It returns an
// error only when the worker cannot be started at all.
func superviseWorker(ctx context.Context, log *console.Log, path string, args ...string) (int, error) {
	pid1.Reap()
	sup, err := pid1.Supervise(log, path, args...)
	if err != nil {
		return 1, err
	}
	log.Logf("network daemon supervisor running (pid %d), worker pid %d", os.Getpid(), sup.PID())
	<-ctx.Done()
	sup.Detach()
	pid := sup.PID()
	_ = unix.Kill(pid, unix.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if unix.Kill(pid, 0) == unix.ESRCH { // reaped by pid1.Reap
			return 0, nil
		}
	}
	log.Logf("network daemon worker (pid %d) still running 10s after SIGTERM; killing it", pid)
	_ = unix.Kill(pid, unix.SIGKILL)
	return 0, nil
}
