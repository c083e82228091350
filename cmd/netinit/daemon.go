package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/state"
)

// bootInfoPath is where PID 1 leaves what it did before the network (the
// coldplug, its timings, the cmdline problems) for the daemon.
const bootInfoPath = "/run/netinit/boot.json"

// bootInfo is PID 1's hand-over to the daemon.
type bootInfo struct {
	Start    time.Time        `json:"start"`
	Modules  *state.Modules   `json:"modules"`
	Timings  map[string]int64 `json:"timings_ms"`
	Problems []string         `json:"problems"`
}

// cmdDaemon is `netinit daemon`: the network daemon PID 1 starts at boot.
// It keeps the network (leases, RAs, later the overlays) after PID 1 has
// handed off to the next stage, serves the control socket, and never
// dies of its own errors.
func cmdDaemon(args []string) int {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	info := fs.String("boot-info", bootInfoPath, "PID 1's hand-over file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bi := bootInfo{Start: time.Now()}
	if b, err := os.ReadFile(*info); err == nil {
		if err := json.Unmarshal(b, &bi); err != nil {
			bi.Problems = append(bi.Problems, fmt.Sprintf("%s: %v", *info, err))
		}
	}
	log := console.New(bi.Start, os.Stdout)
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		log.AttachKmsg(k)
	}
	log.Logf("network daemon running (pid %d)", os.Getpid())
	// PID 1 already printed the cmdline problems; they go to the state.
	line, _ := cmdline.ReadKernel()
	spec, _ := cmdline.Load(cmdline.DefaultConfigPath, line)
	if spec.Test == "daemon-crash" {
		// Fault test: the first start dies, PID 1 must restart it.
		marker := filepath.Join(filepath.Dir(*info), "daemon-crashed")
		if _, err := os.Stat(marker); err != nil {
			_ = os.WriteFile(marker, nil, 0o644)
			log.Logf("netinit.test=daemon-crash: dying on purpose")
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	n := &network{
		spec:        spec,
		statePath:   state.DefaultPath,
		resolvConf:  "/etc/resolv.conf",
		socket:      control.DefaultPath,
		setHostname: true,
		start:       bi.Start,
		problems:    bi.Problems,
		timings:     bi.Timings,
		modules:     bi.Modules,
		log:         log,
	}
	// PID 1's elected uplink stays the uplink (engine.Config.Previous).
	if st, err := state.Read(state.DefaultPath); err == nil {
		n.previous = st
	}
	n.runKept(ctx)
	log.Logf("network daemon stopping (leases and addresses stay in place)")
	return 0
}
