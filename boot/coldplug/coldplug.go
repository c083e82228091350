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
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/kmod"
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
	Logf console.Logf
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
func ScanDevices(sysDir string) ([]Device, error) { return scanDevices(sysDir, nil) }

// scanDevices is ScanDevices without the devices whose ID is in known,
// which are not read at all: a round of Run after the first looks for the
// devices the last loads made (a virtio bus behind virtio_pci), and
// reading every device's modalias and driver again costs as much as a
// NIC driver's load under emulation.
func scanDevices(sysDir string, known map[string]bool) ([]Device, error) {
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
			if known[b.Name()+"/"+e.Name()] {
				continue
			}
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

// Run loads the modules for the devices present, then opts.Extra. The
// device drivers come first, in parallel where they are independent, so
// the NICs are bound before anything else (nf_tables and its expressions
// take as long as a NIC driver and are not needed until the firewall is
// applied). It returns what it did; the error is only for a missing or
// unreadable module database or sysfs (the Modules are filled as far as
// they got). A module that fails to load is recorded in Failed, not
// returned.
func Run(ctx context.Context, opts Options) (*state.Modules, error) {
	r, err := newRun(&opts)
	if err != nil {
		return r.res, err
	}
	defer r.finish()

	seen := map[string]bool{}
	for round := 0; round < opts.MaxRounds; round++ {
		if err := ctx.Err(); err != nil {
			return r.res, fmt.Errorf("coldplug: %w", err)
		}
		// Devices judged in an earlier round are not scanned again: a
		// device that got its driver from our loads is not "skipped";
		// one whose module loaded but did not bind is not retried.
		devs, err := scanDevices(opts.SysDir, seen)
		if err != nil {
			return r.res, fmt.Errorf("coldplug: %w", err)
		}
		var want []string
		for _, d := range devs {
			seen[d.ID()] = true
			mods := r.db.Aliases.Match(d.Modalias)
			builtin := r.db.BuiltinAliases.Match(d.Modalias)
			if d.Driver != "" {
				if len(mods) > 0 || len(builtin) > 0 {
					r.res.Skipped = append(r.res.Skipped, fmt.Sprintf("%s (driver %s bound)", d.ID(), d.Driver))
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
		if !r.loadAll(ctx, want) {
			break // nothing new: no new devices will show up either
		}
	}
	r.loadNames(ctx, opts.Extra)
	return r.res, nil
}

// Load loads the named modules (module names or aliases such as
// "crypto-crc32c" or "nft-expr-ct") with their dependencies and soft
// dependencies, as modprobe(8) does; opts.Extra and opts.SysDir's devices
// are ignored. A name nothing provides is recorded in Failed.
func Load(ctx context.Context, opts Options, names ...string) (*state.Modules, error) {
	r, err := newRun(&opts)
	if err != nil {
		return r.res, err
	}
	defer r.finish()
	r.loadNames(ctx, names)
	return r.res, nil
}

// newRun applies the defaults to opts and reads the module database.
func newRun(opts *Options) (*run, error) {
	r := &run{
		start:  time.Now(),
		res:    &state.Modules{},
		tasks:  map[string]*task{},
		nBuilt: map[string]bool{},
	}
	if opts.SysDir == "" {
		opts.SysDir = "/sys"
	}
	if opts.ModulesDir == "" {
		rel, err := kernelRelease()
		if err != nil {
			r.finish()
			return r, fmt.Errorf("coldplug: %w", err)
		}
		opts.ModulesDir = filepath.Join("/lib/modules", rel)
	}
	if opts.Logf == nil {
		opts.Logf = console.Discard
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
	r.opts = *opts
	r.sem = make(chan struct{}, opts.Parallel)
	db, err := kmod.LoadDB(opts.ModulesDir)
	if err != nil {
		r.finish()
		return r, fmt.Errorf("coldplug: %w", err)
	}
	r.db = db
	return r, nil
}

func (r *run) finish() { r.res.TookMS = time.Since(r.start).Milliseconds() }

// loadNames resolves names (module names or aliases) and loads them.
func (r *run) loadNames(ctx context.Context, names []string) {
	var want []string
	for _, x := range names {
		ms := r.db.Resolve(x)
		if len(ms) == 0 {
			r.res.Failed = append(r.res.Failed, fmt.Sprintf("%s: no such module", x))
			continue
		}
		want = append(want, ms...)
	}
	r.loadAll(ctx, want)
}

// run is one Run's loading state. Its goroutines all end within loadAll.
type run struct {
	start time.Time
	db    *kmod.DB
	opts  Options
	sem   chan struct{}

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
// concurrently. Soft dependencies (modules.softdep) are honoured as
// modprobe(8) does: "pre" modules load before the module, "post" modules
// after it, and a soft dependency that fails or does not exist does not
// stop the module (libcrc32c's init asks the crypto API for "crc32c"; with
// its "pre: crc32c" loaded first the kernel need not call modprobe). It
// reports whether anything new was attempted and returns only when every
// load it started has finished.
func (r *run) loadAll(ctx context.Context, names []string) bool {
	// Plan in this goroutine: a depth-first walk that validates the
	// dependency graph (depmod never writes a cycle, but a hand-made
	// modules.dep could, and waiting on a cycle would never end). A soft
	// dependency that would close a cycle is dropped, as modprobe does.
	var plan []string
	state := map[string]int{}      // 1 = on the walk's stack, 2 = planned
	after := map[string][]string{} // soft ordering: module -> modules it waits for
	var visit func(n string, path []string) error
	soft := func(n string, names []string, path []string) []string {
		var got []string
		for _, s := range names {
			ms := r.db.Resolve(s)
			if len(ms) == 0 {
				r.opts.Logf("coldplug: soft dependency %s of %s: no such module", s, n)
			}
			for _, m := range ms {
				if state[m] == 1 || m == n || r.db.Builtin[m] {
					continue // a cycle, or built in: nothing to load
				}
				if err := visit(m, path); err != nil {
					r.failed(m, err)
					continue
				}
				got = append(got, m)
			}
		}
		return got
	}
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
		path = append(path, n)
		for _, d := range dep.Deps {
			if err := visit(d, path); err != nil {
				state[n] = 0
				return err
			}
		}
		sd := r.db.Softdeps[n]
		after[n] = soft(n, sd.Pre, path)
		state[n] = 2
		plan = append(plan, n)
		for _, m := range soft(n, sd.Post, path) {
			if slices.Index(plan, m) > slices.Index(plan, n) {
				after[m] = append(after[m], n) // only forward: never a cycle
			}
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			r.failed(n, err)
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
		var w []wait
		for _, d := range r.db.Deps[n].Deps {
			if dt, ok := r.tasks[d]; ok {
				w = append(w, wait{d, dt, true}) // built-in dependencies have no task
			}
		}
		for _, d := range after[n] {
			if dt, ok := r.tasks[d]; ok {
				w = append(w, wait{d, dt, false})
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(t.done)
			t.err = r.load(ctx, n, w)
		}()
	}
	wg.Wait()
	return true
}

// failed records that module n cannot be planned, so later rounds and
// later modules needing it do not try it again.
func (r *run) failed(n string, err error) {
	if _, done := r.tasks[n]; done {
		return
	}
	t := &task{done: make(chan struct{}), err: err}
	close(t.done)
	r.tasks[n] = t
	r.fail(n, err)
}

// wait is one module a load waits for: a hard dependency (its failure
// fails the load) or a soft one (only ordering).
type wait struct {
	name string
	t    *task
	hard bool
}

// load waits for the modules in w, then loads module n.
func (r *run) load(ctx context.Context, n string, w []wait) error {
	for _, d := range w {
		select {
		case <-d.t.done:
		case <-ctx.Done():
			r.fail(n, ctx.Err())
			return ctx.Err()
		}
		if d.t.err != nil && d.hard {
			err := fmt.Errorf("dependency %s failed", d.name)
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
	took := time.Since(t0)
	<-r.sem
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		r.fail(n, err)
		r.opts.Logf("coldplug: loading %s: %v", n, err)
		return err
	}
	r.mu.Lock()
	r.res.Loaded = append(r.res.Loaded, n)
	if r.res.LoadMS == nil {
		r.res.LoadMS = map[string]int64{}
	}
	r.res.LoadMS[n] = took.Milliseconds()
	r.mu.Unlock()
	r.opts.Logf("coldplug: loaded %s in %v", n, took.Round(time.Millisecond))
	return nil
}

// live reports whether the kernel already has module n (a loadable module
// has /sys/module/<name>/initstate; a built-in one does not).
func (r *run) live(n string) bool {
	b, err := os.ReadFile(filepath.Join(r.opts.SysDir, "module", n, "initstate"))
	return err == nil && strings.TrimSpace(string(b)) == "live"
}
