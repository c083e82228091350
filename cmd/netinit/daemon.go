package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/spec"
)

// cmdDaemon is `netinit daemon`: the network daemon PID 1 starts at boot.
// It keeps the network (leases, RAs, the overlays) after PID 1 has
// handed off to the next stage, serves the control socket, and never
// dies of its own errors.
//
// It is two processes: `netinit daemon --worker` runs the network code,
// and a supervisor that runs none restarts it with backoff whenever it
// dies (pid1.Supervisor). Before the handoff PID 1 starts the worker
// itself and is its supervisor: one exec of this binary, not two, stands
// between the drivers and the first DHCP packet. At the handoff PID 1
// starts `netinit daemon --adopt` with a pidfd of the running worker as
// fd 3: after the exec PID 1 is the next stage (zinit), which did not
// start the worker and would not restart it; the adopting supervisor
// watches the pidfd and, when the worker dies, starts and supervises a
// new one. `netinit daemon` alone (started by hand) is a supervisor that
// starts its worker at once. SIGTERM or SIGINT to the supervisor stops
// both.
func cmdDaemon(args []string) int {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	info := fs.String("boot-info", bootInfoPath, "PID 1's hand-over file")
	worker := fs.Bool("worker", false, "run the network code (started by the supervisor)")
	adopt := fs.Bool("adopt", false, "first watch the worker whose pidfd is fd 3 (PID 1 starts this at the handoff)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*worker {
		log := console.New(time.Now(), os.Stdout)
		if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			log.AttachKmsg(k)
		}
		ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
		defer stop()
		exe, err := os.Executable()
		if *adopt {
			code, err := superviseAdopted(ctx, log, adoptFD, exe, "daemon", "--worker", "--boot-info", *info)
			if err != nil {
				log.Logf("ERROR network daemon supervisor: %v", err)
			}
			return code
		}
		if err == nil {
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
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); watchModprobe(ctx, log) }()
	n := newBringUp(atBoot, bi, bootFiles, log)
	n.runKept(ctx)
	stop()
	log.Logf("network daemon stopping (leases and addresses stay in place)")
	return 0
}

// adoptFD is the fd of `netinit daemon --adopt`'s pidfd.
const adoptFD = 3

// superviseAdopted is the supervisor PID 1 starts at the handoff: it
// watches the worker whose pidfd is fd (not its child: the next stage
// reaps it) until it exits, then starts path with args after
// pid1.RestartDelay(1) and supervises it (superviseWorker). When ctx ends
// first it stops the watched worker instead. It returns an error when fd
// is not a pidfd (usage: code 2) or the new worker cannot be started.
func superviseAdopted(ctx context.Context, log *console.Log, fd int, path string, args ...string) (int, error) {
	pid, err := pidfdPID(fd)
	if err != nil {
		return 2, fmt.Errorf("--adopt: fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd) // not the new worker's
	log.Logf("network daemon supervisor running (pid %d), watching worker pid %d", os.Getpid(), pid)
	exited := make(chan error, 1)
	go func() { exited <- waitPidfd(fd) }() // returns when the worker has exited
	gone := func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
			return false
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			return 1, fmt.Errorf("watching worker pid %d: %w; it will not be restarted", pid, err)
		}
	case <-ctx.Done():
		stopWorker(log, pid, func(sig unix.Signal) error { return unix.PidfdSendSignal(fd, sig, nil, 0) }, gone)
		return 0, nil
	}
	unix.Close(fd)
	wait := pid1.RestartDelay(1)
	log.Logf("network daemon (pid %d) is gone; restarting in %s", pid, wait)
	if pause.For(ctx, wait) != nil {
		return 0, nil
	}
	return superviseWorker(ctx, log, path, args...)
}

// pidfdPID is the pid a pidfd refers to (-1: the process has been reaped),
// from its fdinfo; an error if fd is not a pidfd.
func pidfdPID(fd int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, errors.New("not a pidfd")
}

// waitPidfd waits until the process of pidfd fd has exited: the pidfd is
// readable then (poll(2); pidfd_open(2)).
func waitPidfd(fd int) error {
	for {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		_, err := unix.Poll(p, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if p[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0 {
			return nil
		}
		if p[0].Revents&unix.POLLNVAL != 0 {
			return unix.EBADF
		}
	}
}

// superviseWorker keeps path with args running until ctx ends, then
// stops it. It returns an error only when the worker cannot be started
// at all.
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
	stopWorker(log, pid, func(sig unix.Signal) error { return unix.Kill(pid, sig) },
		func() bool { return unix.Kill(pid, 0) == unix.ESRCH }) // reaped by pid1.Reap
	return 0, nil
}

// stopWorker sends the worker SIGTERM and waits until gone says it has
// exited; after 10 s it sends SIGKILL and waits 5 s more.
func stopWorker(log *console.Log, pid int, signal func(unix.Signal) error, gone func() bool) {
	waitGone := func(d time.Duration) bool {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if gone() {
				return true
			}
		}
		return false
	}
	_ = signal(unix.SIGTERM)
	if waitGone(10 * time.Second) {
		return
	}
	log.Logf("network daemon worker (pid %d) still running 10s after SIGTERM; killing it", pid)
	_ = signal(unix.SIGKILL)
	if !waitGone(5 * time.Second) {
		log.Logf("network daemon worker (pid %d) still there 5s after SIGKILL", pid)
	}
}
