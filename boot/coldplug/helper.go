package coldplug

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The kernel's module helper. PID 1 makes netinit the helper (the
// kernel's request_module() runs `HELPER -q -- NAME`, kernel/kmod.c
// call_modprobe) because the initramfs has no modprobe. The final root
// may have its own: 0-OS's 0-initramfs installs kmod (packages/kmod.sh:
// /sbin/modprobe -> /bin/kmod), whose modprobe.d rules, blacklists and
// options netinit does not apply. Once such a modprobe exists the helper
// is handed back to it (HandBack).
const (
	// HelperSysctl holds the helper's path.
	HelperSysctl = "/proc/sys/kernel/modprobe"
	// RootModprobe is the final root's modprobe, the kernel's default
	// helper (CONFIG_MODPROBE_PATH): kmod takes its mode from argv[0], so
	// the helper must be this name, not the binary it links to.
	RootModprobe = "/sbin/modprobe"
)

// HandBack points the kernel's module helper (the file sysctl) at
// candidate once candidate is an executable file that is not netinit
// (not the file ours resolves to). It acts only while the helper is still
// ours: a helper someone else set is left alone. done is true when there
// is nothing left to do: the helper is handed back (now or before) or is
// not ours; false while candidate is missing or is netinit itself.
func HandBack(sysctl, ours, candidate string) (done bool, err error) {
	b, err := os.ReadFile(sysctl)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil // a kernel without modules has no helper
	}
	if err != nil {
		return false, fmt.Errorf("module helper: %w", err)
	}
	if strings.TrimSpace(string(b)) != ours {
		return true, nil
	}
	fi, err := os.Stat(candidate)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return false, nil
	}
	if self, err := os.Stat(ours); err == nil && os.SameFile(fi, self) {
		return false, nil // netinit under the name modprobe
	}
	if err := os.WriteFile(sysctl, []byte(candidate+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("module helper: handing back to %s: %w", candidate, err)
	}
	return true, nil
}
