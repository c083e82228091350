package qemu_test

import (
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

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// The boot tests run the real netinit (cmd/netinit) in an image made by
// cmd/mkinitramfs, on the kernel $NETINIT_KERNEL with the modules of
// $NETINIT_MODULES_DIR (lib/modules/<release>), in QEMU with user-mode
// networking. They skip without those (and fail when NETINIT_LAB=1).

const bootTimeout = 90 * time.Second // one boot under TCG takes ~10 s

var mac = qemu.DefaultMAC

func need(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("NETINIT_LAB") == "1" {
		t.Fatalf("NETINIT_LAB=1 but %s", what)
	}
	t.Skipf("skipping: %s", what)
}

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

// The image is built once per test binary and shared by the boots.
var (
	imageOnce sync.Once
	imagePath string
	imageErr  error
	imageDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	if imageDir != "" {
		os.RemoveAll(imageDir)
	}
	os.Exit(code)
}

func image(t *testing.T, e env) string {
	t.Helper()
	imageOnce.Do(func() {
		imageDir, imageErr = os.MkdirTemp("", "netinit-qemu-")
		if imageErr != nil {
			return
		}
		bin := filepath.Join(imageDir, "netinit")
		imagePath = filepath.Join(imageDir, "initramfs.cpio.lz4")
		for _, args := range [][]string{
			{"build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/netinit"},
			{"run", "./cmd/mkinitramfs", "-compress", "lz4", "-init", bin, "-modules-dir", e.modules, "-o", imagePath},
		} {
			imageErr = goCmd(t, args...)
			if imageErr != nil {
				return
			}
		}
	})
	if imageErr != nil {
		t.Fatalf("building the image: %v", imageErr)
	}
	return imagePath
}

func goCmd(t *testing.T, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	t.Logf("go %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// boot boots the image with append on the command line (plus
// netinit.test=poweroff) and fails the test when no result arrives.
func boot(t *testing.T, e env, img, appendArgs string) *qemu.Result {
	t.Helper()
	logDir := os.Getenv("NETINIT_QEMU_LOGDIR")
	if logDir == "" {
		logDir = t.TempDir()
	}
	logFile := filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+".console.log")
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+10*time.Second)
	defer cancel()
	res, err := qemu.Boot(ctx, qemu.Options{
		Kernel:    e.kernel,
		Initramfs: img,
		Append:    strings.TrimSpace(appendArgs + " netinit.test=poweroff"),
		Timeout:   bootTimeout,
		LogFile:   logFile,
	})
	if res != nil {
		t.Logf("qemu %s (accelerator %s); console log %s", strings.Join(res.Args[1:], " "), res.AccelWhy, logFile)
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
	if res.InitAt == 0 {
		t.Errorf("the init printed no %q line", qemu.InitPrefix)
	}
	if !res.PoweredOff {
		t.Errorf("the VM did not power off by itself after the result")
	}
	return res
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
	var nic *state.Interface
	for i := range st.Interfaces {
		if strings.EqualFold(st.Interfaces[i].MAC, mac) {
			nic = &st.Interfaces[i]
		}
	}
	if nic == nil {
		t.Fatalf("no interface with MAC %s in %+v", mac, st.Interfaces)
	}
	t.Logf("phase %q uplink %q interfaces %+v routes %+v dns %v timings %v problems %q",
		st.Phase, st.Uplink, st.Interfaces, st.Routes, st.DNS, st.TimingsMS, st.Problems)

	// The bring-up: QEMU's user-mode network serves DHCPv4 on 10.0.2.0/24
	// with the gateway 10.0.2.2 and DNS 10.0.2.3.
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
		if err == nil && slirp.Contains(p.Addr()) && a.Source == state.SourceDHCP4 {
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
// console and the boot still finishes with a result.
func TestBootBadCmdline(t *testing.T) {
	e := requireEnv(t)
	img := image(t, e)
	t.Parallel()
	res := boot(t, e, img, "netinit.next= netinit.bogus=1")
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
	}
	if res.State.Phase == "" {
		t.Errorf("result has no phase")
	}
	t.Logf("problems: %q", res.State.Problems)
}
