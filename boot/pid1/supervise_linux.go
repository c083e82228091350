package pid1

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
)

// Supervisor keeps one child process running before the handoff:
// started in its own session (so it survives the exec of the next stage),
// with the console as its stdio, restarted with backoff when it dies.
// After the handoff the next stage is PID 1: the child is on its own, or
// watched by the process HandOver started.
type Supervisor struct {
	log  *console.Log
	path string
	args []string

	mu      sync.Mutex
	pid     int
	starts  int
	stopped bool
}

// supervised is the Supervisor that Reap reports exits to.
var supervised atomic.Pointer[Supervisor]

// Supervise starts path with args and keeps it running (Reap must run).
func Supervise(log *console.Log, path string, args ...string) (*Supervisor, error) {
	s := &Supervisor{log: log, path: path, args: args}
	s.mu.Lock() // an exit may be reaped before start returns
	defer s.mu.Unlock()
	supervised.Store(s)
	if err := s.start(); err != nil {
		supervised.Store(nil)
		return nil, err
	}
	return s, nil
}

func (s *Supervisor) start() error {
	pid, err := Spawn(s.path, s.args)
	if err != nil {
		return err
	}
	s.pid = pid
	s.starts++
	return nil
}

// Spawn starts path with args in its own session (so that it survives the
// exec of the next stage), with the console as its stdio and extra as its
// fds 3, 4 …, and returns its pid; Reap collects it.
func Spawn(path string, args []string, extra ...*os.File) (int, error) {
	attr := &os.ProcAttr{
		Env:   Env,
		Files: append([]*os.File{os.Stdin, os.Stdout, os.Stderr}, extra...),
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	p, err := os.StartProcess(path, append([]string{path}, args...), attr)
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", path, err)
	}
	pid := p.Pid
	_ = p.Release()
	return pid, nil
}

// PID is the current child's pid.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Starts is how many times the child was started.
func (s *Supervisor) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// exited is told of every pid Reap collects: when the child dies it is
// restarted after RestartDelay, said on the console.
func (s *Supervisor) exited(pid int, ws unix.WaitStatus) {
	s.mu.Lock()
	if pid != s.pid || s.stopped {
		s.mu.Unlock()
		return
	}
	n := s.starts
	s.mu.Unlock()
	wait := RestartDelay(n)
	s.log.Logf("network daemon (pid %d) %s; restarting in %s (start %d)", pid, describe(ws), wait, n+1)
	go func() {
		time.Sleep(wait)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopped {
			return
		}
		if err := s.start(); err != nil {
			s.log.Logf("network daemon: %v", err)
		}
	}()
}

// Detach stops supervising (at the handoff): the child keeps running.
func (s *Supervisor) Detach() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// HandOver stops supervising (at the handoff) and starts path with args
// (Spawn) as the child's next supervisor, with a pidfd of the child as
// its fd 3: after the exec the next stage is PID 1 and reaps the child,
// and a pidfd is how a process that is not the parent sees it exit
// (pidfd_open(2), Linux 5.3; readable once the child has exited, zombie
// or reaped). It returns the new supervisor's pid. An error wrapping
// ESRCH means the child is gone already (it died just before, its restart
// cancelled).
func (s *Supervisor) HandOver(path string, args ...string) (int, error) {
	s.mu.Lock()
	s.stopped = true
	pid := s.pid
	s.mu.Unlock()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd of pid %d: %w", pid, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	defer pidfd.Close()
	return Spawn(path, args, pidfd)
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	}
	return "stopped"
}
