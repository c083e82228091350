package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/u-root/u-root/pkg/cpio"
)

// requireKernel returns the fetched Debian kernel, or skips (fails under
// NETINIT_LAB=1, where `make test` has run `make kernel` first).
func requireKernel(t *testing.T) Kernel {
	t.Helper()
	k, err := FindKernel("")
	lab.Need(t, err)
	return k
}

func requireTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("NETINIT_LAB") == "1" {
			t.Fatalf("NETINIT_LAB=1 but %s is not installed", tool)
		}
		t.Skipf("%s not installed", tool)
	}
	return p
}

func TestReadModinfoReal(t *testing.T) {
	k := requireKernel(t)
	tree, err := OpenModuleTree(k.ModulesDir, "")
	if err != nil {
		t.Fatal(err)
	}
	if tree.Release != k.Version {
		t.Errorf("release from vermagic %q, want %q", tree.Release, k.Version)
	}
	p, ok := tree.Path("virtio_net")
	if !ok {
		t.Fatal("no virtio_net module")
	}
	mi, err := ReadModinfo(filepath.Join(k.ModulesDir, p))
	if err != nil {
		t.Fatal(err)
	}
	if mi.Name != "virtio_net" {
		t.Errorf("name %q", mi.Name)
	}
	if !contains(mi.Depends, "net_failover") {
		t.Errorf("depends %v lacks net_failover", mi.Depends)
	}
	if !contains(mi.Aliases, "virtio:d00000001v*") {
		t.Errorf("aliases %v lack virtio:d00000001v*", mi.Aliases)
	}
	if vm := mi.Get("vermagic"); len(vm) != 1 || !strings.HasPrefix(vm[0], k.Version+" ") {
		t.Errorf("vermagic %q", vm)
	}
	if lic := mi.Get("license"); len(lic) == 0 {
		t.Errorf("no license field in %v", mi.Fields)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func buildReal(t *testing.T, k Kernel, init string) ([]byte, *ModuleSet) {
	t.Helper()
	tree, err := OpenModuleTree(k.ModulesDir, k.Version)
	if err != nil {
		t.Fatal(err)
	}
	set, err := tree.Closure(DefaultModules)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	st, err := Write(&b, Spec{Init: init, Modules: set})
	if err != nil {
		t.Fatal(err)
	}
	if st.ImageSize != int64(b.Len()) {
		t.Errorf("stats say %d bytes, wrote %d", st.ImageSize, b.Len())
	}
	return b.Bytes(), set
}

func TestImageReal(t *testing.T) {
	k := requireKernel(t)
	init := filepath.Join(t.TempDir(), "netinit")
	if err := os.WriteFile(init, []byte("#!/bin/true\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	img1, set := buildReal(t, k, init)
	img2, _ := buildReal(t, k, init)
	if !bytes.Equal(img1, img2) {
		t.Fatal("two builds from the same inputs differ")
	}

	// Deterministic gzip header: no name, no mtime (RFC 1952 2.3.1).
	zr, err := gzip.NewReader(bytes.NewReader(img1))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q mtime %v", zr.Name, zr.ModTime)
	}

	recs, order, err := ReadImage(img1)
	if err != nil {
		t.Fatal(err)
	}
	// Parents before children; sorted; unique.
	for i, n := range order {
		if i > 0 && order[i-1] >= n {
			t.Errorf("records not sorted: %q before %q", order[i-1], n)
		}
		if d := path.Dir(n); d != "." {
			if _, ok := recs[d]; !ok {
				t.Errorf("%s has no parent directory record", n)
			}
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "etc", "sbin", "lib/modules/" + k.Version} {
		if r, ok := recs[d]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("directory %s missing", d)
		}
	}
	if r := recs["init"]; r.Mode != cpio.S_IFREG|0o755 || r.FileSize != 12 || r.UID != 0 || r.GID != 0 {
		t.Errorf("/init: %v", r.Info)
	}
	if r := recs["dev/console"]; r.Mode != cpio.S_IFCHR|0o600 || r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("/dev/console: %v", r.Info)
	}

	modDir := "lib/modules/" + k.Version + "/"
	vnet, ok := set.Get("virtio_net")
	if !ok {
		t.Fatal("virtio_net not selected")
	}
	deps := set.Deps("virtio_net")
	if !contains(deps, "net_failover") || !contains(deps, "failover") {
		t.Errorf("virtio_net deps %v", deps)
	}
	var depPaths []string
	for _, d := range append([]string{"virtio_net"}, deps...) {
		m, _ := set.Get(d)
		depPaths = append(depPaths, m.Path)
		r, ok := recs[modDir+m.Path]
		if !ok {
			t.Errorf("%s not in the image", m.Path)
			continue
		}
		// The module in the image is the module from the package.
		want, err := ReadModule(m.Src)
		if err != nil {
			t.Fatal(err)
		}
		if got := readRec(t, r); !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", m.Path, m.Src)
		}
	}

	dep := string(readRec(t, recs[modDir+"modules.dep"]))
	wantLine := vnet.Path + ": " + strings.Join(depPaths[1:], " ")
	if !hasLine(dep, wantLine) {
		t.Errorf("modules.dep lacks %q:\n%s", wantLine, dep)
	}
	// Every module in the image has a modules.dep line and vice versa.
	nlines := 0
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		nlines++
		p, _, _ := strings.Cut(l, ":")
		if _, ok := recs[modDir+p]; !ok {
			t.Errorf("modules.dep names %s, not in the image", p)
		}
	}
	nko := 0
	for n := range recs {
		if strings.HasSuffix(n, ".ko") {
			nko++
		}
	}
	if nlines != nko || nko != len(set.Modules) {
		t.Errorf("%d modules.dep lines, %d .ko files, %d selected", nlines, nko, len(set.Modules))
	}

	alias := string(readRec(t, recs[modDir+"modules.alias"]))
	if !hasLine(alias, "alias virtio:d00000001v* virtio_net") {
		t.Errorf("modules.alias lacks virtio_net's alias")
	}
	if !hasLine(alias, "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci") {
		t.Errorf("modules.alias lacks virtio_pci's alias")
	}
	pkgBuiltin, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.builtin"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readRec(t, recs[modDir+"modules.builtin"]); !bytes.Equal(got, pkgBuiltin) {
		t.Errorf("modules.builtin is not the package's")
	}
	t.Logf("image %d bytes, %d records, %d modules; builtin %v; missing %v", len(img1), len(recs), len(set.Modules), set.Builtin, set.Missing)
}

func readRec(t *testing.T, r cpio.Record) []byte {
	t.Helper()
	if r.ReaderAt == nil {
		t.Fatalf("record %q has no content", r.Name)
	}
	b := make([]byte, r.FileSize)
	if _, err := r.ReadAt(b, 0); err != nil && len(b) > 0 {
		t.Fatalf("read %s: %v", r.Name, err)
	}
	return b
}

func hasLine(text, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if sc.Text() == line {
			return true
		}
	}
	return false
}

// TestBootQEMU boots the Debian kernel with an image whose /init is
// testdata/bootcheck: proof that the kernel unpacks the archive, /init runs
// with a console, and the generated modules.alias/modules.dep are enough to
// load virtio-net's driver chain (virtio_pci, then virtio_net and its
// dependencies) by coldplug.
func TestBootQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	k := requireKernel(t)
	qemu := requireTool(t, "qemu-system-x86_64")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	dir := t.TempDir()
	init := filepath.Join(dir, "bootcheck")
	gobuild := exec.CommandContext(ctx, goTool(), "build", "-o", init, "./testdata/bootcheck")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("build bootcheck: %v\n%s", err, out)
	}
	img := filepath.Join(dir, "initramfs.cpio.gz")
	tree, err := OpenModuleTree(k.ModulesDir, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := tree.Closure([]string{"virtio_pci", "virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFile(img, Spec{Init: init, Modules: set}); err != nil {
		t.Fatal(err)
	}
	// A hub with one port: the NIC exists but reaches nothing, and QEMU
	// never touches the host's network.
	cmd := exec.CommandContext(ctx, qemu,
		"-M", "q35", "-m", "256", "-nographic", "-no-reboot", "-accel", "tcg",
		"-kernel", k.Vmlinuz, "-initrd", img,
		"-append", "console=ttyS0 panic=-1 quiet",
		"-nic", "none", "-netdev", "hubport,id=n0,hubid=0",
		"-device", "virtio-net-pci,netdev=n0,romfile=")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	console := string(out)
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, console)
	}
	for _, want := range []string{
		"BOOTCHECK console 5:1",
		"BOOTCHECK loaded kernel/drivers/virtio/virtio_pci.ko",
		"BOOTCHECK loaded kernel/net/core/failover.ko",
		"BOOTCHECK loaded kernel/drivers/net/virtio_net.ko",
		"BOOTCHECK nic eth0 driver virtio_net",
		"BOOTCHECK DONE",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(console, "BOOTCHECK FAIL") || t.Failed() {
		t.Errorf("console:\n%s", console)
	}
}
