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
// After the handoff the next stage is PID 1 and the child is on its own.
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
	attr := &os.ProcAttr{
		Env:   Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	p, err := os.StartProcess(s.path, append([]string{s.path}, s.args...), attr)
	if err != nil {
		return fmt.Errorf("starting %s: %w", s.path, err)
	}
	s.pid = p.Pid
	s.starts++
	_ = p.Release() // Reap collects it
	return nil
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

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	}
	return "stopped"
}
