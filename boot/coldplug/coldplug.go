// Package coldplug loads the kernel modules for the devices present at
// boot, the job udev's "trigger --action=add" + modprobe do on a normal
// system, in plain Go and without udev.
//
// It walks /sys/bus/*/devices/*/modalias, matches each modalias against
// modules.alias, and loads the matching modules and their dependencies
// (modules.dep) with finit_module(2). Devices that already have a driver
// bound are never touched: reloading the driver of a PXE-booted NIC
// bounces its link, which restarts the switch port's spanning-tree timer
// and costs 30-50 s. Loading a bus driver makes new devices appear (e.g.
// virtio_pci creates the virtio bus devices that virtio_net serves), so the
// scan is repeated until a round finds nothing new to load.
package coldplug

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
)

// Loader loads one kernel module file. The default (on Linux) uses
// finit_module(2). Load must treat "already loaded" (EEXIST) as success or
// return an error wrapping syscall.EEXIST, which Run treats as success.
type Loader interface {
	Load(name, path string) error
}

// Options configure Run. The zero value is the real boot.
type Options struct {
	// ModulesDir holds modules.dep, modules.alias, modules.builtin and the
	// module files. Default: /lib/modules/<uname -r>.
	ModulesDir string
	// SysDir is where sysfs is mounted. Default: /sys.
	SysDir string
	// Extra modules (names or aliases) are always loaded, e.g. "tun" for
	// the overlays' /dev/net/tun.
	Extra []string
	// Logf reports progress; nil discards.
	Logf func(format string, args ...any)
	// Loader loads a module; nil means finit_module(2).
	Loader Loader
	// MaxRounds bounds the rescans after loads; default 4 (PCI -> virtio
	// -> net needs 2, a USB NIC behind a modular host controller 3).
	MaxRounds int
	// Parallel is how many modules load at once; default 4.
	Parallel int
}

// Device is one device found in sysfs.
type Device struct {
	Bus      string // "pci", "virtio", ...
	Name     string // "0000:00:03.0", "virtio0", ...
	Modalias string
	Driver   string // bound driver, "" when none
}

// ID is "bus/name".
func (d Device) ID() string { return d.Bus + "/" + d.Name }

// ScanDevices lists the devices under sysDir/bus/*/devices that have a
// modalias, sorted by ID.
func ScanDevices(sysDir string) ([]Device, error) {
	buses, err := os.ReadDir(filepath.Join(sysDir, "bus"))
	if err != nil {
		return nil, fmt.Errorf("scanning devices: %w", err)
	}
	var devs []Device
	for _, b := range buses {
		dir := filepath.Join(sysDir, "bus", b.Name(), "devices")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // a bus without devices/ (or gone meanwhile)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			ma, err := os.ReadFile(filepath.Join(p, "modalias"))
			if err != nil {
				continue // devices without modalias cannot be matched
			}
			d := Device{Bus: b.Name(), Name: e.Name(), Modalias: strings.TrimSpace(string(ma))}
			if d.Modalias == "" {
				continue
			}
			if drv, err := os.Readlink(filepath.Join(p, "driver")); err == nil {
				d.Driver = filepath.Base(drv)
			} else if _, err := os.Stat(filepath.Join(p, "driver")); err == nil {
				d.Driver = "?"
			}
			devs = append(devs, d)
		}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].ID() < devs[j].ID() })
	return devs, nil
}

// Run loads the modules for the devices present, and opts.Extra. It
// returns what it did; the error is only for a missing or unreadable module
// database or sysfs (the Modules are filled as far as they got). A module
// that fails to load is recorded in Failed, not returned.
func Run(ctx context.Context, opts Options) (*state.Modules, error) {
	start := time.Now()
	res := &state.Modules{}
	defer func() { res.TookMS = time.Since(start).Milliseconds() }()

	if opts.SysDir == "" {
		opts.SysDir = "/sys"
	}
	if opts.ModulesDir == "" {
		rel, err := kernelRelease()
		if err != nil {
			return res, fmt.Errorf("coldplug: %w", err)
		}
		opts.ModulesDir = filepath.Join("/lib/modules", rel)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Loader == nil {
		opts.Loader = defaultLoader()
	}
	if opts.MaxRounds <= 0 {
		opts.MaxRounds = 4
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}

	db, err := LoadDB(opts.ModulesDir)
	if err != nil {
		return res, fmt.Errorf("coldplug: %w", err)
	}
	r := &run{
		db:     db,
		opts:   opts,
		res:    res,
		tasks:  map[string]*task{},
		sem:    make(chan struct{}, opts.Parallel),
		nBuilt: map[string]bool{},
	}

	seen := map[string]bool{}
	for round := 0; round < opts.MaxRounds; round++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("coldplug: %w", err)
		}
		devs, err := ScanDevices(opts.SysDir)
		if err != nil {
			return res, fmt.Errorf("coldplug: %w", err)
		}
		var want []string
		for _, d := range devs {
			if seen[d.ID()] {
				// Judged in an earlier round. A device that got its
				// driver from our loads is not "skipped"; one whose
				// module loaded but did not bind is not retried.
				continue
			}
			seen[d.ID()] = true
			mods := db.Aliases.Match(d.Modalias)
			builtin := db.BuiltinAliases.Match(d.Modalias)
			if d.Driver != "" {
				if len(mods) > 0 || len(builtin) > 0 {
					res.Skipped = append(res.Skipped, fmt.Sprintf("%s (driver %s bound)", d.ID(), d.Driver))
				}
				continue
			}
			for _, m := range builtin {
				r.builtin(m)
			}
			if len(mods) > 0 {
				opts.Logf("coldplug: %s %s -> %s", d.ID(), d.Modalias, strings.Join(mods, " "))
			}
			want = append(want, mods...)
		}
		if round == 0 {
			for _, x := range opts.Extra {
				ms := db.Resolve(x)
				if len(ms) == 0 {
					res.Failed = append(res.Failed, fmt.Sprintf("%s: no such module", x))
					continue
				}
				want = append(want, ms...)
			}
		}
		if !r.loadAll(ctx, want) {
			break // nothing new: no new devices will show up either
		}
	}
	return res, nil
}

// run is one Run's loading state. Its goroutines all end within loadAll.
type run struct {
	db   *DB
	opts Options
	sem  chan struct{}

	mu     sync.Mutex
	res    *state.Modules
	tasks  map[string]*task // every module ever attempted, by name
	nBuilt map[string]bool
}

// task is one module's load; done is closed when err is final.
type task struct {
	done chan struct{}
	err  error
}

func (r *run) builtin(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.nBuilt[name] {
		r.nBuilt[name] = true
		r.res.Builtin = append(r.res.Builtin, name)
	}
}

func (r *run) fail(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Failed = append(r.res.Failed, fmt.Sprintf("%s: %v", name, err))
}

// loadAll loads names and their dependencies, each module at most once
// and always after all of its dependencies, independent modules
// concurrently. It reports whether anything new was attempted and returns
// only when every load it started has finished.
func (r *run) loadAll(ctx context.Context, names []string) bool {
	// Plan in this goroutine: a depth-first walk that validates the
	// dependency graph (depmod never writes a cycle, but a hand-made
	// modules.dep could, and waiting on a cycle would never end).
	var plan []string
	state := map[string]int{} // 1 = on the walk's stack, 2 = planned
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		if _, done := r.tasks[n]; done || state[n] == 2 {
			return nil
		}
		if state[n] == 1 {
			return fmt.Errorf("dependency cycle %s -> %s", strings.Join(path, " -> "), n)
		}
		if r.db.Builtin[n] {
			r.builtin(n)
			state[n] = 2
			return nil
		}
		dep, ok := r.db.Deps[n]
		if !ok {
			return fmt.Errorf("not in modules.dep")
		}
		state[n] = 1
		for _, d := range dep.Deps {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		plan = append(plan, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			// Mark it attempted so later rounds do not retry it.
			t := &task{done: make(chan struct{}), err: err}
			close(t.done)
			r.tasks[n] = t
			r.fail(n, err)
			// Modules left on the walk's stack are unplanned; forget
			// them so another name may plan them cleanly.
			for k, v := range state {
				if v == 1 {
					delete(state, k)
				}
			}
		}
	}
	if len(plan) == 0 {
		return false
	}

	// Create every task before starting any, so each goroutine finds the
	// tasks of its dependencies in the map without locking.
	for _, n := range plan {
		r.tasks[n] = &task{done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, n := range plan {
		t := r.tasks[n]
		deps := map[string]*task{}
		for _, d := range r.db.Deps[n].Deps {
			if dt, ok := r.tasks[d]; ok {
				deps[d] = dt // built-in dependencies have no task
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(t.done)
			t.err = r.load(ctx, n, deps)
		}()
	}
	wg.Wait()
	return true
}

// load waits for deps, then loads module n.
func (r *run) load(ctx context.Context, n string, deps map[string]*task) error {
	for name, d := range deps {
		select {
		case <-d.done:
		case <-ctx.Done():
			r.fail(n, ctx.Err())
			return ctx.Err()
		}
		if d.err != nil {
			err := fmt.Errorf("dependency %s failed", name)
			r.fail(n, err)
			return err
		}
	}
	if r.live(n) {
		r.opts.Logf("coldplug: %s already loaded", n)
		return nil
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		r.fail(n, ctx.Err())
		return ctx.Err()
	}
	p := r.db.Deps[n].Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.db.Dir, p)
	}
	t0 := time.Now()
	err := r.opts.Loader.Load(n, p)
	<-r.sem
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		r.fail(n, err)
		r.opts.Logf("coldplug: loading %s: %v", n, err)
		return err
	}
	r.mu.Lock()
	r.res.Loaded = append(r.res.Loaded, n)
	r.mu.Unlock()
	r.opts.Logf("coldplug: loaded %s in %v", n, time.Since(t0).Round(time.Millisecond))
	return nil
}

// live reports whether the kernel already has module n (a loadable module
// has /sys/module/<name>/initstate; a built-in one does not).
func (r *run) live(n string) bool {
	b, err := os.ReadFile(filepath.Join(r.opts.SysDir, "module", n, "initstate"))
	return err == nil && strings.TrimSpace(string(b)) == "live"
}
