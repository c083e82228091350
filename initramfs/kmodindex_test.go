package initramfs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// TestBakeKmodIndexes runs Debian's kmod (modprobe, modinfo) against
// images baked into a base that has kmod's binary indexes, with modules
// of the same kernel release in both: the base carries macvlan and its
// indexes made as 0-initramfs makes them (the modules, then `depmod -b`),
// netinit adds 8021q (and garp, mrp, stp, llc).
//
//   - Baked: kmod finds both, by name and by alias (rtnl-link-macvlan,
//     rtnl-link-vlan: what the kernel's request_module() asks for), with
//     their dependencies; the build says it remade the indexes, and two
//     bakes are the same bytes.
//   - The suspicion, shown: the same merged tree with the base's own .bin
//     files (what baking did before) — kmod finds macvlan but not 8021q,
//     although the merged text modules.dep and modules.alias list it:
//     kmod reads only the .bin files.
//   - No fallback: without any .bin, kmod finds nothing at all.
func TestBakeKmodIndexes(t *testing.T) {
	k := requireKernel(t)
	depmod := requireTool(t, "depmod")
	tree, err := OpenModuleTree(k.ModulesDir, "")
	must(t, err)
	baseSet, err := tree.Closure([]string{"macvlan"})
	must(t, err)
	ours, err := tree.Closure([]string{"8021q"})
	must(t, err)
	rel := tree.Release

	// The base's root: its modules, the kernel's lists, depmod's indexes.
	broot := t.TempDir()
	bdir := filepath.Join(broot, "lib/modules", rel)
	for _, m := range baseSet.Modules {
		b, err := ReadModule(m.Src)
		must(t, err)
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(bdir, m.Path)), 0o755))
		must(t, os.WriteFile(filepath.Join(bdir, m.Path), b, 0o644))
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		b, err := os.ReadFile(filepath.Join(k.ModulesDir, f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(bdir, f), b, 0o644))
	}
	runTool(t, depmod, "-b", broot, "-C", t.TempDir(), rel)
	base := treeImage(t, broot, cpio.StaticFile("init", "#!/bin/sh\n", 0o755))

	init := filepath.Join(t.TempDir(), "netinit")
	must(t, os.WriteFile(init, []byte("\x7fELF netinit"), 0o755))
	var img bytes.Buffer
	st, err := Write(&img, Spec{Init: init, Modules: ours, Base: base, Epoch: 1})
	must(t, err)
	if !strings.Contains(strings.Join(st.Baked, "\n"), "/lib/modules/"+rel+"/{") {
		t.Errorf("the build does not say it remade the indexes: %q", st.Baked)
	}
	var again bytes.Buffer
	_, err = Write(&again, Spec{Init: init, Modules: ours, Base: base, Epoch: 1})
	must(t, err)
	if !bytes.Equal(img.Bytes(), again.Bytes()) {
		t.Error("two bakes differ: depmod's indexes are not reproducible")
	}
	recs, _, err := ReadImage(img.Bytes())
	must(t, err)
	root := t.TempDir()
	for n, r := range recs {
		if strings.HasPrefix(n, "lib/modules/") {
			must(t, writeRecord(filepath.Join(root, filepath.FromSlash(n)), r))
		}
	}
	dir := filepath.Join(root, "lib/modules", rel)
	for _, want := range []struct{ name, insmod string }{
		{"8021q", "kernel/net/8021q/8021q.ko"},
		{"rtnl-link-vlan", "kernel/net/8021q/8021q.ko"},
		{"8021q", "kernel/net/802/garp.ko"},
		{"macvlan", "kernel/drivers/net/macvlan.ko"},
		{"rtnl-link-macvlan", "kernel/drivers/net/macvlan.ko"},
	} {
		if out, err := kmodShow(t, root, rel, want.name); err != nil || !strings.Contains(out, "insmod "+filepath.Join(dir, want.insmod)) {
			t.Errorf("modprobe %s in the baked image: %v\n%s", want.name, err, out)
		}
	}
	if out, err := kmodInfo(t, root, rel, "8021q"); err != nil || !strings.Contains(out, "filename:       "+filepath.Join(dir, "kernel/net/8021q/8021q.ko")) {
		t.Errorf("modinfo 8021q in the baked image: %v\n%s", err, out)
	}

	// The base's own .bin files beside the merged text indexes.
	bins, _ := filepath.Glob(filepath.Join(bdir, "modules.*.bin"))
	if len(bins) == 0 {
		t.Fatal("depmod made no .bin files for the base")
	}
	for _, b := range bins {
		data, err := os.ReadFile(b)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, filepath.Base(b)), data, 0o644))
	}
	for _, f := range []string{"modules.dep", "modules.alias"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); !strings.Contains(string(b), "8021q") {
			t.Fatalf("the merged %s does not list 8021q", f)
		}
	}
	if out, err := kmodShow(t, root, rel, "macvlan"); err != nil {
		t.Errorf("modprobe macvlan with the base's indexes: %v\n%s", err, out)
	}
	for _, name := range []string{"8021q", "rtnl-link-vlan"} {
		if out, err := kmodShow(t, root, rel, name); err == nil || !strings.Contains(out, "not found") {
			t.Errorf("modprobe %s with the base's indexes found it (%v): the suspicion would be wrong\n%s", name, err, out)
		}
	}

	// No .bin at all: no fallback to the text files.
	bins, _ = filepath.Glob(filepath.Join(dir, "modules.*.bin"))
	for _, b := range bins {
		must(t, os.Remove(b))
	}
	if out, err := kmodShow(t, root, rel, "macvlan"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("modprobe macvlan without .bin files found it (%v)\n%s", err, out)
	}
}

// kmodShow is `modprobe --show-depends` (the insmod lines, whatever the
// host has loaded) of name in the module tree of root, without the host's
// modprobe.d.
func kmodShow(t *testing.T, root, rel, name string) (string, error) {
	t.Helper()
	return runOut(requireTool(t, "modprobe"), "--show-depends", "-d", root, "-S", rel, "-C", t.TempDir(), name)
}

// kmodInfo is `modinfo` of name in the module tree of root.
func kmodInfo(t *testing.T, root, rel, name string) (string, error) {
	t.Helper()
	return runOut(requireTool(t, "modinfo"), "-b", root, "-k", rel, name)
}

func runOut(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func runTool(t *testing.T, bin string, args ...string) {
	t.Helper()
	if out, err := runOut(bin, args...); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
}

// treeImage writes the files under root, and extra, as a newc cpio.
func treeImage(t *testing.T, root string, extra ...cpio.Record) string {
	t.Helper()
	recs := extra
	must(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := path.Clean(filepath.ToSlash(rel))
		if d.IsDir() {
			recs = append(recs, cpio.Directory(name, 0o755))
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o644}))
		return nil
	}))
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	must(t, cpio.WriteRecords(w, recs))
	must(t, cpio.WriteTrailer(w))
	p := filepath.Join(t.TempDir(), "base.cpio")
	must(t, os.WriteFile(p, raw.Bytes(), 0o644))
	return p
}
