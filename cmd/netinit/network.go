package main

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/clock"
	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/engine"
	"github.com/threefoldtech/netinit/boot/overlay"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/state"
)

// network is what `netinit up` and `netinit daemon` run: the bring-up
// engine and, when it keeps the network, the overlays and the control
// socket. The statuses flow one way: the engine's to the overlays and to
// the publisher, the overlays' to the publisher, which alone writes the
// files.
type network struct {
	spec        *cmdline.Spec
	links       []string
	statePath   string
	resolvConf  string
	socket      string // "" = no control socket
	setHostname bool   // the boot daemon (or PID 1): it owns the hostname and the clock
	oneshot     bool
	start       time.Time
	problems    []string
	timings     map[string]int64
	modules     *state.Modules
	keyDir      string       // overlay keys ("" = overlay.DefaultKeyDir or netinit.keydir=)
	previous    *state.State // what PID 1 wrote: its elected uplink is kept
	bridge      string       // the management bridge when netinit.bridge= is not given ("" = none)
	log         *console.Log
}

// run brings the network up and, unless oneshot, keeps it until ctx ends.
func (n *network) run(ctx context.Context) (*state.State, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pub := &state.Publisher{StatePath: n.statePath, ResolvConf: n.resolvConf, Logf: n.log.Logf}
	var ov *overlay.Manager
	if !n.oneshot {
		// The overlays live in the process that keeps the network.
		oc := overlay.Config{Spec: n.spec, KeyDir: n.keyDir, Logf: n.log.Logf,
			Publish: pub.Overlay, Start: n.start}
		if !n.setHostname { // not the boot daemon
			// `netinit up` runs in some namespace of a host whose clock
			// is the host's own (namespaces share it): it measures and
			// records the offset, like the boot daemon, but never sets it.
			oc.Clock = &clock.Syncer{Set: func(time.Time) error { return errHostClock }}
		}
		ov = overlay.New(ctx, oc)
		defer ov.Close()
	}
	cfg := engine.Config{
		Spec:        n.spec,
		Links:       n.links,
		SetHostname: n.setHostname,
		Oneshot:     n.oneshot,
		Problems:    n.problems,
		Start:       n.start,
		Timings:     n.timings,
		Modules:     n.modules,
		Logf:        n.log.Logf,
		Previous:    n.previous,
		Bridge:      n.bridge,
		Publish:     func(st *state.NetworkStatus) { pub.Network(st) },
	}
	e := engine.New(cfg)
	if ov != nil {
		ov.Follow(e.Subscribe().Updates())
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if ov != nil && n.socket != "" {
		srv, err := control.Listen(n.socket, daemonHandler{e, ov})
		if err != nil {
			n.log.Logf("%v (netinit status will read the state file)", err)
		} else {
			srv.Logf = n.log.Logf
			wg.Add(1)
			go func() { defer wg.Done(); srv.Serve(ctx) }()
		}
	}
	st, err := e.Run(ctx)
	if st == nil {
		return nil, err
	}
	var ovs *state.OverlayStatus
	if ov != nil {
		ovs = ov.Status()
	}
	return state.Assemble(st, ovs), err
}

// errHostClock is why `netinit up` leaves the clock alone.
var errHostClock = errors.New("not set: netinit up leaves the host's clock to the host (only the boot daemon sets it)")

// bootBridge is the management bridge at boot (PID 1 and its daemon) when
// netinit.bridge= is not given: 0-OS's zos when the command line is a
// 0-OS one (runmode= given), none otherwise. `netinit up` builds one only
// when netinit.bridge= asks.
func bootBridge(s *cmdline.Spec) string {
	if s.RunMode != "" {
		return engine.DefaultBridge
	}
	return ""
}

// wantsBridge reports whether the boot may build a management bridge (the
// bridge driver is loaded for it).
func wantsBridge(s *cmdline.Spec) bool {
	return s.Bridge != "off" && (s.Bridge != "" || bootBridge(s) != "")
}

// daemonHandler is what the daemon serves on its control socket: the
// document assembled from both statuses now, the engine's "renew", the
// overlays' "probe" and "identity".
type daemonHandler struct {
	e  *engine.Engine
	ov *overlay.Manager
}

func (h daemonHandler) Status() *state.State          { return state.Assemble(h.e.Status(), h.ov.Status()) }
func (h daemonHandler) Renew()                        { h.e.Renew() }
func (h daemonHandler) Probe()                        { h.ov.Probe() }
func (h daemonHandler) SetIdentity(path string) error { return h.ov.SetIdentity(path) }

// daemonMemoryLimit is the Go runtime's soft memory limit in the daemon.
const daemonMemoryLimit = 96 << 20

// runKept runs the network until ctx ends and never dies of a panic: a
// crash is reported on the console and the engine is started again with
// backoff (after the handoff nobody else would restart it).
func (n *network) runKept(ctx context.Context) {
	// A long-lived daemon on nodes whose memory belongs to workloads: a
	// soft limit makes the GC return what a burst of overlay traffic
	// (wireguard-go's 1024-deep queues of 64 KiB buffers) took.
	debug.SetMemoryLimit(daemonMemoryLimit)
	backoff := time.Second
	for ctx.Err() == nil {
		err := pid1.Guard(func() error {
			_, err := n.run(ctx)
			return err
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			return
		}
		n.log.Logf("ERROR network daemon crashed: %s; restarting in %s", firstLine(err.Error()), backoff)
		n.problems = append(n.problems, "network daemon restarted after: "+firstLine(err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
