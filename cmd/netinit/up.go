package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/engine"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// cmdUp is `netinit up`: the PID-1 engine in the current namespace.
func cmdUp(args []string) int {
	start := time.Now()
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	oneshot := fs.Bool("oneshot", false, "exit once the state is written (0 ready, 3 degraded/offline)")
	statePath := fs.String("state", state.DefaultPath, "where the state file is written")
	resolv := fs.String("resolv-conf", "", "where DNS goes (default: resolv.conf beside the state file; never the host's /etc/resolv.conf unless named)")
	line := fs.String("cmdline", "", "kernel-cmdline string with ip=, vlan=, nameserver=, netinit.* keys")
	config := fs.String("config", "", "config file (same keys as the cmdline, one per line)")
	timeout := fs.Duration("timeout", 0, "bring-up deadline (overrides netinit.timeout=)")
	socket := fs.String("socket", "", "control socket when keeping the network (default: ctl.sock beside the state file)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: netinit up [flags] [IFACE...]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *timeout < 0 {
		fmt.Fprintf(os.Stderr, "netinit up: --timeout %s: must be positive\n", *timeout)
		return 2
	}
	spec, probs := cmdline.Load(*config, *line)
	if len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintf(os.Stderr, "netinit up: %v\n", p)
		}
		return 2
	}
	if *timeout > 0 {
		spec.Timeout = *timeout
	}
	log := console.New(start, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if len(fs.Args()) == 0 && !surveyLinks(ctx, spec, log) {
		return 3
	}
	n := newBringUp(byUp, bootInfo{Start: start, Spec: spec}, upFiles(*statePath, *resolv, *socket), log)
	n.links, n.oneshot = fs.Args(), *oneshot
	if !*oneshot {
		n.runKept(ctx)
		st, err := state.Read(*statePath)
		if err != nil || st.Phase != state.PhaseReady {
			return 3
		}
		return 0
	}
	st, err := n.run(ctx)
	if err != nil {
		log.Logf("%v", err)
		return 1
	}
	if st.Phase == state.PhaseReady {
		return 0
	}
	return 3
}

// upLinkGrace is how long `netinit up` without link names waits for a
// link it would manage. Outside PID 1 the NIC drivers were loaded long
// ago: a link that is not there by then is not coming, and waiting out
// the bring-up deadline would only hide that nothing is manageable. (At
// boot, /init keeps looking for links until the deadline and after it:
// drivers load late there.)
const upLinkGrace = 2 * time.Second

// surveyLinks says which links `netinit up` skips and why, waiting up to
// upLinkGrace for one it would manage; false when there is none.
func surveyLinks(ctx context.Context, s *spec.Spec, log *console.Log) bool {
	end := time.Now().Add(upLinkGrace)
	for {
		manage, skipped, err := engine.Survey(s)
		if err != nil {
			log.Logf("%v", err)
			return true // the engine tries again
		}
		if len(manage) > 0 || !time.Now().Before(end) || ctx.Err() != nil {
			for _, s := range skipped {
				log.Logf("%s: skipped (%s; name it to manage it)", s.Link, s.Why)
			}
			switch {
			case len(manage) > 0:
				return true
			case len(skipped) == 0:
				log.Logf("no link to manage: there is only loopback")
			default:
				log.Logf("no link to manage: every link is skipped (name one: netinit up IFACE...)")
			}
			return false
		}
		pause.For(ctx, 100*time.Millisecond)
	}
}
