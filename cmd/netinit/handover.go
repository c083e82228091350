package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/threefoldtech/netinit/boot/atomicfile"
	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// bootInfoPath is where PID 1 leaves what it did before the network (the
// parsed command line and config, the coldplug, its timings, its problems)
// for the daemon.
const bootInfoPath = "/run/netinit/boot.json"

// bootInfoVersion is the layout of boot.json. Fields are only added, so a
// file of this version or a later one is read for the fields it knows.
const bootInfoVersion = 1

// bootInfo is PID 1's hand-over to the daemon: the daemon runs the spec PID
// 1 parsed and reports PID 1's problems (the cmdline's among them) as its
// own, instead of parsing the command line a second time.
type bootInfo struct {
	Version  int              `json:"version"`
	Start    time.Time        `json:"start"`
	Spec     *spec.Spec       `json:"spec"`
	Modules  *state.Modules   `json:"modules"`
	Timings  map[string]int64 `json:"timings_ms"`
	Problems []string         `json:"problems"`
}

// bootInfoMode is boot.json's mode: only root reads it. The spec in it is
// whole, secrets included (a Yggdrasil peer's ?password=, as configured):
// the daemon runs that spec, and reading the secrets again from where
// they were configured would be the second parse of the command line this
// hand-over exists to avoid. Everything netinit shows others (state.json,
// the console, status) redacts them (spec.RedactURI).
const bootInfoMode = 0o600

// writeBootInfo writes PID 1's hand-over (atomically, so that a file an
// older netinit left with a wider mode is replaced, not rewritten in
// place).
func writeBootInfo(path string, bi bootInfo) error {
	bi.Version = bootInfoVersion
	b, err := json.Marshal(bi)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := atomicfile.Write(path, b, bootInfoMode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readBootInfo reads PID 1's hand-over. Unknown fields are ignored; what
// cannot be used is replaced: without PID 1's spec the daemon parses the
// command line and config itself with parse, and without the start time
// it counts from now. own is what the daemon found itself (why the spec
// was not used, the problems of its own parse), for the console; it is in
// bi.Problems too, after PID 1's.
func readBootInfo(path string, parse func() (*spec.Spec, []cmdline.Problem)) (bi bootInfo, own []string) {
	var why string
	var raw struct {
		bootInfo
		Spec json.RawMessage `json:"spec"` // decoded on its own: a bad spec keeps the rest
	}
	b, err := os.ReadFile(path)
	if err == nil {
		if err = json.Unmarshal(b, &raw); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
			raw.bootInfo = bootInfo{}
		}
	}
	switch {
	case err != nil:
		why = fmt.Sprintf("PID 1's hand-over: %v", err)
	case raw.Version < bootInfoVersion:
		why = fmt.Sprintf("PID 1's hand-over %s: version %d, want %d or later", path, raw.Version, bootInfoVersion)
	case len(raw.Spec) == 0 || string(raw.Spec) == "null":
		why = fmt.Sprintf("PID 1's hand-over %s: no spec in it", path)
	default:
		if err := json.Unmarshal(raw.Spec, &raw.bootInfo.Spec); err != nil {
			why = fmt.Sprintf("PID 1's hand-over %s: spec: %v", path, err)
			raw.bootInfo.Spec = nil
		}
	}
	bi = raw.bootInfo
	if bi.Start.IsZero() {
		bi.Start = time.Now()
	}
	if bi.Spec == nil {
		var probs []cmdline.Problem
		bi.Spec, probs = parse()
		own = append(own, why+"; the daemon parsed the command line itself")
		for _, p := range probs {
			own = append(own, p.Error())
		}
		bi.Problems = append(bi.Problems, own...)
	}
	return bi, own
}

// parseKernel reads the kernel command line and the config file, as PID 1
// does.
func parseKernel() (*spec.Spec, []cmdline.Problem) {
	line, err := cmdline.ReadKernel()
	s, probs := cmdline.LoadBoot(cmdline.DefaultConfigPath, line)
	if err != nil {
		probs = append([]cmdline.Problem{{Source: cmdline.ProcCmdline, Err: err}}, probs...)
	}
	return s, probs
}
