package main

// The runner: 0-OS's zinit service files run with zinit's semantics.
// zinit (github.com/threefoldtech/zinit) is Rust and its crates cannot be
// fetched here. 0-initramfs ships v0.2.11 (packages/zinit.sh:
// ZINIT_VERSION="0.2.11"); every rule below cites that tag's source
// (commit 40d8375b7377b3f47905e15246fa988c200757ff), whose scheduling is
// the same as master's src/zinit/lifecycle.rs (can_schedule, test_loop,
// watch_service):
//
//   - `zinit init` loads every *.yaml file of /etc/zinit and monitors each
//     (src/app/mod.rs:82-87; src/zinit/config.rs:92-119) and answers on
//     /var/run/zinit.sock (src/main.rs:23; `monitor NAME` loads NAME.yaml
//     from the config directory: src/app/api.rs:159-164).
//   - A service starts once every service in its `after:` is Running and
//     not a oneshot, or is Success; a name that is not monitored blocks it
//     (until it is monitored) (src/zinit/mod.rs:444-475). A blocked service
//     checks again only when woken, which happens when a test passes and
//     when a oneshot exits (mod.rs:487, 671, 579-593).
//   - exec is split like a shell line, run from / (or dir:) in its own
//     process group with zinit's environment, /etc/environment and env:
//     (src/manager/mod.rs:152-179); log: stdout inherits the console, ring
//     is captured line by line with "[+] name:"/"[-] name:" prefixes
//     (mod.rs:168-190; zinit keeps those in a ring buffer that `zinit log`
//     shows, this runner prints them), none discards.
//   - A service that cannot be spawned is Failure and never retried
//     (src/zinit/mod.rs:620-633).
//   - A oneshot is Running while it runs, and only its exit counts: Success
//     on exit 0, else Error; it is never started again (mod.rs:636-638,
//     655-673).
//   - A long-running service is Spawned until its test: command succeeds
//     (tried every 2 s; no test counts as passed), then Running
//     (mod.rs:477-525, 644-648); when it exits it is Success or Error and
//     is started again 2 s later (mod.rs:655-675).
//
// Orphans re-parented to PID 1 are reaped with the children, by one
// waitpid(-1) loop on SIGCHLD (src/manager/mod.rs:86-127).
//
// Besides zinit: once the graph settled (every service Success, Error,
// Failure, Running, or blocked for good on a dead or unknown service, and
// nothing changed for a second) or zinit.settle= (default 120s) passed,
// it prints one "ZINIT-SERVICE" line per service and netinit's live state
// between the NETINIT-RESULT markers, then powers off (zinit.stay=1: it
// does not). Not as PID 1 (the host test) it exits instead.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/control"
)

// The states of src/zinit/mod.rs:127-149.
const (
	stUnknown     = "Unknown"
	stBlocked     = "Blocked"
	stSpawned     = "Spawned"
	stRunning     = "Running"
	stSuccess     = "Success"
	stError       = "Error"
	stTestFailure = "TestFailure"
	stFailure     = "Failure"
)

// restartDelay is zinit's 2 s: between a long-running service's exit and
// its next start, and between two tries of its test.
const restartDelay = 2 * time.Second

type service struct {
	name   string
	cfg    config
	state  string
	exit   string // how the last run ended ("exit 1", "signal 9")
	pid    int
	starts int
	first  float64 // uptime of the first start
}

type runner struct {
	dir, socket string
	env         []string

	mu       sync.Mutex
	cond     *sync.Cond
	gen      uint64 // notify count: blocked services wait for it to move
	services map[string]*service
	changed  time.Time

	procMu sync.Mutex
	procs  map[int]chan unix.WaitStatus
}

func zinitMain(args []string) int {
	fs := flag.NewFlagSet("zinit", flag.ContinueOnError)
	socket := fs.String("s", "/var/run/zinit.sock", "path to unix socket")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: zinit [-s SOCKET] init [-c DIR] [--settle DUR] | monitor NAME | list | status NAME")
		return 2
	}
	switch cmd := fs.Arg(0); cmd {
	case "init":
		return zinitInit(*socket, fs.Args()[1:])
	case "monitor", "status", "list":
		return zinitClient(*socket, fs.Args())
	default:
		fmt.Fprintf(os.Stderr, "zinit: unknown command %q\n", cmd)
		return 2
	}
}

func zinitInit(socket string, args []string) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	dir := fs.String("c", "/etc/zinit", "service configurations directory")
	settle := fs.Duration("settle", 120*time.Second, "report by then even when the graph did not settle")
	stay := fs.Bool("stay", false, "keep running after the report")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pid1 := os.Getpid() == 1
	if pid1 {
		if v := cmdlineValue("zinit.settle"); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				*settle = d
			}
		}
		*stay = cmdlineValue("zinit.stay") == "1"
	}
	r := &runner{dir: *dir, socket: socket, services: map[string]*service{}, procs: map[int]chan unix.WaitStatus{},
		changed: time.Now()}
	r.cond = sync.NewCond(&r.mu)
	r.env = append(os.Environ(), environment("/etc/environment")...)
	r.reap()
	if err := os.Chdir(r.dir); err != nil { // src/app/mod.rs:70-76
		r.logf("config directory: %v", err)
		return 1
	}
	cfgs, err := loadDir(r.dir, r.logf)
	if err != nil {
		r.logf("loading %s: %v", r.dir, err)
		return 1
	}
	r.logf("started as pid %d: %d services in %s", os.Getpid(), len(cfgs), r.dir)
	for _, n := range sortedNames(cfgs) {
		if err := r.monitor(n, cfgs[n]); err != nil {
			r.logf("failed to monitor service %s: %v", n, err)
		}
	}
	go r.serve()
	settled := r.waitSettled(*settle)
	r.report(settled, *settle)
	if *stay {
		select {}
	}
	if pid1 {
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		select {}
	}
	r.killAll()
	return 0
}

func (r *runner) logf(format string, args ...any) { say("zinit", format, args...) }

// monitor adds a service and starts watching it; a name monitored already
// is refused (src/zinit/mod.rs:201-218).
func (r *runner) monitor(name string, c config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.services[name]; ok {
		return fmt.Errorf("service %q already monitored", name)
	}
	s := &service{name: name, cfg: c, state: stUnknown}
	r.services[name] = s
	r.changed = time.Now()
	go r.watch(s)
	return nil
}

// setState records a state change (the caller holds r.mu).
func (r *runner) setState(s *service, st string) {
	if s.state == st {
		return
	}
	s.state = st
	r.changed = time.Now()
	r.logf("%s: %s", s.name, st)
}

// notify wakes the blocked services (tokio's Notify::notify_waiters). The
// caller holds r.mu.
func (r *runner) notify() {
	r.gen++
	r.cond.Broadcast()
}

// canSchedule is src/zinit/mod.rs:444-475. The caller holds r.mu.
func (r *runner) canSchedule(c config) (bool, string) {
	for _, dep := range c.After {
		d, ok := r.services[dep]
		switch {
		case !ok:
			return false, dep + " (unknown)"
		case d.state == stRunning && !d.cfg.Oneshot, d.state == stSuccess:
		default:
			return false, dep + " (" + d.state + ")"
		}
	}
	return true, ""
}

// watch is a service's life (src/zinit/mod.rs:544-680).
func (r *runner) watch(s *service) {
	for {
		r.mu.Lock()
		for {
			ok, why := r.canSchedule(s.cfg)
			if ok {
				break
			}
			if s.state != stBlocked {
				r.setState(s, stBlocked)
				r.logf("%s: waits for %s", s.name, why)
			}
			for g := r.gen; g == r.gen; {
				r.cond.Wait()
			}
		}
		s.starts++
		if s.starts == 1 {
			s.first = uptime()
		}
		r.mu.Unlock()

		pid, done, err := r.spawn(s.name, s.cfg.Exec, s.cfg)
		r.mu.Lock()
		if err != nil {
			r.logf("service %s failed to start: %v", s.name, err)
			r.setState(s, stFailure)
			r.mu.Unlock()
			return
		}
		s.pid = pid
		r.setState(s, stSpawned)
		r.logf("%s: started, pid %d (%s)", s.name, pid, kindOf(s.cfg))
		if s.cfg.Oneshot {
			r.setState(s, stRunning)
		}
		r.mu.Unlock()

		stop := make(chan struct{})
		if !s.cfg.Oneshot {
			go r.testLoop(s, pid, stop)
		}
		ws := <-done
		close(stop)

		r.mu.Lock()
		s.pid = 0
		s.exit = exitText(ws)
		if ws.Exited() && ws.ExitStatus() == 0 {
			r.setState(s, stSuccess)
		} else {
			r.setState(s, stError)
		}
		r.logf("%s: %s", s.name, s.exit)
		if s.cfg.Oneshot {
			r.notify()
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		time.Sleep(restartDelay)
	}
}

func kindOf(c config) string {
	if c.Oneshot {
		return "oneshot"
	}
	return "long-running"
}

// testLoop runs the test command until it passes, then marks the service
// Running (src/zinit/mod.rs:477-525). zinit retries a test it cannot even
// spawn at once, without a pause; here the 2 s apply to that too. It ends
// when stop closes (the service exited: mod.rs:650-653).
func (r *runner) testLoop(s *service, pid int, stop <-chan struct{}) {
	for {
		ok := true
		if s.cfg.Test != "" {
			_, done, err := r.spawn(s.name+"/test", s.cfg.Test, s.cfg)
			if err != nil {
				r.mu.Lock()
				if s.pid == pid {
					r.setState(s, stTestFailure)
				}
				r.mu.Unlock()
				ok = false
			} else {
				ws := <-done
				ok = ws.Exited() && ws.ExitStatus() == 0
			}
		}
		if ok {
			r.mu.Lock()
			if s.pid == pid {
				r.setState(s, stRunning)
				r.notify()
			}
			r.mu.Unlock()
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(restartDelay):
		}
	}
}

// spawn starts a command line as zinit's process manager does
// (src/manager/mod.rs:152-201). The channel gets its wait status.
func (r *runner) spawn(name, line string, c config) (int, <-chan unix.WaitStatus, error) {
	args, ok := shlex(line)
	if !ok || len(args) == 0 {
		return 0, nil, fmt.Errorf("failed to parse command %q", line)
	}
	env := r.env
	for _, k := range sortedNames(c.Env) {
		env = append(env, k+"="+c.Env[k])
	}
	path, err := lookPath(args[0], env)
	if err != nil {
		return 0, nil, err
	}
	dir := c.Dir
	if dir == "" {
		dir = "/"
	}
	files := []uintptr{0, 1, 2}
	switch c.Log {
	case "none":
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return 0, nil, err
		}
		defer null.Close()
		files[1], files[2] = null.Fd(), null.Fd()
	case "ring":
		for i, prefix := range []string{"[+] " + name + ": ", "[-] " + name + ": "} {
			pr, pw, err := os.Pipe()
			if err != nil {
				return 0, nil, err
			}
			defer pw.Close()
			files[i+1] = pw.Fd()
			go copyLines(pr, prefix)
		}
	}
	done := make(chan unix.WaitStatus, 1)
	r.procMu.Lock() // the reaper cannot see the pid before it is registered
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Dir: dir, Env: env, Files: files,
		Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err == nil {
		r.procs[pid] = done
	}
	r.procMu.Unlock()
	if err != nil {
		// The pipes' readers end when their write ends close (deferred).
		return 0, nil, fmt.Errorf("failed to spawn %s: %w", path, err)
	}
	return pid, done, nil
}

// copyLines prints what a ring-logged service writes, line by line.
func copyLines(f *os.File, prefix string) {
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fmt.Println(prefix + sc.Text())
	}
}

// lookPath finds a command as Rust's Command::new does: a name with a
// slash as it is, else the first executable of that name in PATH.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, path)
}

// reap collects every exited child and orphan, and hands the statuses of
// the runner's own to their waiters (src/manager/mod.rs:86-127).
func (r *runner) reap() {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			r.procMu.Lock()
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
				if done, ok := r.procs[pid]; ok {
					delete(r.procs, pid)
					done <- ws
				}
			}
			r.procMu.Unlock()
		}
	}()
}

func exitText(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by signal %d", ws.Signal())
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// environment reads KEY=VALUE lines (src/manager/mod.rs: Environ::parse).
func environment(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && strings.Contains(l, "=") {
			out = append(out, l)
		}
	}
	return out
}

// final reports whether a service will not change by itself any more.
// The caller holds r.mu.
func (r *runner) final(s *service, seen map[string]bool) bool {
	switch s.state {
	case stFailure:
		return true
	case stSuccess, stError:
		return s.cfg.Oneshot
	case stRunning:
		return !s.cfg.Oneshot
	case stBlocked:
		return r.dead(s, seen)
	}
	return false
}

// dead: blocked for good, on a service that is unknown, failed for good,
// or itself blocked for good.
func (r *runner) dead(s *service, seen map[string]bool) bool {
	if seen[s.name] {
		return true // a cycle never unblocks
	}
	seen[s.name] = true
	defer delete(seen, s.name)
	for _, dep := range s.cfg.After {
		d, ok := r.services[dep]
		switch {
		case !ok, d.state == stFailure, d.cfg.Oneshot && d.state == stError:
			return true
		case d.state == stBlocked && r.dead(d, seen):
			return true
		}
	}
	return false
}

// waitSettled returns true once every service is final and nothing
// changed for a second, false when max passed first.
func (r *runner) waitSettled(max time.Duration) bool {
	end := time.Now().Add(max)
	for time.Now().Before(end) {
		time.Sleep(250 * time.Millisecond)
		r.mu.Lock()
		all := true
		for _, s := range r.services {
			if !r.final(s, map[string]bool{}) {
				all = false
				break
			}
		}
		quiet := time.Since(r.changed) >= time.Second
		r.mu.Unlock()
		if all && quiet {
			return true
		}
	}
	return false
}

// report prints the services and netinit's live state.
func (r *runner) report(settled bool, max time.Duration) {
	r.mu.Lock()
	if settled {
		r.logf("the service graph settled: %d services", len(r.services))
	} else {
		r.logf("the service graph did not settle within %s: %d services", max, len(r.services))
	}
	for _, n := range sortedNames(r.services) {
		s := r.services[n]
		why := ""
		if s.state == stBlocked {
			_, why = r.canSchedule(s.cfg)
		}
		fmt.Printf("ZINIT-SERVICE name=%s state=%s starts=%d first=%.3f exit=%q oneshot=%v waits=%q\n",
			n, s.state, s.starts, s.first, s.exit, s.cfg.Oneshot, why)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	doc := []byte("{}")
	if rep, err := control.Call(ctx, control.DefaultPath, "status"); err == nil && rep.State != nil {
		doc, _ = json.Marshal(rep.State)
	} else {
		r.logf("netinit's state: %v", err)
	}
	fmt.Printf("NETINIT-RESULT-BEGIN\n%s\nNETINIT-RESULT-END\n", doc)
}

// killAll ends the process groups of the services still running (the
// host test; PID 1 powers off instead).
func (r *runner) killAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.services {
		if s.pid > 0 {
			_ = unix.Kill(-s.pid, unix.SIGKILL)
		}
	}
}

// serve answers zinit's socket protocol (src/app/api.rs:50-134): one
// command line per connection, one JSON {"state","body"} reply.
func (r *runner) serve() {
	_ = os.MkdirAll(filepath.Dir(r.socket), 0o755)
	_ = os.Remove(r.socket)
	ln, err := net.Listen("unix", r.socket)
	if err != nil {
		r.logf("socket %s: %v", r.socket, err)
		return
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go r.handle(c)
	}
}

type reply struct {
	State string `json:"state"`
	Body  any    `json:"body"`
}

func (r *runner) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return
	}
	body, err := r.command(strings.TrimSpace(line))
	rep := reply{State: "ok", Body: body}
	if err != nil {
		rep = reply{State: "error", Body: err.Error()}
	}
	_ = json.NewEncoder(c).Encode(rep)
}

func (r *runner) command(line string) (any, error) {
	parts, ok := shlex(line)
	if !ok || len(parts) == 0 {
		return nil, errors.New("invalid command syntax")
	}
	switch {
	case parts[0] == "list":
		r.mu.Lock()
		defer r.mu.Unlock()
		out := map[string]string{}
		for n, s := range r.services {
			out[n] = s.state
		}
		return out, nil
	case parts[0] == "status" && len(parts) == 2:
		r.mu.Lock()
		defer r.mu.Unlock()
		s, ok := r.services[parts[1]]
		if !ok {
			return nil, fmt.Errorf("service name %q unknown", parts[1])
		}
		return map[string]any{"name": s.name, "pid": s.pid, "state": s.state, "after": s.cfg.After}, nil
	case parts[0] == "monitor" && len(parts) == 2:
		name, c, err := loadService(filepath.Join(r.dir, parts[1]+".yaml"))
		if err != nil {
			return nil, fmt.Errorf("failed to load service config: %w", err)
		}
		if err := r.monitor(name, c); err != nil {
			return nil, err
		}
		r.logf("%s: monitored (zinit monitor)", name)
		return nil, nil
	}
	return nil, fmt.Errorf("unknown command '%s' or wrong arguments count", parts[0])
}

// zinitClient is `zinit monitor NAME`, `zinit list`, `zinit status NAME`.
func zinitClient(socket string, args []string) int {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "zinit: %v\n", err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	if _, err := fmt.Fprintln(c, strings.Join(q, " ")); err != nil {
		fmt.Fprintf(os.Stderr, "zinit: %v\n", err)
		return 1
	}
	var rep reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		fmt.Fprintf(os.Stderr, "zinit: reply: %v\n", err)
		return 1
	}
	b, _ := json.Marshal(rep.Body)
	if rep.State != "ok" {
		fmt.Fprintf(os.Stderr, "zinit: %s\n", b)
		return 1
	}
	fmt.Println(string(b))
	return 0
}
