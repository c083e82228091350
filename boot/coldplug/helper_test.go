package coldplug

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHandBack: the kernel's module helper goes to the final root's
// modprobe once one exists that is not netinit, and only while the helper
// is still netinit's.
func TestHandBack(t *testing.T) {
	dir := t.TempDir()
	sysctl := filepath.Join(dir, "modprobe.sysctl")
	self := filepath.Join(dir, "netinit")
	ours := filepath.Join(dir, "run-netinit-modprobe") // PID 1's symlink to itself
	kmod := filepath.Join(dir, "kmod")
	modprobe := filepath.Join(dir, "sbin-modprobe")
	for _, f := range []string{self, kmod} {
		if err := os.WriteFile(f, []byte("#!bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(self, ours); err != nil {
		t.Fatal(err)
	}
	set := func(v string) {
		if err := os.WriteFile(sysctl, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	helper := func() string { b, _ := os.ReadFile(sysctl); return strings.TrimSpace(string(b)) }
	step := func(what string, wantDone bool, want string) {
		t.Helper()
		done, err := HandBack(sysctl, ours, modprobe)
		if err != nil || done != wantDone || helper() != want {
			t.Errorf("%s: done %v err %v helper %q; want done %v helper %q", what, done, err, helper(), wantDone, want)
		}
	}
	set(ours)
	step("no modprobe in the root (netinit's own image)", false, ours)
	if err := os.Symlink(self, modprobe); err != nil {
		t.Fatal(err)
	}
	step("the root's modprobe is netinit", false, ours)
	os.Remove(modprobe)
	if err := os.WriteFile(modprobe, []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("a modprobe that is not executable", false, ours)
	os.Remove(modprobe)
	if err := os.Symlink(kmod, modprobe); err != nil { // 0-OS: /sbin/modprobe -> /bin/kmod
		t.Fatal(err)
	}
	step("kmod's modprobe", true, modprobe)
	step("handed back already", true, modprobe)
	set("/usr/local/sbin/other-helper")
	step("a helper someone else set", true, "/usr/local/sbin/other-helper")
}
