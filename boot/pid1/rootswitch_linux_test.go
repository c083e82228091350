package pid1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRootIsRootfs(t *testing.T) {
	initramfs := `1 1 0:2 / / rw - rootfs rootfs rw,size=1000k
18 1 0:17 / /proc rw,nosuid,nodev,noexec - proc proc rw
19 1 0:18 / /sys rw - sysfs sysfs rw
`
	// After switch_root the tmpfs is the last mount on "/" (the rootfs
	// under it is hidden from a process rooted in the tmpfs, but it does
	// no harm if a kernel lists it first).
	switched := `1 1 0:2 / / rw - rootfs rootfs rw
25 1 0:21 / / rw - tmpfs tmpfs rw,size=1572864k
18 25 0:17 / /proc rw - proc proc rw
`
	for _, tc := range []struct {
		name, mountinfo string
		want            bool
		err             bool
	}{
		{"initramfs", initramfs, true, false},
		{"switched", switched, false, false},
		{"disk root", "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n", false, false},
		{"no root", "18 1 0:17 / /proc rw - proc proc rw\n", false, true},
		{"garbage", "x\n\n - \n1 2 3\n", false, true},
	} {
		got, err := rootIsRootfs(strings.NewReader(tc.mountinfo))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// copyRoot keeps what the next stage needs of the initramfs: files with
// their modes (set-id bits included) and owners, symlinks, device nodes;
// and it does not descend into mount points or into the target.
func TestCopyRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, mknod, mount)")
	}
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sbin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "init"), []byte("#!netinit\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "sbin", "suid"), []byte("x"), 0o600))
	must(os.Chown(filepath.Join(src, "sbin", "suid"), 123, 456))
	must(unix.Chmod(filepath.Join(src, "sbin", "suid"), 0o4755))
	must(os.Symlink("../init", filepath.Join(src, "sbin", "init")))
	must(os.MkdirAll(filepath.Join(src, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(src, "dev", "console"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))))
	// A mount point inside (like /proc) and the target itself (NewRoot).
	must(os.MkdirAll(filepath.Join(src, "proc"), 0o555))
	must(unix.Mount("tmpfs", filepath.Join(src, "proc"), "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(src, "proc"), unix.MNT_DETACH) })
	must(os.WriteFile(filepath.Join(src, "proc", "hidden"), []byte("x"), 0o644))
	dst := filepath.Join(src, "mnt", "root")
	must(os.MkdirAll(dst, 0o755))

	n, err := copyRoot(src, dst)
	must(err)
	if n < 8 {
		t.Errorf("%d entries copied", n)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "init")); err != nil || string(b) != "#!netinit\n" {
		t.Errorf("init: %q %v", b, err)
	}
	var st unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "sbin", "suid"), &st))
	if st.Mode&0o7777 != 0o4755 || st.Uid != 123 || st.Gid != 456 {
		t.Errorf("suid file: mode %o uid %d gid %d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if to, err := os.Readlink(filepath.Join(dst, "sbin", "init")); err != nil || to != "../init" {
		t.Errorf("symlink: %q %v", to, err)
	}
	must(unix.Lstat(filepath.Join(dst, "dev", "console"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(5, 1) {
		t.Errorf("console: mode %o rdev %d", st.Mode, st.Rdev)
	}
	if fi, err := os.Stat(filepath.Join(dst, "proc")); err != nil || !fi.IsDir() {
		t.Errorf("mount point: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "proc", "hidden")); err == nil {
		t.Error("copied the content of a mount point")
	}
	if _, err := os.Stat(filepath.Join(dst, "mnt", "root")); err == nil {
		t.Error("copied the target into itself")
	}
}
