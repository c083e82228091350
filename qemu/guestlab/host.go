package guestlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/threefoldtech/netinit/initramfs"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
)

// Config is one guest.
type Config struct {
	// Program runs in the guest (Register).
	Program *Program
	// Args is handed to the program as JSON (Guest.Args).
	Args any
	// NICs are the guest's virtio NICs, in PCI order, each on a hub.
	NICs []NIC
	// SlirpHub, when not 0, is the hub that also reaches QEMU's
	// user-mode network (DHCPv4, RA, a router at 10.0.2.2; QEMU runs in
	// an empty namespace, so nothing leaves the machine).
	SlirpHub int
	// Modules are loaded, with their dependencies, before Setup (the NIC
	// drivers always are): "8021q", "bonding", "bridge" ...
	Modules []string
	// Binaries are host programs put in the image at their host paths,
	// with the shared libraries they link: "dnsmasq", "radvd" ... (ip
	// always is: NS.Start runs a server with `ip netns exec`).
	Binaries []string
	// Node is how netinit runs between Setup and Check; Cmdline its keys
	// (the kernel command line with NodePID1, `netinit up --cmdline`
	// with NodeUp).
	Node    Node
	Cmdline string
	// Timeout bounds the whole boot; default DefaultTimeout.
	Timeout time.Duration
	// Kernel and ModulesDir: default $NETINIT_KERNEL and
	// $NETINIT_MODULES_DIR (make test sets them).
	Kernel, ModulesDir string
}

// NIC is one virtio NIC of the guest.
type NIC struct {
	// Hub is the QEMU hub it is plugged into, from 1 (0 means 1): NICs on
	// one hub see each other's frames, tagged or not.
	Hub int
	// MAC; default 52:54:00:6c:HH:II (hub, index).
	MAC string
	// Speed, when not 0, has the NIC report this speed (Mb/s) at full
	// duplex (virtio-net's VIRTIO_NET_F_SPEED_DUPLEX): 802.3ad bonds
	// only aggregate full-duplex ports (the bonding driver's
	// ad_update_actor_keys), and virtio-net reports none by default.
	Speed int
}

// DefaultTimeout bounds a guest lab boot: one takes 15-30 s under TCG on
// a loaded 2-core host.
const DefaultTimeout = 150 * time.Second

// reportMargin is how much of Config.Timeout is left to the guest's
// report and power-off after its own deadline.
const reportMargin = 15 * time.Second

// Result is what one guest showed.
type Result struct {
	// QEMU is the boot: console, timings, the command line.
	QEMU *qemu.Result
	// Logs are the guest's logs by name (LogDir: the servers', netinit
	// up's).
	Logs map[string]string
	// Uptime are the guest's milestones in seconds since its kernel
	// started: "init" (the guest's /init ran), "setup", "node", "check".
	Uptime map[string]float64
}

// Boot boots the guest of cfg, decodes the document its program's Check
// returned into out (unless nil) and returns what the boot showed. The
// test fails (Fatal) when the boot does not end with a report, or the
// guest reports an error; when the test fails later, the console's end and
// the guest's logs are shown. Without a kernel it skips, or fails under
// NETINIT_LAB=1.
func Boot(t *testing.T, cfg Config, out any) *Result {
	t.Helper()
	cfg = defaults(t, cfg)
	res, rep, err := boot(t, cfg)
	if err != nil {
		t.Fatalf("guestlab: %s: %v", cfg.Program.Name, err)
	}
	if rep.Error != "" {
		t.Fatalf("guestlab: %s: in the guest: %s", cfg.Program.Name, rep.Error)
	}
	if out != nil {
		if err := json.Unmarshal(rep.Doc, out); err != nil {
			t.Fatalf("guestlab: %s: the document %s: %v", cfg.Program.Name, rep.Doc, err)
		}
	}
	return res
}

// boot is one boot of cfg (defaults applied) up to the guest's report.
func boot(t *testing.T, cfg Config) (*Result, *report, error) {
	t.Helper()
	if cfg.Program == nil || program(cfg.Program.Name) != cfg.Program {
		return nil, nil, fmt.Errorf("the program is not registered (guestlab.Register at package level)")
	}
	img, err := image(cfg, lab.RepoRoot(t))
	if err != nil {
		return nil, nil, fmt.Errorf("building the image: %w", err)
	}
	args, err := json.Marshal(cfg.Args)
	if err != nil {
		return nil, nil, fmt.Errorf("the program's arguments: %w", err)
	}
	gc := guestConfig{Program: cfg.Program.Name, Args: args, Modules: cfg.Modules, Node: cfg.Node,
		Cmdline: cfg.Cmdline, Deadline: time.Now().Add(cfg.Timeout - reportMargin), Budget: cfg.Timeout - reportMargin}
	for _, n := range cfg.NICs {
		gc.MACs = append(gc.MACs, n.MAC)
	}
	initrd, err := withConfig(img, t.TempDir(), gc)
	if err != nil {
		return nil, nil, err
	}
	logDir := os.Getenv("NETINIT_QEMU_LOGDIR")
	if logDir == "" {
		logDir = t.TempDir()
	}
	opts := qemu.Options{Kernel: cfg.Kernel, Initramfs: initrd, NetDev: "none", ExtraArgs: netArgs(cfg),
		Timeout: cfg.Timeout, Markers: [2]string{ResultBegin, ResultEnd},
		LogFile: filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+".console.log")}
	if cfg.Node == NodePID1 {
		opts.Append = strings.TrimSpace(cfg.Cmdline + " netinit.next=" + checkPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout+10*time.Second)
	defer cancel()
	qr, err := qemu.Boot(ctx, opts)
	if qr == nil {
		return nil, nil, err
	}
	res := &Result{QEMU: qr}
	t.Logf("guestlab: %s; qemu %s (accelerator %s); console log %s", cfg.Program.Name,
		strings.Join(qr.Args[1:], " "), qr.AccelWhy, opts.LogFile)
	t.Cleanup(func() {
		if t.Failed() {
			res.showLogs(t)
		}
	})
	if err != nil {
		return res, nil, err
	}
	rep, err := parseReport(qr.RawResult)
	if err != nil {
		return res, nil, err
	}
	res.Logs, res.Uptime = rep.Logs, rep.Uptime
	t.Logf("guestlab: %s: power-on -> report %v; in the guest (s since the kernel started): %s",
		cfg.Program.Name, qr.ResultAt.Round(time.Millisecond), milestones(rep.Uptime))
	return res, rep, nil
}

// showLogs logs the guest's logs and the console's end.
func (r *Result) showLogs(t *testing.T) {
	names := make([]string, 0, len(r.Logs))
	for n := range r.Logs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t.Logf("guest log %s:\n%s", n, r.Logs[n])
	}
	t.Logf("console (end):\n%s", tail(r.QEMU.Console, 100))
}

func milestones(up map[string]float64) string {
	var b strings.Builder
	for _, k := range []string{"init", "setup", "node", "check"} {
		if v, ok := up[k]; ok {
			fmt.Fprintf(&b, " %s %.1f", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// parseReport decodes the text between the markers. Kernel messages the
// console interleaved (lines with a printk stamp) are dropped if it does
// not parse as it is.
func parseReport(raw string) (*report, error) {
	var rep report
	err := json.Unmarshal([]byte(raw), &rep)
	if err == nil {
		return &rep, nil
	}
	var kept []string
	for _, l := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "[") {
			kept = append(kept, l)
		}
	}
	rep = report{}
	if err2 := json.Unmarshal([]byte(strings.Join(kept, "\n")), &rep); err2 != nil {
		return nil, fmt.Errorf("the guest's report: %w", err)
	}
	return &rep, nil
}

// defaults fills cfg's defaults, or skips the test without a kernel.
func defaults(t *testing.T, cfg Config) Config {
	t.Helper()
	if cfg.Kernel == "" {
		cfg.Kernel = os.Getenv("NETINIT_KERNEL")
	}
	if cfg.ModulesDir == "" {
		cfg.ModulesDir = os.Getenv("NETINIT_MODULES_DIR")
	}
	if cfg.Kernel == "" || cfg.ModulesDir == "" {
		lab.Missing(t, "guestlab: NETINIT_KERNEL (vmlinuz) and NETINIT_MODULES_DIR (lib/modules/<release>) must be set (make test sets them)")
	}
	for _, p := range []string{cfg.Kernel, cfg.ModulesDir} {
		if _, err := os.Stat(p); err != nil {
			lab.Missing(t, "guestlab: %v", err)
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		lab.Missing(t, "guestlab: qemu-system-x86_64 is not installed")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	for i := range cfg.NICs {
		n := &cfg.NICs[i]
		if n.Hub <= 0 {
			n.Hub = 1
		}
		if n.MAC == "" {
			n.MAC = fmt.Sprintf("52:54:00:6c:%02x:%02x", n.Hub&0xff, i&0xff)
		}
	}
	return cfg
}

// speed is the virtio-net-pci properties of a NIC's Speed.
func speed(mbps int) string {
	if mbps == 0 {
		return ""
	}
	return fmt.Sprintf(",speed=%d,duplex=full", mbps)
}

// netArgs are QEMU's arguments for the NICs and hubs of cfg.
func netArgs(cfg Config) []string {
	var args []string
	for i, n := range cfg.NICs {
		id := fmt.Sprintf("gl%d", i)
		args = append(args, "-netdev", fmt.Sprintf("hubport,id=%s,hubid=%d", id, n.Hub),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s%s", id, n.MAC, speed(n.Speed)))
	}
	if cfg.SlirpHub > 0 {
		args = append(args, "-netdev", "user,id=glslirp,ipv4=on,ipv6=on",
			"-netdev", fmt.Sprintf("hubport,id=glslirphub,hubid=%d,netdev=glslirp", cfg.SlirpHub))
	}
	return args
}

// Images are built once per test process and shared by its tests, in a
// directory Run removes at the end.
var (
	imagesMu sync.Mutex
	images   = map[string]*built{}
	buildDir string
	netinit  built
)

type built struct {
	once sync.Once
	path string
	err  error
}

func (b *built) get(build func() (string, error)) (string, error) {
	b.once.Do(func() { b.path, b.err = build() })
	return b.path, b.err
}

// dir is the process's build directory.
func dir() (string, error) {
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "netinit-guestlab-")
		if err != nil {
			return "", err
		}
		buildDir = d
	}
	return buildDir, nil
}

// image is the base image for cfg (everything but the boot's own
// configuration), built once per modules and binaries.
func image(cfg Config, root string) (string, error) {
	mods := append([]string{"virtio_net", "virtio_pci"}, cfg.Modules...)
	key := cfg.ModulesDir + "\x00" + strings.Join(mods, ",") + "\x00" + strings.Join(cfg.Binaries, ",")
	imagesMu.Lock()
	b := images[key]
	if b == nil {
		b = &built{}
		images[key] = b
	}
	n := len(images)
	imagesMu.Unlock()
	return b.get(func() (string, error) {
		d, err := dir()
		if err != nil {
			return "", err
		}
		nb, err := netinit.get(func() (string, error) { return buildNetinit(root, d) })
		if err != nil {
			return "", err
		}
		return buildImage(filepath.Join(d, fmt.Sprintf("image%d.cpio", n)), nb, cfg.ModulesDir, mods, cfg.Binaries)
	})
}

// buildNetinit builds cmd/netinit of the module at root into d as the
// images hold it: static, stripped.
func buildNetinit(root, d string) (string, error) {
	out := filepath.Join(d, "netinit")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/netinit")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building netinit: %w\n%s", err, b)
	}
	return out, nil
}

// buildImage writes the uncompressed image (the kernel unpacks it faster
// than any compression under TCG, and it is never shipped) to out: this
// test binary as /init, netinit, the modules mods with their
// dependencies, ip and the binaries with their libraries, and the few
// files their libc wants.
func buildImage(out, netinitBin, modulesDir string, mods, binaries []string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	tree, err := initramfs.OpenModuleTree(modulesDir, "")
	if err != nil {
		return "", err
	}
	set, err := tree.Closure(mods)
	if err != nil {
		return "", err
	}
	if len(set.Missing) > 0 {
		return "", fmt.Errorf("kernel %s has no modules %v", tree.Release, set.Missing)
	}
	etc := filepath.Dir(out)
	files := []initramfs.File{
		{Src: netinitBin, Dst: NetinitPath, Mode: 0o755},
		{Dst: checkPath, Link: "/init"},
	}
	// dnsmasq's --user=root asks libc for root (getpwnam; glibc >= 2.34
	// reads the files itself).
	for name, body := range map[string]string{"passwd": "root:x:0:0:root:/:/bin/sh\n", "group": "root:x:0:\n"} {
		p := filepath.Join(etc, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return "", err
		}
		files = append(files, initramfs.File{Src: p, Dst: "/etc/" + name, Mode: 0o644})
	}
	progs := []string{exe}
	// ip runs the servers in their namespaces (NS.Start: `ip netns exec`).
	for _, b := range append([]string{"ip"}, binaries...) {
		p, err := exec.LookPath(b)
		if err != nil {
			if p, err = exec.LookPath(filepath.Join("/usr/sbin", b)); err != nil {
				return "", fmt.Errorf("%s is not installed: %w", b, err)
			}
		}
		if p, err = filepath.Abs(p); err != nil {
			return "", err
		}
		files = append(files, initramfs.File{Src: p, Dst: p, Mode: 0o755})
		progs = append(progs, p)
	}
	have := map[string]bool{}
	for _, p := range progs {
		libs, err := Libraries(p)
		if err != nil {
			return "", err
		}
		for _, l := range libs {
			if !have[l] {
				have[l] = true
				files = append(files, initramfs.File{Src: l, Dst: l, Mode: 0o755})
			}
		}
	}
	if _, err := initramfs.WriteFile(out, initramfs.Spec{Init: exe, Modules: set, Files: files, Compress: "none"}); err != nil {
		return "", err
	}
	return out, nil
}

// withConfig writes to dir the image img followed by an archive of its
// own holding gc at configPath (the kernel unpacks concatenated archives
// in order, init/initramfs.c), and returns its path.
func withConfig(img, dir string, gc guestConfig) (string, error) {
	base, err := os.ReadFile(img)
	if err != nil {
		return "", err
	}
	doc, err := json.Marshal(gc)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	buf.Write(base)
	// Each archive starts 4-aligned (newc); pad to a block for good measure.
	buf.Write(make([]byte, (512-buf.Len()%512)%512))
	w := cpio.Newc.Writer(&buf)
	rec := cpio.StaticRecord(doc, cpio.Info{Name: strings.TrimPrefix(configPath, "/"), Mode: cpio.S_IFREG | 0o644})
	if err := cpio.WriteRecords(w, []cpio.Record{rec}); err != nil {
		return "", err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "initramfs.cpio")
	return p, os.WriteFile(p, buf.Bytes(), 0o644)
}

// Run runs the tests of m and returns their exit code; in a guest lab's
// guest (this binary as its /init) it runs the guest instead and never
// returns. Call it from TestMain: os.Exit(guestlab.Run(m)).
func Run(m *testing.M) int {
	if inGuest() {
		guest() // never returns
	}
	code := m.Run()
	imagesMu.Lock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	imagesMu.Unlock()
	return code
}
