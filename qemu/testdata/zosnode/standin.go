package main

// The stand-ins: the programs 0-OS's service files run that the test image
// does not have (0-OS's binaries and 0-initramfs' scripts are code, not
// data: they are not checked in). Each says how it was invoked; a oneshot
// exits 0, a daemon stays until SIGTERM.
//
// To add a stand-in or give one a behaviour (a networkd that starts
// Yggdrasil in ndmz, an identityd that writes the seed, ...): add or edit
// its entry in programs. path is where the image installs it (the test
// asks `zosnode --names` and links every path to the one binary); run
// gets the arguments. A daemon is daemon(steps...): each step runs once
// at start, in order, and a failing one makes the daemon exit 1 (zinit
// then restarts it after 2 s). A script that 0-OS runs as `sh SCRIPT`
// gets an entry in scripts.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

type program struct {
	path string
	run  func(args []string) int
}

var programs = map[string]program{
	// 0-initramfs config/etc/zinit
	"sh":      {"/bin/sh", shell},
	"haveged": {"/usr/sbin/haveged", exit0}, // a oneshot there: the real one forks into the background
	"ntpd":    {"/usr/sbin/ntpd", daemon()},
	"udevd":   {"/sbin/udevd", daemon()},
	"sshd":    {"/usr/sbin/sshd", daemon()},
	// zos bootstrap/etc/zinit
	"internet":  {"/bin/internet", stockInternet},
	"bootstrap": {"/sbin/bootstrap", bootstrap},
	// zos etc/zinit (installed by the bootstrap stand-in)
	"true":         {"/bin/true", exit0},
	"redis-server": {"/usr/bin/redis-server", daemon(redisSocket)},
	"storaged":     {"/bin/storaged", daemon(mountTmpfs("/var/cache"), register("storage"))},
	"identityd":    {"/bin/identityd", identityd},
	"networkd":     {"/bin/networkd", networkd},
	"yggdrasil":    {"/usr/bin/yggdrasil", yggdrasil},
	"zbusdebug":    {"/bin/zbusdebug", zbusdebug},
	"mountpoint":   {"/bin/mountpoint", mountpoint},
	// the test's own (observe.go), run by the test image's observe.yaml
	"observe": {"/usr/lib/zosnode/observe", observe},
}

// scripts are the 0-initramfs and zos scripts that services run as
// `sh /etc/zinit/init/NAME`: a step, or nil to only say it ran.
var scripts = map[string]func() error{
	"cgroup.sh": nil,
	// fuse, btrfs, tun, br_netfilter: the test image has netinit's
	// modules and the base's macvlan (the root's kmod loads what is
	// asked for: observe.go).
	"modprobe.sh": nil,
	// What it does (echo 1 > ip_forward), to the same kernel.
	"routing.sh":    writeFile("/proc/sys/net/ipv4/ip_forward", "1"),
	"sshd-setup.sh": nil,
	// udevadm trigger --action=add, udevadm settle: no udevd here.
	"udev.sh":       nil,
	"node-ready.sh": nil,
}

// programPaths are the install paths of every stand-in.
func programPaths() []string {
	var out []string
	for _, p := range programs {
		out = append(out, p.path)
	}
	sort.Strings(out)
	return out
}

func standin(name string, args []string) int {
	p, ok := programs[name]
	if !ok {
		say(name, "no stand-in for %q in this image", name)
		return 127
	}
	say(name, "stand-in started: %s (pid %d)", strings.Join(append([]string{name}, args...), " "), os.Getpid())
	return p.run(args)
}

func exit0([]string) int { return 0 }

// daemon runs steps, then stays until SIGTERM or SIGINT.
func daemon(steps ...func() error) func([]string) int {
	return func(args []string) int {
		for _, step := range steps {
			if err := step(); err != nil {
				say("standin", "%s: %v", filepath.Base(os.Args[0]), err)
				return 1
			}
		}
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, unix.SIGTERM, unix.SIGINT)
		<-ch
		return 0
	}
}

// shell stands in for `sh SCRIPT` (the script's entry in scripts) and for
// `sh -c "A && B"` (each command run in turn, up to the first that fails:
// storaged's test is "mountpoint /var/cache && zbusdebug --module storage").
func shell(args []string) int {
	switch {
	case len(args) == 2 && args[0] == "-c":
		for _, part := range strings.Split(args[1], "&&") {
			words, ok := shlex(strings.TrimSpace(part))
			if !ok || len(words) == 0 {
				say("sh", "cannot run %q", part)
				return 2
			}
			if rc := run(words); rc != 0 {
				return rc
			}
		}
		return 0
	case len(args) >= 1 && !strings.HasPrefix(args[0], "-"):
		step, ok := scripts[filepath.Base(args[0])]
		if !ok {
			say("sh", "no stand-in for the script %s", args[0])
			return 127
		}
		if step != nil {
			if err := step(); err != nil {
				say("sh", "%s: %v", args[0], err)
				return 1
			}
		}
		return 0
	}
	say("sh", "the stand-in runs a script or -c only: %q", args)
	return 2
}

// run runs a command (looked up in PATH) and returns its exit code.
func run(words []string) int {
	path, err := lookPath(words[0], os.Environ())
	if err != nil {
		say("sh", "%v", err)
		return 127
	}
	p, err := os.StartProcess(path, words, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		say("sh", "%v", err)
		return 126
	}
	st, err := p.Wait()
	if err != nil {
		return 1
	}
	return st.ExitCode()
}

func writeFile(path, v string) func() error {
	return func() error { return os.WriteFile(path, []byte(v), 0o644) }
}

// zbusRegistry is where a stand-in daemon says that it serves its zbus
// module, for zbusdebug (the real one asks the redis broker).
const zbusRegistry = "/run/standin/zbus"

func register(module string) func() error {
	return func() error {
		if err := os.MkdirAll(zbusRegistry, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(zbusRegistry, module), nil, 0o644)
	}
}

// zbusdebug --module NAME: 0 when a daemon registered NAME.
func zbusdebug(args []string) int {
	if len(args) != 2 || args[0] != "--module" {
		say("zbusdebug", "usage: zbusdebug --module NAME")
		return 2
	}
	if _, err := os.Stat(filepath.Join(zbusRegistry, args[1])); err != nil {
		return 1
	}
	return 0
}

func mountTmpfs(dir string) func() error {
	return func() error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755")
	}
}

// mountpoint PATH: 0 when PATH is a mount point (busybox's test: another
// device than its parent's, or the root itself).
func mountpoint(args []string) int {
	if len(args) != 1 {
		say("mountpoint", "usage: mountpoint PATH")
		return 2
	}
	var st, parent unix.Stat_t
	if unix.Stat(args[0], &st) != nil || unix.Stat(filepath.Join(args[0], ".."), &parent) != nil {
		return 1
	}
	if st.Dev != parent.Dev || st.Ino == parent.Ino {
		return 0
	}
	return 1
}

// redisSocket listens on --unixsocket PATH (the zbus broker's address in
// 0-OS's service files) and answers nothing.
func redisSocket() error {
	path := ""
	for i, a := range os.Args {
		if a == "--unixsocket" && i+1 < len(os.Args) {
			path = os.Args[i+1]
		}
	}
	if path == "" {
		return errors.New("no --unixsocket")
	}
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}
