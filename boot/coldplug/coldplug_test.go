package coldplug

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/kmod"
)

// Real lines from a Debian 6.1 kernel's modules.alias / modules.dep, plus a
// few made-up modules.
const (
	testAlias = `alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v000010ECd00008139sv*sd*bc*sc*i* broken
alias pci:v000010ECd00008168sv*sd*bc*sc*i* needs_broken
alias pci:v00001234d00000001sv*sd*bc*sc*i* dashed_name
alias pci:v00001234d00000002sv*sd*bc*sc*i* cyc_a
alias char-major-10-200 tun
alias chain:* chain
`
	testDep = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/broken.ko:
kernel/drivers/net/needs_broken.ko: kernel/drivers/net/broken.ko
kernel/drivers/net/dashed-name.ko:
kernel/drivers/net/tun.ko:
kernel/x/cyc_a.ko: kernel/x/cyc_b.ko
kernel/x/cyc_b.ko: kernel/x/cyc_a.ko
kernel/x/chain.ko:
`
	testBuiltin = "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko\nkernel/drivers/virtio/virtio_anchor.ko\n"

	virtioNetPCI = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
	virtioNet    = "virtio:d00000001v00001AF4"
)

type tree struct {
	mods, sys string
}

func newTree(t *testing.T) tree {
	return writeTree(t, map[string]string{
		"modules.alias":   testAlias,
		"modules.dep":     testDep,
		"modules.builtin": testBuiltin,
	})
}

// writeTree makes a modules directory with the given index files, and an
// empty sysfs.
func writeTree(t *testing.T, index map[string]string) tree {
	t.Helper()
	d := t.TempDir()
	tr := tree{mods: filepath.Join(d, "lib/modules/test"), sys: filepath.Join(d, "sys")}
	for name, body := range index {
		writeFile(t, filepath.Join(tr.mods, name), body)
	}
	if err := os.MkdirAll(filepath.Join(tr.sys, "bus"), 0o755); err != nil {
		t.Fatal(err)
	}
	return tr
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// addDev makes a device the way sysfs shows it: the real directory under
// devices/ and a symlink under bus/<bus>/devices, with a driver symlink
// when driver != "".
func (tr tree) addDev(t *testing.T, bus, name, modalias, driver string) {
	t.Helper()
	real := filepath.Join(tr.sys, "devices", bus+"-"+name)
	writeFile(t, filepath.Join(real, "modalias"), modalias+"\n")
	if driver != "" {
		drv := filepath.Join(tr.sys, "bus", bus, "drivers", driver)
		if err := os.MkdirAll(drv, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(drv, filepath.Join(real, "driver")); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(tr.sys, "bus", bus, "devices", name)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
}

// fakeLoader records loads and checks the ordering rules: every dependency
// is loaded before the module, and no module is loaded twice.
type fakeLoader struct {
	t    *testing.T
	deps map[string]kmod.Dep

	mu       sync.Mutex
	order    []string
	paths    map[string]string
	inflight int
	maxPar   int
	errs     map[string]error
	onLoad   map[string]func()
}

func newFakeLoader(t *testing.T, tr tree) *fakeLoader {
	db, err := kmod.LoadDB(tr.mods)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeLoader{t: t, deps: db.Deps, paths: map[string]string{}, errs: map[string]error{}, onLoad: map[string]func(){}}
}

func (f *fakeLoader) Load(name, path string) error {
	f.mu.Lock()
	for _, d := range f.deps[name].Deps {
		if !slices.Contains(f.order, d) {
			f.t.Errorf("%s loaded before its dependency %s (loaded so far: %v)", name, d, f.order)
		}
	}
	if _, dup := f.paths[name]; dup {
		f.t.Errorf("%s loaded twice", name)
	}
	f.paths[name] = path
	f.inflight++
	f.maxPar = max(f.maxPar, f.inflight)
	err := f.errs[name]
	hook := f.onLoad[name]
	f.mu.Unlock()

	time.Sleep(5 * time.Millisecond) // let independent loads overlap
	if hook != nil && err == nil {
		hook()
	}

	f.mu.Lock()
	f.inflight--
	if err == nil {
		f.order = append(f.order, name)
	}
	f.mu.Unlock()
	return err
}

func runColdplug(t *testing.T, tr tree, l Loader, extra ...string) (got struct {
	Loaded, Builtin, Failed, Skipped []string
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	m, err := Run(ctx, Options{ModulesDir: tr.mods, SysDir: tr.sys, Loader: l, Extra: extra, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// TookMS is Run's own time: within the call, and at least one fake
	// load (each takes 5 ms) when any module was handed to the loader.
	lo := int64(0)
	if f, ok := l.(*fakeLoader); ok && len(f.paths) > 0 {
		lo = 5
	}
	if wall := time.Since(start).Milliseconds(); m.TookMS < lo || m.TookMS > wall {
		t.Errorf("TookMS = %d, want within [%d, %d] ms", m.TookMS, lo, wall)
	}
	got.Loaded, got.Builtin, got.Failed, got.Skipped = m.Loaded, m.Builtin, m.Failed, m.Skipped
	return got
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestRunVirtio is QEMU's virtio-net-pci: the PCI device matches
// virtio_pci; loading it creates virtio0, whose modalias matches
// virtio_net, found by the rescan.
func TestRunVirtio(t *testing.T) {
	tr := newTree(t)
	tr.addDev(t, "pci", "0000:00:03.0", virtioNetPCI, "")
	tr.addDev(t, "pci", "0000:00:00.0", "pci:v00008086d000029C0sv00001AF4sd00001100bc06sc00i00", "") // host bridge, no driver
	l := newFakeLoader(t, tr)
	l.onLoad["virtio_pci"] = func() { tr.addDev(t, "virtio", "virtio0", virtioNet, "") }

	got := runColdplug(t, tr, l)
	wantLoaded := []string{"failover", "net_failover", "virtio", "virtio_net", "virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring"}
	if !reflect.DeepEqual(sorted(got.Loaded), wantLoaded) {
		t.Errorf("Loaded = %v, want (any order) %v", got.Loaded, wantLoaded)
	}
	if i, j := slices.Index(got.Loaded, "virtio_pci"), slices.Index(got.Loaded, "virtio_net"); i > j {
		t.Errorf("virtio_net (%d) loaded before virtio_pci (%d): %v", j, i, got.Loaded)
	}
	if len(got.Failed)+len(got.Skipped)+len(got.Builtin) != 0 {
		t.Errorf("unexpected Failed %v Skipped %v Builtin %v", got.Failed, got.Skipped, got.Builtin)
	}
	if want := filepath.Join(tr.mods, "kernel/drivers/net/virtio_net.ko"); l.paths["virtio_net"] != want {
		t.Errorf("virtio_net path = %q, want %q", l.paths["virtio_net"], want)
	}
	if l.maxPar < 2 {
		t.Errorf("independent modules were not loaded concurrently (max in flight %d)", l.maxPar)
	}
}

// TestRunBoundDriverSkipped: a NIC whose driver is already bound (built in,
// or loaded before us) must never get a load that could bounce it.
func TestRunBoundDriverSkipped(t *testing.T) {
	tr := newTree(t)
	tr.addDev(t, "pci", "0000:00:03.0", virtioNetPCI, "virtio-pci")
	tr.addDev(t, "pci", "0000:00:04.0", "pci:v00008086d0000100Esv00008086sd00000000bc02sc00i00", "")
	l := newFakeLoader(t, tr)
	got := runColdplug(t, tr, l)
	if !reflect.DeepEqual(got.Loaded, []string{"e1000"}) {
		t.Errorf("Loaded = %v, want [e1000]", got.Loaded)
	}
	if want := []string{"pci/0000:00:03.0 (driver virtio-pci bound)"}; !reflect.DeepEqual(got.Skipped, want) {
		t.Errorf("Skipped = %v, want %v", got.Skipped, want)
	}
}

func TestRunBuiltin(t *testing.T) {
	tr := newTree(t)
	// e1000e is in modules.builtin (its alias is in modules.alias here,
	// which depmod would not write, but coldplug must not load it).
	tr.addDev(t, "pci", "0000:00:05.0", "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00", "")
	// A built-in driver known only from modules.builtin.modinfo.
	writeFile(t, filepath.Join(tr.mods, "modules.builtin.modinfo"), "igb.alias=pci:v00008086d00001533sv*sd*bc*sc*i*\x00igb.license=GPL\x00")
	tr.addDev(t, "pci", "0000:00:06.0", "pci:v00008086d00001533sv00008086sd00000001bc02sc00i00", "")
	l := newFakeLoader(t, tr)
	got := runColdplug(t, tr, l)
	if len(got.Loaded) != 0 {
		t.Errorf("Loaded = %v, want none", got.Loaded)
	}
	if want := []string{"e1000e", "igb"}; !reflect.DeepEqual(sorted(got.Builtin), want) {
		t.Errorf("Builtin = %v, want %v", got.Builtin, want)
	}
}

func TestRunFailures(t *testing.T) {
	tr := newTree(t)
	tr.addDev(t, "pci", "0000:00:07.0", "pci:v000010ECd00008168sv000010ECsd00000001bc02sc00i00", "") // needs_broken
	tr.addDev(t, "pci", "0000:00:08.0", "pci:v00001234d00000002sv00000000sd00000000bc02sc00i00", "") // cycle
	l := newFakeLoader(t, tr)
	l.errs["broken"] = fmt.Errorf("finit_module: %w", syscall.ENOEXEC)
	got := runColdplug(t, tr, l, "no_such_module")
	want := []string{
		"broken: finit_module: exec format error",
		"cyc_a: dependency cycle cyc_a -> cyc_b -> cyc_a",
		"needs_broken: dependency broken failed",
		"no_such_module: no such module",
	}
	if !reflect.DeepEqual(sorted(got.Failed), want) {
		t.Errorf("Failed = %q\nwant %q", got.Failed, want)
	}
	if len(got.Loaded) != 0 {
		t.Errorf("Loaded = %v", got.Loaded)
	}
}

// TestRunEEXIST: "already loaded" from the kernel is success, and a module
// that /sys/module shows live is not loaded again at all.
func TestRunEEXIST(t *testing.T) {
	tr := newTree(t)
	tr.addDev(t, "pci", "0000:00:04.0", "pci:v00008086d0000100Esv00008086sd00000000bc02sc00i00", "")
	tr.addDev(t, "pci", "0000:00:09.0", "pci:v00001234d00000001sv00000000sd00000000bc02sc00i00", "")
	writeFile(t, filepath.Join(tr.sys, "module/dashed_name/initstate"), "live\n")
	l := newFakeLoader(t, tr)
	l.errs["e1000"] = fmt.Errorf("finit_module: %w", syscall.EEXIST)
	got := runColdplug(t, tr, l)
	if !reflect.DeepEqual(got.Loaded, []string{"e1000"}) || len(got.Failed) != 0 {
		t.Errorf("Loaded = %v Failed = %v, want [e1000] and none", got.Loaded, got.Failed)
	}
	if _, ok := l.paths["dashed_name"]; ok {
		t.Error("live module dashed_name was loaded again")
	}
}

func TestRunExtraAndDashes(t *testing.T) {
	tr := newTree(t)
	tr.addDev(t, "pci", "0000:00:09.0", "pci:v00001234d00000001sv00000000sd00000000bc02sc00i00", "")
	l := newFakeLoader(t, tr)
	got := runColdplug(t, tr, l, "char-major-10-200", "virtio-ring", "e1000e")
	if want := []string{"dashed_name", "tun", "virtio", "virtio_ring"}; !reflect.DeepEqual(sorted(got.Loaded), want) {
		t.Errorf("Loaded = %v, want %v", got.Loaded, want)
	}
	if want := filepath.Join(tr.mods, "kernel/drivers/net/dashed-name.ko"); l.paths["dashed_name"] != want {
		t.Errorf("dashed_name path %q, want %q", l.paths["dashed_name"], want)
	}
	if !reflect.DeepEqual(got.Builtin, []string{"e1000e"}) {
		t.Errorf("Builtin = %v", got.Builtin)
	}
}

// TestRunRoundsBounded: a driver whose load keeps making new devices does
// not keep coldplug busy forever.
func TestRunRoundsBounded(t *testing.T) {
	tr := newTree(t)
	tr.addDev(t, "chain", "c0", "chain:0", "")
	l := newFakeLoader(t, tr)
	n := 0
	var hook func()
	hook = func() {
		n++
		tr.addDev(t, "chain", fmt.Sprint("c", n), fmt.Sprint("chain:", n), "")
	}
	l.onLoad["chain"] = hook
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Run(ctx, Options{ModulesDir: tr.mods, SysDir: tr.sys, Loader: l, MaxRounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The module is attempted once; the new device matches it again but it
	// is not reloaded, so the second round ends the scan.
	if !reflect.DeepEqual(m.Loaded, []string{"chain"}) || n != 1 {
		t.Errorf("Loaded = %v after %d loads", m.Loaded, n)
	}
}

func TestRunErrors(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	if _, err := Run(ctx, Options{ModulesDir: t.TempDir(), SysDir: tr.sys, Loader: newFakeLoader(t, tr)}); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("missing modules.dep: err = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, Options{ModulesDir: tr.mods, SysDir: tr.sys, Loader: newFakeLoader(t, tr)}); err == nil {
		t.Error("cancelled context: no error")
	}
}
