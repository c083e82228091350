package initramfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// zosBase writes a base image laid out like 0-OS's initramfs: an /init
// script that would switch root to zinit, /sbin/zinit, its own module
// (with index files for the same release) and /etc files; xz-compressed
// as 0-OS ships it. extra records are added as they are.
func zosBase(t *testing.T, extra ...cpio.Record) string {
	t.Helper()
	mod := "lib/modules/6.1.0-99-test/"
	recs := []cpio.Record{
		cpio.Directory("etc", 0o755),
		cpio.StaticFile("etc/hostname", "zos\n", 0o644),
		cpio.StaticFile("init", "#!/bin/sh\nexec switch_root /mnt/root /sbin/zinit init\n", 0o755),
		cpio.Directory("sbin", 0o755),
		cpio.StaticFile("sbin/zinit", "\x7fELF zinit", 0o755),
		cpio.Symlink("bin/sh", "busybox"),
		// 0-initramfs initramfs.sh: "Ensure /run -> /var/run".
		cpio.Directory("var", 0o755),
		cpio.Directory("var/run", 0o755),
		cpio.Symlink("run", "var/run"),
		cpio.StaticFile(mod+"kernel/drivers/zos/zosmod.ko", "zos module", 0o644),
		cpio.StaticFile(mod+"modules.dep", "kernel/drivers/zos/zosmod.ko:\n", 0o644),
		cpio.StaticFile(mod+"modules.alias", "alias zos:* zosmod\n", 0o644),
	}
	recs = append(recs, extra...)
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	must(t, cpio.WriteRecords(w, recs))
	must(t, cpio.WriteTrailer(w))
	var out bytes.Buffer
	zw, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&out)
	must(t, err)
	_, err = zw.Write(raw.Bytes())
	must(t, err)
	must(t, zw.Close())
	p := filepath.Join(t.TempDir(), "zos.cpio.xz")
	must(t, os.WriteFile(p, out.Bytes(), 0o644))
	return p
}

func merged(t *testing.T, recs map[string]cpio.Record, name string) string {
	t.Helper()
	r, ok := recs[name]
	if !ok {
		t.Fatalf("%s missing from the merged image", name)
	}
	return string(readRec(t, r))
}

// TestBaseMerge: netinit baked into a 0-OS-like image keeps every base
// file, keeps the base's /init as /init.base, is /init itself, and merges
// the module indexes of the shared release.
func TestBaseMerge(t *testing.T) {
	tree, err := OpenModuleTree(synthTree(t), "")
	must(t, err)
	set, err := tree.Closure([]string{"virtio_net"})
	must(t, err)
	init := filepath.Join(t.TempDir(), "netinit")
	must(t, os.WriteFile(init, []byte("\x7fELF netinit"), 0o755))
	spec := Spec{Init: init, Modules: set, Base: zosBase(t), Epoch: 1}
	var a, b bytes.Buffer
	_, err = Write(&a, spec)
	must(t, err)
	_, err = Write(&b, spec)
	must(t, err)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two merges differ")
	}
	recs, order, err := ReadImage(a.Bytes())
	must(t, err)
	if got := merged(t, recs, "init"); got != "\x7fELF netinit" {
		t.Errorf("/init is %q, want netinit", got)
	}
	if got := merged(t, recs, "init.base"); !strings.Contains(got, "switch_root") {
		t.Errorf("/init.base is %q, want the base's init", got)
	}
	if got := merged(t, recs, "sbin/zinit"); got != "\x7fELF zinit" {
		t.Errorf("/sbin/zinit is %q", got)
	}
	if r := recs["bin/sh"]; r.Mode&cpio.S_IFMT != cpio.S_IFLNK || merged(t, recs, "bin/sh") != "busybox" {
		t.Errorf("/bin/sh symlink lost: %+v", r.Info)
	}
	if r := recs["run"]; r.Mode&cpio.S_IFMT != cpio.S_IFLNK || merged(t, recs, "run") != "var/run" {
		t.Errorf("/run is not the base's symlink to var/run: %+v", r.Info)
	}
	merged(t, recs, "etc/hostname")
	merged(t, recs, "lib/modules/6.1.0-99-test/kernel/drivers/zos/zosmod.ko")
	merged(t, recs, "lib/modules/6.1.0-99-test/kernel/drivers/net/virtio_net.ko")
	alias := merged(t, recs, "lib/modules/6.1.0-99-test/modules.alias")
	dep := merged(t, recs, "lib/modules/6.1.0-99-test/modules.dep")
	for _, want := range []string{"alias zos:* zosmod\n", "alias virtio:d00000001v* virtio_net\n"} {
		if !strings.Contains(alias, want) {
			t.Errorf("merged modules.alias lacks %q:\n%s", want, alias)
		}
	}
	for _, want := range []string{"kernel/drivers/zos/zosmod.ko:\n", "kernel/drivers/net/virtio_net.ko: "} {
		if !strings.Contains(dep, want) {
			t.Errorf("merged modules.dep lacks %q:\n%s", want, dep)
		}
	}
	for i, n := range order {
		if i > 0 && order[i-1] >= n {
			t.Errorf("records not sorted: %q before %q", order[i-1], n)
		}
	}
}

// TestBaseConflicts: a path both images have with different content fails
// the build, naming every conflict; nothing is overwritten.
func TestBaseConflicts(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "netinit.conf")
	must(t, os.WriteFile(conf, []byte("netinit.timeout=30s\n"), 0o644))
	init := filepath.Join(t.TempDir(), "netinit")
	must(t, os.WriteFile(init, []byte("\x7fELF netinit"), 0o755))
	base := zosBase(t,
		cpio.StaticFile("etc/netinit/netinit.conf", "other\n", 0o644),
		cpio.StaticFile("init.base", "already there", 0o755))
	_, err := Write(&bytes.Buffer{}, Spec{Init: init, Base: base,
		Files: []File{{Src: conf, Dst: "/etc/netinit/netinit.conf"}}})
	if err == nil || !strings.Contains(err.Error(), "init.base") {
		t.Errorf("base with /init.base: err = %v", err)
	}
	base = zosBase(t,
		cpio.StaticFile("etc/netinit/netinit.conf", "other\n", 0o644),
		cpio.Directory("etc/ssl", 0o755))
	ssl := filepath.Join(t.TempDir(), "ssl")
	must(t, os.WriteFile(ssl, []byte("x"), 0o644))
	_, err = Write(&bytes.Buffer{}, Spec{Init: init, Base: base,
		Files: []File{{Src: conf, Dst: "/etc/netinit/netinit.conf"}, {Src: ssl, Dst: "/etc/ssl"}}})
	if err == nil {
		t.Fatal("conflicting base: no error")
	}
	for _, want := range []string{"/etc/netinit/netinit.conf: differs", "/etc/ssl: a directory in the base, a file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// The same file in both is no conflict.
	base = zosBase(t, cpio.StaticFile("etc/netinit/netinit.conf", "netinit.timeout=30s\n", 0o644))
	if _, err := Write(&bytes.Buffer{}, Spec{Init: init, Base: base,
		Files: []File{{Src: conf, Dst: "/etc/netinit/netinit.conf"}}}); err != nil {
		t.Errorf("identical file: %v", err)
	}
}

func TestMergeIndex(t *testing.T) {
	got, err := mergeIndex("modules.dep", []byte("a.ko: b.ko\nb.ko:\n"), []byte("b.ko:\nc.ko: b.ko\n"))
	if err != nil || string(got) != "a.ko: b.ko\nb.ko:\nc.ko: b.ko\n" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := mergeIndex("modules.dep", []byte("a.ko: b.ko\n"), []byte("a.ko: c.ko\n")); err == nil {
		t.Error("different deps of one module: no error")
	}
}

// zosInternet is 0-OS's own zinit service file (qemu/testdata/zosfiles,
// see its PROVENANCE).
func zosInternet(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../qemu/testdata/zosfiles/zos/bootstrap/etc/zinit/internet.yaml")
	must(t, err)
	return b
}

// TestBakeInternet: baking into a base with 0-OS's `internet` service
// rewrites its exec line to netinit's wait-online and says so; every other
// line of the file and every other file of the base stay as they are.
// Without the service nothing of the base changes.
func TestBakeInternet(t *testing.T) {
	init := filepath.Join(t.TempDir(), "netinit")
	must(t, os.WriteFile(init, []byte("\x7fELF netinit"), 0o755))
	stock := zosInternet(t)
	bootstrap := "exec: /sbin/bootstrap\noneshot: true\nlog: stdout # to see the logs on terminal\nafter:\n  - internet"
	for _, tc := range []struct {
		name    string
		service bool
	}{{"with internet", true}, {"without internet", false}} {
		extra := []cpio.Record{cpio.Directory("etc/zinit", 0o755),
			cpio.StaticFile("etc/zinit/bootstrap.yaml", bootstrap, 0o644)}
		if tc.service {
			extra = append(extra, cpio.StaticFile(InternetService, string(stock), 0o644))
		}
		base := zosBase(t, extra...)
		var img bytes.Buffer
		st, err := Write(&img, Spec{Init: init, Base: base})
		must(t, err)
		recs, _, err := ReadImage(img.Bytes())
		must(t, err)
		baseRaw, err := os.ReadFile(base)
		must(t, err)
		baseRecs, _, err := ReadImage(baseRaw)
		must(t, err)
		// Every base file but /init (now /init.base) and the service is
		// byte for byte in the baked image.
		for n, r := range baseRecs {
			n = cpio.Normalize(n)
			if n == "init" || n == InternetService || r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
				continue
			}
			if got := merged(t, recs, n); got != string(readRec(t, r)) {
				t.Errorf("%s: /%s changed: %q", tc.name, n, got)
			}
		}
		if !tc.service {
			if len(st.Baked) != 0 {
				t.Errorf("%s: rewrote %q", tc.name, st.Baked)
			}
			if _, ok := recs[InternetService]; ok {
				t.Errorf("%s: /%s appeared", tc.name, InternetService)
			}
			continue
		}
		if len(st.Baked) != 1 || !strings.Contains(st.Baked[0], "exec internet -> exec /init wait-online") {
			t.Errorf("%s: says %q", tc.name, st.Baked)
		}
		got := merged(t, recs, InternetService)
		t.Logf("baked /%s:\n%s", InternetService, got)
		want := strings.Replace(string(stock), "exec: internet\n", "exec: /init wait-online\n", 1)
		body, ok := strings.CutPrefix(got[strings.Index(got, "exec:"):], want)
		if !ok || body != "" || !strings.HasPrefix(got, "# Baked by netinit") {
			t.Errorf("%s: baked service is not the base's with exec rewritten:\n%s\nwant after the comment:\n%s", tc.name, got, want)
		}
	}
}

// TestBakeInternetRefused: an internet service whose exec cannot be
// rewritten line for line stops the build with the reason.
func TestBakeInternetRefused(t *testing.T) {
	for name, rec := range map[string]cpio.Record{
		"no exec":      cpio.StaticFile(InternetService, "oneshot: true\n", 0o644),
		"two execs":    cpio.StaticFile(InternetService, "exec: internet\nexec: other\n", 0o644),
		"block scalar": cpio.StaticFile(InternetService, "exec: |\n  sh -c internet\n", 0o644),
		"symlink":      cpio.Symlink(InternetService, "/elsewhere.yaml"),
	} {
		recs := map[string]cpio.Record{InternetService: rec}
		if note, err := bakeInternet(recs); err == nil {
			t.Errorf("%s: rewritten (%s)", name, note)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
