// Package pid1 does what the first process of the initramfs must do before
// and after the network comes up: mount the pseudo filesystems, make the
// console usable, start from a clean environment, reap orphans, contain
// panics, and finally hand off to the next stage (or power off in tests).
// It never returns an error that ends the process: PID 1 exiting panics
// the kernel.
package pid1

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
)

// mounts are the filesystems the init and the next stage need: what
// 0-OS's own initramfs /init mounts in the root it hands to zinit
// (github.com/threefoldtech/0-initramfs, config/init/init: proc, sysfs,
// devtmpfs, devpts on /dev/pts), plus /run and /tmp. A root switch moves
// /dev with /dev/pts under it (MS_MOVE takes the subtree), so the next
// stage finds them all in the tmpfs root.
var mounts = []struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	// PTYs for sshd and cloud-hypervisor's --serial pty (zosbase
	// pkg/vm/ch.go): devtmpfs' /dev/ptmx (5:2, 0666) opens the devpts
	// instance mounted beside it at /dev/pts (Documentation/filesystems/
	// devpts.rst); ptmxmode=0666 makes /dev/pts/ptmx usable too (the
	// default 000 is for a /dev/ptmx symlink to it). The owner of a new
	// pty is the tty group (gid 5 in 0-initramfs' /etc/group), mode 0620,
	// as systemd mounts it.
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// Env is the whole environment the init and the next stage start from. The
// kernel passes every cmdline key=value it doesn't know to PID 1 as an
// environment variable (PPROFLISTEN= would make yggdrasil-go start a pprof
// server, for one); none of that is passed on.
var Env = []string{
	"PATH=/sbin:/bin:/usr/sbin:/usr/bin",
	"HOME=/",
	"TERM=linux",
}

// Setup mounts the pseudo filesystems, makes /dev/console the init's
// stdio, clears the environment and returns the event log (console +
// kmsg). Problems are logged, never fatal.
func Setup(start time.Time) *console.Log {
	sigs := holdSignals()
	var problems []string
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			problems = append(problems, fmt.Sprintf("mkdir %s: %v", m.target, err))
		}
		if mounted(m.target) {
			continue // moved here by a root switch: keep it (and what /run holds)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			problems = append(problems, fmt.Sprintf("mount %s on %s: %v", m.fstype, m.target, err))
		}
	}
	// /dev/console is in the archive itself (the init has no stdio before
	// devtmpfs); after the mount it is devtmpfs' node.
	if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for _, fd := range []int{0, 1, 2} {
			_ = unix.Dup2(int(c.Fd()), fd)
		}
		c.Close()
	} else {
		problems = append(problems, fmt.Sprintf("open /dev/console: %v", err))
	}
	os.Clearenv()
	for _, kv := range Env {
		k, v, _ := cut(kv)
		os.Setenv(k, v)
	}
	log := console.New(start, os.Stdout)
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		log.AttachKmsg(k)
	}
	for _, p := range problems {
		log.Logf("init: %s", p)
	}
	go logSignals(log, sigs)
	return log
}

// mounted reports whether path is a mount point (another filesystem than
// its parent's).
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// HoldSignals keeps SIGTERM, SIGINT and SIGHUP from ending the process
// and logs each one. PID 1 must never exit (the kernel panics), and the
// Go runtime's default for these signals is to exit, whatever PID it has:
// a Ctrl-Alt-Del (SIGINT to init), a stray kill or a console hangup
// before the handoff would take the node down. They are caught, not
// ignored: execve resets caught signals to their defaults (signal(7)) but
// keeps ignored ones, and the next stage must get the defaults.
func HoldSignals(log *console.Log) {
	go logSignals(log, holdSignals())
}

func holdSignals() chan os.Signal {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	return ch
}

// logSignals says on the console what was held; it ends with the process
// (at the exec of the next stage).
func logSignals(log *console.Log, ch chan os.Signal) {
	for sig := range ch {
		log.Logf("init: %v received and ignored: PID 1 does not exit before the handoff", sig)
	}
}

func cut(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// Reap collects the exit status of every child and orphan re-parented to
// PID 1, until the process execs or dies. The init starts its children
// with Supervise, never with exec.Cmd.Wait (the reaper would steal their
// status); the current Supervisor hears of every reaped pid.
func Reap() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
				if s := supervised.Load(); s != nil {
					s.exited(pid, ws)
				}
			}
		}
	}()
}

// Guard runs fn and turns a panic into an error carrying the stack, so
// that the init can report it and carry on to the emergency path.
func Guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

// Shells are tried, in order, for the emergency path.
var Shells = []string{"/bin/sh", "/bbin/gosh", "/bin/gosh", "/bin/elvish"}

// Emergency is where the init goes when it cannot hand off: it says why,
// runs a shell on the console when the image has one (again and again),
// and otherwise keeps PID 1 alive forever. It never returns.
func Emergency(log *console.Log, why string) {
	log.Logf("EMERGENCY: %s", why)
	for {
		shell := ""
		for _, s := range Shells {
			if fi, err := os.Stat(s); err == nil && fi.Mode().IsRegular() {
				shell = s
				break
			}
		}
		if shell == "" {
			log.Logf("EMERGENCY: no shell in this image; PID 1 stays alive doing nothing (power-cycle the node)")
			signal.Ignore(unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
			select {}
		}
		log.Logf("EMERGENCY: starting %s on the console", shell)
		cmd := exec.Command(shell)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = Env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Run(); err != nil {
			log.Logf("EMERGENCY: %s: %v", shell, err)
		}
		time.Sleep(time.Second)
	}
}

// DefaultNext are the next stages tried, with their arguments, when
// netinit.next= is not given: 0-OS's zinit as its initramfs starts it
// ("switch_root /mnt/root /sbin/zinit init"), else a classic init.
var DefaultNext = [][]string{{"/sbin/zinit", "init"}, {"/sbin/init"}}

// FindNext returns the next stage to exec and its arguments: next (with
// args) if set, else the first of DefaultNext that exists.
func FindNext(next string, args []string) (string, []string, error) {
	cands := DefaultNext
	if next != "" {
		cands = [][]string{append([]string{next}, args...)}
	}
	var paths []string
	for _, c := range cands {
		fi, err := os.Stat(c[0])
		if err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c[0], c[1:], nil
		}
		paths = append(paths, c[0])
	}
	return "", nil, fmt.Errorf("no next stage: none of %v is an executable file", paths)
}

// Handoff replaces the init with the next stage. It returns only on error.
// The signals HoldSignals catches go back to their defaults in the exec
// itself, so there is no moment when one of them would end PID 1.
func Handoff(path string, args ...string) error {
	argv := append([]string{filepath.Base(path)}, args...)
	if err := unix.Exec(path, argv, Env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// Poweroff syncs and powers the machine off (used by netinit.test=poweroff).
// If the power-off fails it returns the error; the caller goes to
// Emergency.
func Poweroff() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	select {}
}
