package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/initramfs"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/u-root/u-root/pkg/cpio"
)

func TestRun(t *testing.T) {
	k, err := initramfs.FindKernel("")
	lab.Need(t, err)
	dir := t.TempDir()
	init := filepath.Join(dir, "netinit")
	conf := filepath.Join(dir, "conf")
	next := filepath.Join(dir, "next")
	for p, s := range map[string]string{init: "init", conf: "k=v\n", next: "next"} {
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out", "initramfs.cpio.gz")
	t.Setenv("SOURCE_DATE_EPOCH", "1234567890")
	var stdout, stderr bytes.Buffer
	err = run([]string{
		"-init", init, "-modules-dir", k.ModulesDir, "-kernel-release", k.Version,
		"-modules", "virtio_net,e1000e,tun",
		"-file", conf + ":/etc/netinit.conf:600", "-file", next + ":/sbin/next",
		"-o", out,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "/init 4 bytes") {
		t.Errorf("stdout: %q", stdout.String())
	}
	if strings.Contains(k.Version, "cloud") && !strings.Contains(stderr.String(), "has no module e1000e") {
		t.Errorf("no note about e1000e missing from the cloud kernel:\n%s", stderr.String())
	}
	recs := readImage(t, out)
	if r := recs["etc/netinit.conf"]; r.Mode != cpio.S_IFREG|0o600 || r.FileSize != 4 || r.MTime != 1234567890 {
		t.Errorf("etc/netinit.conf: %v", r.Info)
	}
	if r := recs["sbin/next"]; r.Mode != cpio.S_IFREG|0o755 {
		t.Errorf("sbin/next: %v", r.Info)
	}
	md := "lib/modules/" + k.Version + "/"
	for _, p := range []string{"kernel/drivers/net/tun.ko", "kernel/drivers/net/virtio_net.ko", "kernel/net/core/failover.ko", "modules.dep"} {
		if _, ok := recs[md+p]; !ok {
			t.Errorf("%s missing", md+p)
		}
	}
	if _, ok := recs[md+"kernel/drivers/virtio/virtio_pci.ko"]; ok {
		t.Errorf("virtio_pci included though not requested")
	}

	if err := run([]string{"-o", out}, &stdout, &stderr); err == nil {
		t.Error("no -init: no error")
	}
	if err := run([]string{"-init", init, "-o", out, "-file", "bad"}, &stdout, &stderr); err == nil {
		t.Error("bad -file: no error")
	}
}

// -debug builds u-root's commands with the go tool; slow on a cold cache.
func TestRunDebug(t *testing.T) {
	if testing.Short() {
		t.Skip("builds u-root commands")
	}
	dir := t.TempDir()
	init := filepath.Join(dir, "netinit")
	if err := os.WriteFile(init, []byte("init"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "debug.cpio.gz")
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-init", init, "-debug", "-o", out}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	recs := readImage(t, out)
	for _, c := range initramfs.DebugCommands {
		r, ok := recs["bin/"+c]
		if !ok || r.Mode != cpio.S_IFREG|0o755 || r.FileSize < 100000 {
			t.Errorf("bin/%s: %v", c, r.Info)
		}
	}
	if r := recs["bin/sh"]; r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
		t.Errorf("bin/sh: %v", r.Info)
	}
}

// readImage reads the image at p into its records by name.
func readImage(t *testing.T, p string) map[string]cpio.Record {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := initramfs.ReadImage(b)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
