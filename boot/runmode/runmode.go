// Package runmode holds what 0-OS's `runmode=` kernel parameter selects
// for netinit: the grid network the node boots into (production, test,
// QA, development) and, per network, the default public Yggdrasil peers
// the hosts that prove internet reachability and the public NTP pool.
//
// The lists come from the grid's own configuration (defaults.json names
// the source and its date) and are compiled in: at boot there is no
// network yet to fetch them from. Keys given on the command line or in
// the config file always win over these defaults.
package runmode

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// Mode is a 0-OS run mode, as `runmode=` spells it (zosbase
// pkg/environment: RunningMain is "prod").
type Mode string

const (
	Prod Mode = "prod"
	Test Mode = "test"
	QA   Mode = "qa"
	Dev  Mode = "dev"
)

// Modes are the valid run modes.
var Modes = []Mode{Prod, Test, QA, Dev}

// Parse checks a runmode= value.
func Parse(v string) (Mode, error) {
	if m := Mode(v); slices.Contains(Modes, m) {
		return m, nil
	}
	return "", fmt.Errorf("want one of prod, test, qa, dev")
}

// Defaults are what a run mode selects.
type Defaults struct {
	YggPeers     []string `json:"ygg_peers"`
	ProbeTargets []string `json:"probe_targets"`
	// NTP is the public pool the clock loop asks when neither DHCP nor
	// netinit.ntp= named a server.
	NTP []string `json:"ntp"`
}

//go:embed defaults.json
var defaultsJSON []byte

// table is parsed on first use, not at package initialisation: every
// process of the binary (PID 1, the daemon, `netinit modprobe`) would pay
// for it, and most never ask.
var table = sync.OnceValue(func() map[Mode]Defaults {
	var f struct {
		Modes map[Mode]Defaults `json:"modes"`
	}
	if err := json.Unmarshal(defaultsJSON, &f); err != nil {
		panic("runmode: defaults.json: " + err.Error()) // caught by the package test
	}
	return f.Modes
})

// For returns the defaults of a mode (copies: callers may keep them).
func For(m Mode) Defaults {
	d := table()[m]
	return Defaults{YggPeers: slices.Clone(d.YggPeers), ProbeTargets: slices.Clone(d.ProbeTargets), NTP: slices.Clone(d.NTP)}
}
