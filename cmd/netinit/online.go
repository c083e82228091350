package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/state"
)

// Retries of wait-online: from onlineFirst, doubling, at most onlineEvery
// apart; each try's TCP connections are bounded by onlineDial.
const (
	onlineFirst = 250 * time.Millisecond
	onlineEvery = 30 * time.Second
	onlineDial  = 5 * time.Second
)

const onlineUsage = `usage: netinit wait-online [--timeout DUR] [--target HOST:PORT]... [--state PATH]
                           [--socket PATH] [--cmdline STRING]

Waits until the node is online as 0-OS's own "internet" service means it
(github.com/threefoldtech/zos cmds/internet): the network daemon has an
uplink (phase ready or degraded, from its control socket, else the state
file), and a TCP connection to every probe target succeeds through that
uplink (names resolved with the node's DNS, through the uplink too). It
never configures anything. Baked into a 0-OS image it is the zinit service
"internet" (docs/release.md). The targets: --target, else
netinit.probe.targets=, else those of runmode= (prod when absent). It says
on stdout what it waits for, retrying from 250ms up to every 30s.
Exit: 0 online, 1 --timeout passed (default: never give up), 2 usage.
`

// cmdWaitOnline is `netinit wait-online`, the stand-in netinit bakes into
// a 0-OS image for zos' `internet` oneshot (bootstrap/etc/zinit/
// internet.yaml), which zinit runs before `bootstrap` and `boot`.
//
// 0-OS's own `internet` gives up after its backoff's 15 minutes (cenkalti
// backoff v2 defaults: MaxElapsedTime 15 min) and exits 1; zinit never
// runs a failed oneshot again, so the node then waits for a power cycle
// even when its network comes up a minute later (a router that boots
// slower than the node after a power cut). wait-online keeps trying, and
// the node boots on as soon as its network works: without a network the
// outcome is the same (bootstrap never starts), with a late one it is a
// node that boots. --timeout gives the old behaviour where wanted.
func cmdWaitOnline(args []string) int {
	start := time.Now()
	fs := flag.NewFlagSet("wait-online", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), onlineUsage) }
	timeout := fs.Duration("timeout", 0, "give up (exit 1) after this long; 0: never")
	path := fs.String("state", state.DefaultPath, "state file, read when no daemon answers")
	socket := fs.String("socket", "", "control socket (default: ctl.sock beside the state file)")
	line := fs.String("cmdline", "", "kernel command line to take the targets from (default /proc/cmdline)")
	var targets listFlag
	fs.Var(&targets, "target", "TCP target HOST:PORT (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *timeout < 0 {
		fs.Usage()
		return 2
	}
	if *socket == "" {
		*socket = filepath.Join(filepath.Dir(*path), "ctl.sock")
	}
	if len(targets) == 0 {
		targets = onlineTargets(*line)
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	return waitOnline(ctx, console.New(start, os.Stdout), *socket, *path, targets, *timeout)
}

// waitOnline tries until online (0), or until ctx ends or timeout (when
// not 0) passes (1), saying on log what it waits for.
func waitOnline(ctx context.Context, log *console.Log, socket, path string, targets []string, timeout time.Duration) int {
	start := time.Now()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	log.Logf("internet: waiting for the uplink and a TCP connection to %s (in place of 0-OS's internet service)",
		strings.Join(targets, ", "))
	for n := 1; ; n++ {
		ok, said := onlineOnce(ctx, socket, path, targets)
		if ok {
			log.Logf("internet: online after %.1fs (%s)", time.Since(start).Seconds(), said)
			return 0
		}
		wait := pause.Backoff(n, onlineFirst, onlineEvery)
		log.Logf("internet: waiting (%s); next try in %s", said, wait)
		if pause.For(ctx, wait) != nil {
			why := "stopped"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("gave up after %s", timeout)
			}
			log.Logf("internet: %s, not online (%s)", why, said)
			return 1
		}
	}
}

// onlineTargets are the targets of the command line (or /proc/cmdline when
// line is "") and the config file: the election's (spec.UplinkTargets:
// netinit.probe.targets=, else the run mode's, else prod's — the hosts zos
// cmds/internet checks, bootstrap.grid.tf:80 and hub.grid.tf:80; the spec
// applies those defaults once, as it is built).
func onlineTargets(line string) []string {
	if line == "" {
		b, _ := os.ReadFile("/proc/cmdline")
		line = string(b)
	}
	s, _ := cmdline.Load(cmdline.DefaultConfigPath, line) // problems are PID 1's to report
	return s.UplinkTargets
}

// onlineOnce is one try: the uplink from the daemon (or the state file),
// then a TCP connection to every target through it, as zos cmds/internet
// check() requires (every target, in order; cmds/internet/main.go:98-108).
// It returns whether all connected and, in words, what it found.
func onlineOnce(ctx context.Context, socket, path string, targets []string) (bool, string) {
	st, source := liveState(socket, path)
	if st == nil {
		return false, "no network state: " + source
	}
	up := st.Uplink
	if st.UplinkNIC != "" {
		up += " (" + st.UplinkNIC + ")"
	}
	switch {
	case st.Phase != state.PhaseReady && st.Phase != state.PhaseDegraded:
		return false, fmt.Sprintf("no uplink yet: phase %s", st.Phase)
	case st.Uplink == "":
		return false, fmt.Sprintf("no uplink: phase %s", st.Phase)
	}
	said := []string{fmt.Sprintf("uplink %s %s", up, st.Phase)}
	ok := true
	for _, t := range targets {
		if err := dialVia(ctx, st.Uplink, t); err != nil {
			said = append(said, fmt.Sprintf("%s %v", t, err))
			ok = false
			break // as cmds/internet: the first failure ends the try
		}
		said = append(said, t+" connected")
	}
	return ok, strings.Join(said, ", ")
}

// dialVia connects to target (HOST:PORT) by TCP through link only
// (SO_BINDTODEVICE), host names resolved with the node's resolv.conf, the
// DNS queries through link too, and closes the connection: reaching the
// port is the proof, as for cmds/internet. The error is short, for the
// console ("refused", "timeout", ...).
func dialVia(ctx context.Context, link, target string) error {
	ctx, cancel := context.WithTimeout(ctx, onlineDial)
	defer cancel()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), link) }); err != nil {
			return err
		}
		return serr
	}}
	d.Resolver = &net.Resolver{PreferGo: true, Dial: d.DialContext}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return shortNetErr(err)
	}
	return c.Close()
}

// shortNetErr says a dial error in a word or two where one fits.
func shortNetErr(err error) error {
	var dns *net.DNSError
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		return errors.New("refused")
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH):
		return errors.New("unreachable")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("timeout")
	case errors.As(err, &dns):
		return fmt.Errorf("not resolved (%s)", dns.Err)
	}
	return err
}
