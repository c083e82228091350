package main

import (
	"context"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/clients"
	"github.com/threefoldtech/netinit/boot/clock"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/engine"
	kernlog "github.com/threefoldtech/netinit/boot/kmsg"
	"github.com/threefoldtech/netinit/boot/overlay"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/netprobe"
)

// bringUp is one run of the network: the engine and, in the process that
// keeps the network, the overlays and the control socket. PID 1 (when its
// daemon cannot start), the daemon and `netinit up` each build it with
// newBringUp. The statuses flow one way: the engine's to the overlays and
// to the publisher, the overlays' to the publisher, which alone writes the
// files.
type bringUp struct {
	spec        *spec.Spec
	links       []string // the links to manage (none: every physical one)
	files       files
	setHostname bool // at boot: the node's hostname and clock are netinit's
	kernelLog   bool // at boot: the kernel log's firmware failures are the node's problems
	oneshot     bool // return at the verdict instead of keeping the network
	start       time.Time
	problems    []string
	timings     map[string]int64
	modules     *state.Modules
	keyDir      string           // overlay keys ("" = overlay.DefaultKeyDir or netinit.keydir=)
	previous    *engine.Previous // what PID 1 left in its state: its elected uplink is kept
	bridge      string           // the management bridge when netinit.bridge= is not given ("" = none)
	log         *console.Log
}

// files are where a bring-up writes.
type files struct {
	state      string
	resolvConf string
	socket     string // the control socket, when the network is kept ("" = none)
	// nsResolvConf are namespace resolv.conf files created once from the
	// node's (state.Publisher.NamespaceResolvConf).
	nsResolvConf []string
}

// zosResolvConf is 0-OS's ndmz namespace's resolv.conf. networkd runs a
// DHCP client there (zosbase pkg/network/ndmz DHCPMon: the zinit service
// `ip netns exec ndmz dhcpcd npub4 -B`), whose resolv.conf hook writes
// /etc/resolv.conf in place (dhcpcd-run-hooks change_file: cat > FILE).
// `ip netns exec` mounts /etc/netns/ndmz/resolv.conf over /etc/resolv.conf
// when that file exists, and then the hook writes the namespace's own
// file; without it, the node's. Created at a 0-OS boot, it leaves netinit
// the one writer of the node's resolv.conf (the management uplink's name
// servers), and ndmz its lease's.
const zosResolvConf = "/etc/netns/ndmz/resolv.conf"

// bootFiles are the node's own, at boot.
var bootFiles = files{state: state.DefaultPath, resolvConf: "/etc/resolv.conf", socket: control.DefaultPath}

// upFiles are `netinit up`'s: beside its state file unless named, never
// the host's /etc/resolv.conf or the boot daemon's socket.
func upFiles(statePath, resolvConf, socket string) files {
	dir := filepath.Dir(statePath)
	if resolvConf == "" {
		resolvConf = filepath.Join(dir, "resolv.conf")
	}
	if socket == "" {
		socket = filepath.Join(dir, "ctl.sock")
	}
	return files{state: statePath, resolvConf: resolvConf, socket: socket}
}

// bringUpMode says who runs a bring-up.
type bringUpMode int

const (
	// atBoot: PID 1 or its daemon. The node's hostname and clock are
	// set, and the daemon keeps the uplink PID 1 elected (a 0-OS boot's
	// management bridge is in its spec: cmdline.LoadBoot).
	atBoot bringUpMode = iota
	// byUp: `netinit up`, in some namespace of a host that owns its
	// hostname and clock. Its overlay keys live beside its state file
	// unless netinit.keydir= names them.
	byUp
)

// newBringUp builds a bring-up of bi.Spec: bi is what happened before the
// network (PID 1's hand-over at boot; only the start and the spec for
// `netinit up`).
func newBringUp(mode bringUpMode, bi bootInfo, f files, log *console.Log) *bringUp {
	b := &bringUp{spec: bi.Spec, files: f, start: bi.Start, problems: slices.Clone(bi.Problems),
		timings: bi.Timings, modules: bi.Modules, keyDir: bi.Spec.KeyDir, log: log}
	switch mode {
	case atBoot:
		b.setHostname, b.kernelLog = true, true
		if bi.Spec.RunMode != "" { // a 0-OS boot
			b.files.nsResolvConf = []string{zosResolvConf}
		}
		// The uplink an earlier process elected stays the uplink
		// (engine.Config.Previous).
		if st, err := state.Read(f.state); err == nil {
			b.previous = previousOf(st)
		}
	case byUp:
		if b.keyDir == "" {
			// Not the boot-time key dir of the node this may run on.
			b.keyDir = filepath.Join(filepath.Dir(f.state), "keys")
		}
	}
	return b
}

// run brings the network up and, unless oneshot, keeps it until ctx ends.
func (n *bringUp) run(ctx context.Context) (*state.State, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pub := &state.Publisher{StatePath: n.files.state, ResolvConf: n.files.resolvConf,
		NamespaceResolvConf: n.files.nsResolvConf, Logf: n.log.Logf}
	var ov *overlay.Manager
	if !n.oneshot {
		// The overlays live in the process that keeps the network.
		oc := overlay.Config{Spec: n.spec.Overlay, Probe: n.spec.Probe, Internet: internet, NTP: n.spec.NTP, NTPPool: n.spec.NTPPool,
			KeyDir: n.keyDir, Logf: n.log.Logf, Publish: pub.Overlay, Start: n.start,
			Bridge: n.spec.BridgeName(), Light: n.spec.Light(),
			// Beside the state: /run/netinit/keys at boot, on the tmpfs
			// no later mount hides.
			PinDir: filepath.Join(filepath.Dir(n.files.state), "keys")}
		if n.setHostname { // the boot daemon
			// It keeps the clock until 0-OS's ntpd runs (issue 26), never
			// before the image's build time or the time it saved last, on
			// the cache disk once 0-OS has mounted it.
			oc.FloorFile = clock.DefaultFloorFile
			if n.keyDir != "" {
				oc.FloorFile = filepath.Join(filepath.Dir(n.keyDir), "clock")
			}
			oc.Clock = &clock.Syncer{Owner: clock.NTPD, Floor: clock.Floor(oc.FloorFile)}
		} else {
			// `netinit up` runs in some namespace of a host whose clock
			// is the host's own (namespaces share it): it measures and
			// records the offset, like the boot daemon, but never sets it.
			oc.Clock = &clock.Syncer{Measure: true, Floor: clock.Floor("")}
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
		Internet:    internet,
		Clients:     clients.Linux{},
		Publish:     func(st *state.NetworkStatus) { pub.Network(st) },
	}
	if ov != nil {
		cfg.BeforeMove = ov.Dialled
	}
	e := engine.New(cfg)
	if ov != nil {
		ov.Follow(e.Subscribe().Updates())
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if n.kernelLog {
		// A driver that asked for a firmware file the image lacks (at
		// its probe, during the coldplug, or when its link goes up) is
		// a problem naming the module and the file. Ended before the
		// wait above: a oneshot run returns at the verdict.
		kctx, stop := context.WithCancel(ctx)
		defer stop()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := kernlog.WatchFirmware(kctx, func(module string, f kernlog.FirmwareFailure) { e.Problem(f.Problem(module)) })
			if err != nil {
				n.log.Logf("%v (firmware load failures are not reported)", err)
			}
		}()
	}
	if ov != nil && n.files.socket != "" {
		srv, err := control.Listen(n.files.socket, daemonHandler{e, ov})
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

// internet is what counts as public for this build: the Internet's own
// rules, or in the lab build the documentation ranges too (labBuild).
var internet = netprobe.Internet{Documentation: labBuild}

// previousOf is the engine's memory of the run that wrote st (PID 1's, or
// the daemon's before a restart).
func previousOf(st *state.State) *engine.Previous {
	p := &engine.Previous{Uplink: st.Uplink, UplinkReason: st.UplinkReason, UplinkNIC: st.UplinkNIC}
	for _, c := range st.Candidates {
		p.Candidates = append(p.Candidates, engine.PreviousCandidate{Name: c.Name, Probed: c.Probed, Reachable: c.Reachable,
			Evidence: slices.Clone(c.Evidence)})
	}
	for _, i := range st.Interfaces {
		p.Links = append(p.Links, i.Name)
	}
	return p
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
// crash is reported on the console and the engine is started again after
// pid1.RestartDelay, the Supervisor's backoff (`netinit up`, and a daemon
// whose supervisor could not start, have nobody else to restart them).
func (n *bringUp) runKept(ctx context.Context) {
	// A long-lived daemon on nodes whose memory belongs to workloads: a
	// soft limit makes the GC return what a burst of overlay traffic
	// (wireguard-go's 1024-deep queues of 64 KiB buffers) took.
	debug.SetMemoryLimit(daemonMemoryLimit)
	for restarts := 1; ctx.Err() == nil; restarts++ {
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
		wait := pid1.RestartDelay(restarts)
		n.log.Logf("ERROR network daemon crashed: %s; restarting in %s", firstLine(err.Error()), wait)
		n.problems = append(n.problems, "network daemon restarted after: "+firstLine(err.Error()))
		pause.For(ctx, wait)
	}
}
