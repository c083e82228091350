package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/coldplug"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/engine"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// Result markers: netinit.test=poweroff prints the state between them on
// the console, and the QEMU tests parse it.
const (
	resultBegin = "NETINIT-RESULT-BEGIN"
	resultEnd   = "NETINIT-RESULT-END"
)

// runInit is PID 1: early duties, module coldplug, the network daemon,
// then the handoff. It never returns and never panics out.
func runInit() {
	start := time.Now()
	log := pid1.Setup(start)
	pid1.Reap()
	log.Logf("netinit %s starting as PID 1 (kernel up %s)", version, uptime())

	s := spec.Defaults()
	var st *state.State
	var daemon *pid1.Supervisor
	err := pid1.Guard(func() error {
		st, daemon = boot(log, start, &s)
		return nil
	})
	if err != nil {
		log.Logf("ERROR bring-up crashed: %v", err)
		st = &state.State{Schema: state.Schema, Phase: state.PhaseOffline,
			Problems: []string{"bring-up crashed: " + firstLine(err.Error())}}
		if old, rerr := state.Read(state.DefaultPath); rerr == nil {
			st = old // the daemon's view is better than nothing
		}
	}
	if s.Test != spec.TestNone { // poweroff, panic, daemon-crash: print and power off
		b, _ := json.Marshal(st)
		log.Raw(resultBegin + "\n" + string(b) + "\n" + resultEnd + "\n")
		log.Logf("test mode: powering off")
		if err := pid1.Poweroff(); err != nil {
			pid1.Emergency(log, err.Error())
		}
	}
	next, args, err := pid1.FindNext(s.Next, s.NextArgs)
	if err != nil {
		pid1.Emergency(log, err.Error())
	}
	cmd := strings.Join(append([]string{next}, args...), " ")
	if daemon != nil {
		worker := daemon.PID()
		if sup, err := handOverDaemon(log, daemon); err != nil {
			log.Logf("ERROR network daemon supervisor: %v; the network daemon (pid %d) will not be restarted after the handoff",
				err, worker)
			log.Logf("handing off to %s after %.2fs; network daemon pid %d keeps the network",
				cmd, time.Since(start).Seconds(), worker)
		} else {
			log.Logf("handing off to %s after %.2fs; network daemon pid %d keeps the network, supervisor pid %d restarts it",
				cmd, time.Since(start).Seconds(), worker, sup)
		}
	} else {
		log.Logf("handing off to %s after %.2fs", cmd, time.Since(start).Seconds())
	}
	// The next stage's own modprobe, if its root has one, serves the
	// kernel from now on (the daemon looks again later).
	handBackModprobe(log)
	if err := pid1.Handoff(next, args...); err != nil {
		pid1.Emergency(log, err.Error())
	}
}

// boot reads the cmdline and config, loads the NIC drivers, starts the
// network daemon and waits for its verdict. *parsed is set as soon as it is
// parsed so that the caller knows the test mode and the next stage even if
// the rest panics.
func boot(log *console.Log, start time.Time, parsed **spec.Spec) (*state.State, *pid1.Supervisor) {
	line, err := cmdline.ReadKernel()
	if err != nil {
		log.Logf("reading the kernel command line: %v (using defaults)", err)
	}
	s, probs := cmdline.LoadBoot(cmdline.DefaultConfigPath, line)
	*parsed = s
	var problems []string
	for _, p := range probs {
		log.Logf("%v", p)
		problems = append(problems, p.Error())
	}

	if err := switchRoot(log, s); err != nil {
		log.Logf("ERROR %v; going on in the initramfs", err)
		problems = append(problems, err.Error())
	}

	// The daemon's deadline may be extended for a spanning-tree port
	// (engine.MaxExtension): its verdict is awaited that much longer.
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout+engine.MaxExtension+20*time.Second)
	defer cancel()
	// Besides the NIC drivers found by modalias: what the kernel would
	// otherwise ask modprobe for, and there is no modprobe here — tun for
	// the overlays, nf_tables and nft_ct for the overlay firewall, 8021q
	// for vlan=, bonding for bond=, bridge for the management bridge.
	// (A bond netinit.bond=auto forms has the kernel ask the helper for
	// rtnl-link-bond: bonding is loaded only when a bond is made.)
	extra := []string{"tun", "nf_tables", "nft_ct"}
	if len(s.VLANs) > 0 {
		extra = append(extra, "8021q")
	}
	if len(s.Bonds) > 0 {
		extra = append(extra, "bonding")
	}
	if err := installModprobe(); err != nil {
		log.Logf("%v", err)
	}
	if s.BridgeName() != "" {
		extra = append(extra, "bridge")
	}
	mods, err := coldplug.Run(ctx, coldplug.Options{Extra: extra, Logf: log.Logf})
	if err != nil {
		log.Logf("drivers: %v", err)
		problems = append(problems, fmt.Sprintf("drivers: %v", err))
	}
	for _, p := range featureProblems(mods) {
		log.Logf("%s", p)
		problems = append(problems, p)
	}
	timings := map[string]int64{"modules": time.Since(start).Milliseconds()}
	if mods != nil {
		log.Logf("drivers: %d loaded in %dms %v", len(mods.Loaded), mods.TookMS, mods.Loaded)
	}

	if s.Test == spec.TestPanic {
		panic("netinit.test=panic: a deliberate crash of the bring-up")
	}
	info := bootInfo{Start: start, Spec: s, Modules: mods, Timings: timings, Problems: problems}
	exe, err := os.Executable()
	if err == nil {
		err = writeBootInfo(bootInfoPath, info)
	}
	var daemon *pid1.Supervisor
	if err == nil {
		// PID 1 is the worker's supervisor until the handoff
		// (handOverDaemon): one exec before the network code runs.
		daemon, err = pid1.Supervise(log, exe, "daemon", "--worker", "--boot-info", bootInfoPath)
	}
	if err != nil {
		// No daemon: bring the network up in this process, once. The
		// leases stay in the kernel until they expire.
		log.Logf("ERROR network daemon: %v; bringing the network up without it", err)
		n := newBringUp(atBoot, info, bootFiles, log)
		n.oneshot = true
		st, _ := n.run(ctx)
		return st, nil
	}
	return waitVerdict(ctx, log, start, daemon), daemon
}

// handOverDaemon stops PID 1's supervision of the network daemon's
// worker and starts `netinit daemon --adopt`, which watches that worker
// through a pidfd and restarts it after the handoff. It returns the new
// supervisor's pid.
func handOverDaemon(log *console.Log, d *pid1.Supervisor) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	pid, err := d.HandOver(exe, "daemon", "--adopt", "--boot-info", bootInfoPath)
	if errors.Is(err, unix.ESRCH) {
		// The worker died just before the handoff and its restart was
		// cancelled: a supervisor that starts one at once.
		log.Logf("network daemon (pid %d) is gone; its supervisor starts it again", d.PID())
		return pid1.Spawn(exe, []string{"daemon", "--boot-info", bootInfoPath})
	}
	return pid, err
}

// switchRoot moves the boot into a tmpfs root when asked (netinit.root=)
// or when the next stage is 0-OS's zinit, which expects one; it happens
// before anything is started, so that the network daemon, its state and
// its socket live in the root the next stage sees. When it succeeds, this
// process is replaced by the same init in the new root, which finds it is
// no longer on the initramfs and goes on. It returns only when no switch
// happened: nil when none was wanted.
func switchRoot(log *console.Log, s *spec.Spec) error {
	if s.Root == spec.RootOff {
		return nil
	}
	next, _, err := pid1.FindNext(s.Next, s.NextArgs)
	if s.Root == spec.RootAuto && (err != nil || filepath.Base(next) != "zinit") {
		return nil
	}
	on, err := pid1.OnInitramfs()
	if err != nil {
		return fmt.Errorf("root switch: %w", err)
	}
	if !on {
		return nil // switched already (this is the init started in the tmpfs root)
	}
	size := s.RootSize
	if size == "" {
		size = pid1.DefaultRootSize
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("root switch: %w", err)
	}
	return pid1.SwitchToTmpfs(log, size, self)
}

// waitVerdict waits until the daemon has written a verdict to the state
// file (or ctx ends: the boot goes on regardless). The file is parsed
// only when it changed (the daemon replaces it whole, atomicfile): on a
// one-CPU machine every parse is taken from the daemon's bring-up.
func waitVerdict(ctx context.Context, log *console.Log, start time.Time, d *pid1.Supervisor) *state.State {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var seen os.FileInfo
	for {
		fi, err := os.Stat(state.DefaultPath)
		if err == nil && (seen == nil || !os.SameFile(fi, seen) || !fi.ModTime().Equal(seen.ModTime()) || fi.Size() != seen.Size()) {
			seen = fi
			st, err := state.Read(state.DefaultPath)
			if err == nil && !st.UpdatedAt.Before(start.Add(-time.Second)) &&
				(st.Phase == state.PhaseReady || st.Phase == state.PhaseDegraded || st.Phase == state.PhaseOffline) {
				return st
			}
		}
		select {
		case <-ctx.Done():
			log.Logf("ERROR no verdict from the network daemon after %.0fs (started %d times); handing off anyway",
				time.Since(start).Seconds(), d.Starts())
			st := &state.State{Schema: state.Schema, Phase: state.PhaseOffline,
				Problems: []string{"no verdict from the network daemon before the deadline"}}
			return st
		case <-t.C:
		}
	}
}

func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0] + "s"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
