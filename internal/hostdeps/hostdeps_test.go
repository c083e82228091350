package hostdeps

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const root = "../.."

var (
	scanOnce sync.Once
	scanned  *GoUses
	scanErr  error
)

// goUses scans the module's Go code once for all tests.
func goUses(t *testing.T) *GoUses {
	t.Helper()
	scanOnce.Do(func() { scanned, scanErr = ScanGo(root) })
	if scanErr != nil {
		t.Fatal(scanErr)
	}
	return scanned
}

// TestCovered is the check itself: every program and host file the
// Makefile, the scripts and the Go code use is installed by the package
// lists of the make target that runs it, or is part of a minimal Debian 12,
// or is a prerequisite the README names.
func TestCovered(t *testing.T) {
	r, err := goUses(t).Check(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("a fresh Debian 12 machine would lack these (add them to the Makefile's package lists):\n%s", r)
	}
	t.Logf("%d uses checked", len(r.Uses))
}

// altered writes a copy of the Makefile changed by edit and checks the
// repository against it.
func altered(t *testing.T, edit func(string) string) *Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	changed := edit(string(b))
	if changed == string(b) {
		t.Fatal("the edit changed nothing")
	}
	mk := filepath.Join(t.TempDir(), "Makefile")
	if err := os.WriteFile(mk, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := goUses(t).Check(mk)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func uncovered(r *Report, name string) bool {
	for _, u := range r.Uncovered {
		if u.Name == name {
			return true
		}
	}
	return false
}

// TestRemovedEntry: the check fails, naming the program, when an entry
// goes from a list.
func TestRemovedEntry(t *testing.T) {
	r := altered(t, func(s string) string { return strings.Replace(s, " mkfs.fat:dosfstools", "", 1) })
	if r.OK() || !uncovered(r, "mkfs.fat") {
		t.Fatalf("without mkfs.fat:dosfstools the check should name mkfs.fat:\n%s", r)
	}
	if !strings.Contains(r.String(), "uncovered program mkfs.fat") {
		t.Errorf("the report does not say it:\n%s", r)
	}
}

// TestDefinedLater: a list expanded at once (:=) before a list it names is
// defined loses that list's entries, as DEPS once lost RELEASE_DEPS'.
func TestDefinedLater(t *testing.T) {
	r := altered(t, func(s string) string {
		start := strings.Index(s, "RELEASE_DEPS :=")
		end := start + strings.Index(s[start:], "\n# Debian packages")
		block := s[start:end]
		s = s[:start] + s[end+1:]
		at := strings.Index(s, "FRESH_DEPS :=")
		return s[:at] + block + "\n" + s[at:]
	})
	if len(r.Lint) == 0 || !strings.Contains(r.Lint[0], "DEPS expands $(RELEASE_DEPS) before it is defined") {
		t.Errorf("no lint for DEPS using RELEASE_DEPS before its definition: %q", r.Lint)
	}
	for _, n := range []string{"mkfs.fat", "sfdisk", "mcopy", "/usr/share/OVMF/OVMF_CODE_4M.fd"} {
		if !uncovered(r, n) {
			t.Errorf("%s is not reported uncovered:\n%s", n, r)
		}
	}
}

// TestEveryEntry: each entry of the lists is needed by something the check
// sees, and removing it fails the check naming what needs it.
func TestEveryEntry(t *testing.T) {
	m, err := readMakefile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]string{}
	for _, target := range []string{"deps", "fresh-check"} {
		for c, p := range m.installed(target) {
			entries[c] = p
		}
	}
	if len(entries) < 20 {
		t.Fatalf("only %d entries in the lists: %v", len(entries), entries)
	}
	for c, p := range entries {
		t.Run(c, func(t *testing.T) {
			entry := c + ":" + p
			r := altered(t, func(s string) string { return strings.Replace(s, entry, "", 1) })
			name := c
			if strings.HasPrefix(c, "/usr/bin/") {
				name = strings.TrimPrefix(c, "/usr/bin/") // /usr/bin/kill stands for kill
			}
			if !uncovered(r, name) {
				t.Errorf("without %s nothing is uncovered: the entry is not needed, or the check misses its use\n%s", entry, r)
			}
		})
	}
}

// TestBaseInMinbase checks the base system list against the minbase root
// `make fresh-check` builds (when it has been run here): each program's
// package is one of minbase's, and the root has the program.
func TestBaseInMinbase(t *testing.T) {
	dir := filepath.Join(root, ".cache", "fresh")
	pkgs, err := os.ReadFile(filepath.Join(dir, "bookworm-minbase.packages"))
	if err != nil {
		t.Skipf("no minbase root here (make fresh-check builds it): %v", err)
	}
	have := map[string]bool{}
	for _, p := range strings.Fields(string(pkgs)) {
		have[p] = true
	}
	files, err := tarNames(filepath.Join(dir, "bookworm-minbase.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for c, p := range baseCommands {
		if !have[p] {
			t.Errorf("%s: package %s is not in minbase", c, p)
		}
		if !files["usr/bin/"+c] && !files["usr/sbin/"+c] {
			t.Errorf("%s: not in the minbase root's /usr/bin or /usr/sbin", c)
		}
	}
	for f, p := range baseFiles {
		if !have[p] {
			t.Errorf("%s: package %s is not in minbase", f, p)
		}
		// Debian 12 is merged: /lib is usr/lib.
		name := strings.TrimPrefix(f, "/")
		for _, d := range []string{"lib", "lib64", "bin", "sbin"} {
			if strings.HasPrefix(name, d+"/") {
				name = "usr/" + name
			}
		}
		if !files[name] && !files[name+"/"] {
			t.Errorf("%s: not in the minbase root", f)
		}
	}
}
