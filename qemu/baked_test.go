package qemu_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// TestBootBaked: netinit baked (mkinitramfs -base) into an image laid out
// like 0-OS's — an /init script that would switch root to zinit, and
// /sbin/zinit (here the test's next stage, qemu/testdata/nextstage). The
// merged image boots netinit as /init, which hands off to the base's
// /sbin/zinit; the next stage sees the live state and the daemon. (The
// switch to a tmpfs root before the handoff is the 0-OS contract's part;
// 0-OS's real service graph on a baked image: TestBootZOSGraph.)
func TestBootBaked(t *testing.T) {
	e := requireEnv(t)
	t.Parallel()
	dir := t.TempDir()
	bin, next := netinitBinary(t), nextStageBinary(t)
	zinit, err := os.ReadFile(next)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	if err := cpio.WriteRecords(w, []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.StaticFile("etc/zos-base", "0-OS base\n", 0o644),
		cpio.StaticFile("init", "#!/bin/sh\nmount -t tmpfs root /mnt/root\nexec switch_root /mnt/root /sbin/zinit init\n", 0o755),
		cpio.Directory("sbin", 0o755),
		cpio.StaticRecord(zinit, cpio.Info{Name: "sbin/zinit", Mode: cpio.S_IFREG | 0o755}),
	}); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	base := filepath.Join(dir, "zos.cpio.gz")
	if err := os.WriteFile(base, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "baked.cpio.gz")
	out, err := goCmdOut(t, "run", "./cmd/mkinitramfs", "-base", base, "-init", bin, "-modules-dir", e.modules, "-o", img)
	if err != nil {
		t.Fatal(err)
	}
	// No zinit service internet in this base: nothing of it rewritten
	// (TestBootZOSGraph bakes into 0-OS's real service files).
	if !strings.Contains(out, "baked: the base has no /etc/zinit/internet.yaml: none of its files rewritten") {
		t.Errorf("mkinitramfs did not say that it rewrote nothing:\n%s", out)
	}

	res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: img})
	requireConsole(t, res, "handing off to /sbin/zinit", "NEXTSTAGE pid=1", "NEXTSTAGE state-file-phase=ready",
		"NEXTSTAGE socket-phase=ready", "NEXTSTAGE daemon-alive=true")
	if st := res.State; st == nil || st.Phase != state.PhaseReady {
		t.Errorf("live state after the handoff: %+v", st)
	}
}
