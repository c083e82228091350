package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/coldplug"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/engine"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/state"
)

// Result markers: netinit.test=poweroff prints the state between them on
// the console, and the QEMU tests parse it.
const (
	resultBegin = "NETINIT-RESULT-BEGIN"
	resultEnd   = "NETINIT-RESULT-END"
)

// runInit is PID 1: early duties, module coldplug, network bring-up,
// handoff. It never returns and never panics out.
func runInit() {
	start := time.Now()
	log := pid1.Setup(start)
	pid1.Reap()
	log.Logf("netinit %s starting as PID 1 (kernel up %s)", version, uptime())

	spec := cmdline.Defaults()
	var st *state.State
	err := pid1.Guard(func() error {
		st = bootNetwork(log, start, &spec)
		return nil
	})
	if err != nil {
		log.Logf("ERROR bring-up crashed: %v", err)
		st = &state.State{Schema: state.Schema, Phase: state.PhaseOffline,
			Problems: []string{"bring-up crashed: " + firstLine(err.Error())}}
		if werr := state.Write(state.DefaultPath, st); werr != nil {
			log.Logf("ERROR %v", werr)
		}
	}

	if spec.Test == "poweroff" {
		b, _ := json.Marshal(st)
		log.Raw(resultBegin + "\n" + string(b) + "\n" + resultEnd + "\n")
		log.Logf("test mode: powering off")
		if err := pid1.Poweroff(); err != nil {
			pid1.Emergency(log, err.Error())
		}
	}
	next, err := pid1.FindNext(spec.Next)
	if err != nil {
		pid1.Emergency(log, err.Error())
	}
	log.Logf("handing off to %s after %.2fs", next, time.Since(start).Seconds())
	if err := pid1.Handoff(next); err != nil {
		pid1.Emergency(log, err.Error())
	}
}

// bootNetwork reads the cmdline and config, loads the NIC drivers and
// runs the bring-up engine. *spec is set as soon as it is parsed so that
// the caller knows the test mode and next stage even if the rest panics.
func bootNetwork(log *console.Log, start time.Time, spec **cmdline.Spec) *state.State {
	line, err := cmdline.ReadKernel()
	if err != nil {
		log.Logf("reading the kernel command line: %v (using defaults)", err)
	}
	s, probs := cmdline.Load(cmdline.DefaultConfigPath, line)
	*spec = s
	var problems []string
	for _, p := range probs {
		log.Logf("%v", p)
		problems = append(problems, p.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout+10*time.Second)
	defer cancel()
	mods, err := coldplug.Run(ctx, coldplug.Options{Extra: []string{"tun"}, Logf: log.Logf})
	if err != nil {
		log.Logf("drivers: %v", err)
		problems = append(problems, fmt.Sprintf("drivers: %v", err))
	}
	timings := map[string]int64{"modules": time.Since(start).Milliseconds()}
	if mods != nil {
		log.Logf("drivers: %d loaded in %dms %v", len(mods.Loaded), mods.TookMS, mods.Loaded)
	}
	e := engine.New(engine.Config{
		Spec:        s,
		StatePath:   state.DefaultPath,
		ResolvConf:  "/etc/resolv.conf",
		SetHostname: true,
		Oneshot:     true,
		Problems:    problems,
		Start:       start,
		Timings:     timings,
		Modules:     mods,
		Logf:        log.Logf,
	})
	st, err := e.Run(ctx)
	if err != nil {
		log.Logf("bring-up: %v", err)
	}
	return st
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
