package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
	"github.com/threefoldtech/netinit/qemu/guestlab"
)

// The boot tests run the real netinit (cmd/netinit) in an image made by
// cmd/mkinitramfs, on the kernel $NETINIT_KERNEL with the modules of
// $NETINIT_MODULES_DIR (lib/modules/<release>), in QEMU with user-mode
// networking. They skip without those (and fail when NETINIT_LAB=1).

const bootTimeout = 90 * time.Second // one boot under TCG takes ~10 s

var mac = qemu.DefaultMAC

func need(t *testing.T, what string) { t.Helper(); lab.Missing(t, "%s", what) }

type env struct {
	kernel, modules string
}

func requireEnv(t *testing.T) env {
	t.Helper()
	e := env{kernel: os.Getenv("NETINIT_KERNEL"), modules: os.Getenv("NETINIT_MODULES_DIR")}
	if e.kernel == "" || e.modules == "" {
		need(t, "NETINIT_KERNEL (vmlinuz) and NETINIT_MODULES_DIR (lib/modules/<release>) must be set")
	}
	for _, p := range []string{e.kernel, e.modules} {
		if _, err := os.Stat(p); err != nil {
			need(t, err.Error())
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		need(t, "qemu-system-x86_64 is not installed")
	}
	return e
}

// cleanups run after all tests (TestMain).
var cleanups []func()

func TestMain(m *testing.M) {
	code := guestlab.Run(m) // the guest side when this binary is a guest lab's /init
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

// built is an artifact built once per test binary and shared by the
// tests, in a directory removed when they end.
type built struct {
	once sync.Once
	path string
	err  error
}

// get runs build in a new directory on the first call (it returns the
// artifact's path) and returns that path; it fails the test when the
// build failed.
func (b *built) get(t *testing.T, what string, build func(dir string) (string, error)) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "netinit-qemu-")
		if err != nil {
			b.err = err
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		b.path, b.err = build(dir)
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", what, b.err)
	}
	return b.path
}

var netinitBin, nextStageBin built

// netinitBinary is cmd/netinit as the images hold it, built once.
func netinitBinary(t *testing.T) string {
	t.Helper()
	return netinitBin.get(t, "netinit", func(dir string) (string, error) {
		bin := filepath.Join(dir, "netinit")
		return bin, goCmd(t, goBuild(bin, "./cmd/netinit")...)
	})
}

// nextStageBinary is qemu/testdata/nextstage as the images hold it, built
// once.
func nextStageBinary(t *testing.T) string {
	t.Helper()
	return nextStageBin.get(t, "the next stage", func(dir string) (string, error) {
		next := filepath.Join(dir, "nextstage")
		return next, goCmd(t, goBuild(next, "./qemu/testdata/nextstage")...)
	})
}

var standinModprobeBin built

// standinModprobeBinary is qemu/testdata/standin/modprobe, the stand-in
// for the final root's own modprobe, built once.
func standinModprobeBinary(t *testing.T) string {
	t.Helper()
	return standinModprobeBin.get(t, "the stand-in modprobe", func(dir string) (string, error) {
		bin := filepath.Join(dir, "modprobe")
		return bin, goCmd(t, goBuild(bin, "./qemu/testdata/standin/modprobe")...)
	})
}

var plainImage built

// image is netinit's image with every module of e, built once.
func image(t *testing.T, e env) string {
	t.Helper()
	bin := netinitBinary(t)
	return plainImage.get(t, "the image", func(dir string) (string, error) {
		img := filepath.Join(dir, "initramfs.cpio.lz4")
		return img, goCmd(t, "run", "./cmd/mkinitramfs", "-compress", "lz4", "-init", bin, "-modules-dir", e.modules, "-o", img)
	})
}

// goBuild is the go command that builds pkg to out as the images hold
// programs: static and stripped.
func goBuild(out, pkg string) []string {
	return []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg}
}

// goCmds runs the go commands in order, up to the first that fails.
func goCmds(t *testing.T, cmds ...[]string) error {
	for _, args := range cmds {
		if err := goCmd(t, args...); err != nil {
			return err
		}
	}
	return nil
}

func goCmd(t *testing.T, args ...string) error {
	_, err := goCmdOut(t, args...)
	return err
}

// goCmdOut is goCmd, returning what the command printed.
func goCmdOut(t *testing.T, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	t.Logf("go %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		return string(out), fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// boot boots the image with append on the command line (plus
// netinit.test=poweroff) and fails the test when no result arrives.
func boot(t *testing.T, e env, img, appendArgs string) *qemu.Result {
	t.Helper()
	res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: img,
		Append: strings.TrimSpace(appendArgs + " netinit.test=poweroff")})
	if res.InitAt == 0 {
		t.Errorf("the init printed no %q line", qemu.InitPrefix)
	}
	if !res.PoweredOff {
		t.Errorf("the VM did not power off by itself after the result")
	}
	return res
}

// bootWith boots opts (the timeout bootTimeout unless set, the console
// log in $NETINIT_QEMU_LOGDIR or the test's directory), logs how it went,
// shows the console's end if the test fails, and fails the test when no
// result arrives.
func bootWith(t *testing.T, opts qemu.Options) *qemu.Result {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = bootTimeout
	}
	logDir := os.Getenv("NETINIT_QEMU_LOGDIR")
	if logDir == "" {
		logDir = t.TempDir()
	}
	opts.LogFile = filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+".console.log")
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout+10*time.Second)
	defer cancel()
	res, err := qemu.Boot(ctx, opts)
	if res != nil {
		t.Logf("qemu %s (accelerator %s); console log %s", strings.Join(res.Args[1:], " "), res.AccelWhy, opts.LogFile)
		if res.Rebooted != "" {
			t.Logf("qemu: booted twice: %s", res.Rebooted)
		}
		t.Logf("power-on -> first init line %v, init -> result %v, power-on -> exit %v",
			res.InitAt.Round(time.Millisecond), res.InitToResult.Round(time.Millisecond), res.Exited.Round(time.Millisecond))
		if res.KernelInit >= 0 {
			t.Logf("kernel time of the first init line: %.3fs", res.KernelInit)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("console:\n%s", tail(res.Console, 80))
			}
		})
	}
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	return res
}

// requireConsole marks the test failed for each line of want the console
// of res lacks.
func requireConsole(t *testing.T, res *qemu.Result, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(res.Console, w) {
			t.Errorf("console lacks %q", w)
		}
	}
}

// booted is how a boot started by bootAsync ended.
type booted struct {
	res *qemu.Result
	err error
}

// bootAsync boots opts in a goroutine that ends with the boot: it calls
// then (when not nil, e.g. to close the console's pipe) and delivers the
// outcome on the returned channel, which never blocks it.
func bootAsync(ctx context.Context, opts qemu.Options, then func()) <-chan booted {
	done := make(chan booted, 1)
	go func() {
		res, err := qemu.Boot(ctx, opts)
		if then != nil {
			then()
		}
		done <- booted{res, err}
	}()
	return done
}

// splitLines appends p to buf and returns the complete lines in it (CR
// stripped) and what is left of buf: a console writer's line splitting.
func splitLines(buf, p []byte) (lines []string, rest []byte) {
	buf = append(buf, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return lines, buf
		}
		lines = append(lines, strings.TrimRight(string(buf[:i]), "\r"))
		buf = buf[i+1:]
	}
}

// requireUplink fails the test unless the node is ready with the NIC of
// the MAC as its uplink, elected for reason; it returns the NIC's name.
func requireUplink(t *testing.T, st *state.State, mac, reason string) string {
	t.Helper()
	nic := ifaceByMAC(st, mac)
	if nic == nil || st.Uplink != nic.Name || st.UplinkReason != reason || st.Phase != state.PhaseReady {
		t.Fatalf("uplink %q (%s) phase %s, want the NIC with MAC %s (%s); interfaces %+v candidates %+v",
			st.Uplink, st.UplinkReason, st.Phase, mac, reason, st.Interfaces, st.Candidates)
	}
	return nic.Name
}

// ifaceByMAC is the state's interface with the MAC, or nil.
func ifaceByMAC(st *state.State, mac string) *state.Interface {
	for i := range st.Interfaces {
		if strings.EqualFold(st.Interfaces[i].MAC, mac) {
			return &st.Interfaces[i]
		}
	}
	return nil
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// modular reports whether the module tree has name as a loadable module.
func modular(t *testing.T, dir, name string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), name+".ko") {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}

func TestBoot(t *testing.T) {
	e := requireEnv(t)
	img := image(t, e)
	t.Parallel()
	res := boot(t, e, img, "")
	st := res.State

	// Coldplug: virtio_net must have been loaded by its modalias, after
	// virtio_pci when that is a module (the virtio0 device only exists
	// once virtio_pci has bound the PCI function).
	if st.Modules == nil {
		t.Fatal("result has no modules section")
	}
	m := st.Modules
	t.Logf("modules: loaded %v builtin %v failed %v skipped %v in %d ms", m.Loaded, m.Builtin, m.Failed, m.Skipped, m.TookMS)
	net := slices.Index(m.Loaded, "virtio_net")
	if net < 0 {
		t.Errorf("virtio_net not in Modules.Loaded %v", m.Loaded)
	}
	if modular(t, e.modules, "virtio_pci") {
		if pci := slices.Index(m.Loaded, "virtio_pci"); pci < 0 || pci > net {
			t.Errorf("virtio_pci not loaded before virtio_net: %v", m.Loaded)
		}
	}
	readyOnSlirp(t, st)
}

// readyOnSlirp asserts the bring-up on QEMU's user-mode network: the NIC
// with the test MAC is the uplink, ready, with a DHCPv4 address in
// 10.0.2.0/24, the default route via 10.0.2.2 and DNS 10.0.2.3.
func readyOnSlirp(t *testing.T, st *state.State) {
	t.Helper()
	nic := ifaceByMAC(st, mac)
	if nic == nil {
		t.Fatalf("no interface with MAC %s in %+v", mac, st.Interfaces)
	}
	t.Logf("phase %q uplink %q interfaces %+v routes %+v dns %v timings %v problems %q",
		st.Phase, st.Uplink, st.Interfaces, st.Routes, st.DNS, st.TimingsMS, st.Problems)

	if st.Phase != state.PhaseReady {
		t.Errorf("phase %q, want ready", st.Phase)
	}
	if st.Uplink != nic.Name {
		t.Errorf("uplink %q, want %s (MAC %s)", st.Uplink, nic.Name, mac)
	}
	slirp := netip.MustParsePrefix("10.0.2.0/24")
	var got4 bool
	for _, a := range nic.Addresses {
		p, err := netip.ParsePrefix(a.CIDR)
		if err == nil && slirp.Contains(p.Addr()) && a.Source == lease.SourceDHCP4 {
			got4 = true
		}
	}
	if !got4 {
		t.Errorf("no dhcp4 address in %s on %s: %+v", slirp, nic.Name, nic.Addresses)
	}
	var gw bool
	for _, r := range st.Routes {
		if (r.Dst == "0.0.0.0/0" || r.Dst == "default") && r.Via == "10.0.2.2" {
			gw = true
		}
	}
	if !gw {
		t.Errorf("no default route via 10.0.2.2 in %+v", st.Routes)
	}
	if !slices.Contains(st.DNS, "10.0.2.3") {
		t.Errorf("DNS %v, want 10.0.2.3", st.DNS)
	}
}

// TestBootBadCmdline: bad netinit.* tokens are reported by name on the
// console, named in the state's problems, and the boot is otherwise as
// usual: ready on the user-mode network.
func TestBootBadCmdline(t *testing.T) {
	e := requireEnv(t)
	img := image(t, e)
	t.Parallel()
	res := boot(t, e, img, "netinit.next= netinit.bogus=1")
	if strings.Contains(res.Console, "the daemon parsed the command line itself") {
		t.Errorf("the daemon did not take PID 1's hand-over:\n%s", res.Console)
	}
	for _, tok := range []string{"netinit.next", "netinit.bogus"} {
		found := false
		for _, l := range strings.Split(res.Console, "\n") {
			if strings.Contains(l, qemu.InitPrefix) && strings.Contains(l, tok) {
				found = true
				t.Logf("reported: %s", l)
				break
			}
		}
		if !found {
			t.Errorf("no init line on the console names %s", tok)
		}
		// PID 1 parsed the command line; the daemon, which wrote the
		// state, got the problems in PID 1's hand-over.
		if !slices.ContainsFunc(res.State.Problems, func(p string) bool { return strings.Contains(p, tok) }) {
			t.Errorf("the state's problems %q do not name %s", res.State.Problems, tok)
		}
	}
	// The bad tokens are dropped and the rest of the boot is as usual.
	readyOnSlirp(t, res.State)
}
