package pid1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
)

// NewRoot is where the tmpfs root is built before the switch, as 0-OS's
// own initramfs /init does (github.com/threefoldtech/0-initramfs,
// config/init/init: "mount -t tmpfs tmpfs /mnt/root -o size=1536M").
const NewRoot = "/mnt/root"

// DefaultRootSize is the tmpfs size 0-OS gives its root.
const DefaultRootSize = "1536M"

// OnInitramfs reports whether / is still the kernel's initramfs (the
// "rootfs" mount). After a switch_root it is the tmpfs, and a re-executed
// init must not switch again.
func OnInitramfs() (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	return rootIsRootfs(f)
}

// rootIsRootfs reads mountinfo (proc(5)): the last mount on "/" is the
// one in effect; its filesystem type follows the " - " separator.
func rootIsRootfs(r io.Reader) (bool, error) {
	fstype := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || f[4] != "/" {
			continue
		}
		fstype = g[0]
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if fstype == "" {
		return false, errors.New("no mount on / in mountinfo")
	}
	return fstype == "rootfs", nil
}

// SwitchToTmpfs does what 0-OS's initramfs /init does before it runs
// zinit: it copies the whole initramfs into a tmpfs of the given size at
// NewRoot, and makes that the root (u-root's mount.SwitchRoot: /dev,
// /proc, /sys and /run move along, the initramfs' files are deleted to
// give their memory back) and execs init there — this same binary again,
// as PID 1, which finds itself on the tmpfs and goes on with the boot.
// Everything netinit starts afterwards (the network daemon, its state and
// socket in /run/netinit) lives in the root the next stage sees; a
// switch_root after the daemon started would leave it in a deleted tree.
//
// It returns only when the switch did not happen (the caller goes on in
// the initramfs, which still works, and says so).
func SwitchToTmpfs(log *console.Log, size, init string) error {
	start := time.Now()
	if err := os.MkdirAll(NewRoot, 0o755); err != nil {
		return fmt.Errorf("root switch: %w", err)
	}
	if err := unix.Mount("tmpfs", NewRoot, "tmpfs", 0, "mode=0755,size="+size); err != nil {
		return fmt.Errorf("root switch: mount tmpfs (size=%s) on %s: %w", size, NewRoot, err)
	}
	n, err := copyRoot("/", NewRoot)
	if err != nil {
		_ = unix.Unmount(NewRoot, unix.MNT_DETACH)
		return fmt.Errorf("root switch: copying the initramfs: %w", err)
	}
	if _, err := os.Stat(filepath.Join(NewRoot, init)); err != nil {
		_ = unix.Unmount(NewRoot, unix.MNT_DETACH)
		return fmt.Errorf("root switch: %s missing in the copy: %w", init, err)
	}
	log.Logf("root switch: initramfs copied to a %s tmpfs (%d files, %.0fms); switching root and starting %s again there",
		size, n, float64(time.Since(start).Microseconds())/1000, init)
	// SwitchRoot deletes the initramfs' files before it execs; it returns
	// only if something failed, and then most likely after the delete:
	// nothing to undo.
	return fmt.Errorf("root switch: %w", mount.SwitchRoot(NewRoot, init))
}

// copyRoot copies the tree at src into dst, staying on src's filesystem
// (mount points such as /proc are created empty) and skipping dst itself.
// Modes and owners are kept; device nodes are made again. It returns how
// many entries it copied.
func copyRoot(src, dst string) (int, error) {
	var rootSt unix.Stat_t
	if err := unix.Lstat(src, &rootSt); err != nil {
		return 0, err
	}
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if p == dst {
			return fs.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		mode := st.Mode & 0o7777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if rel != "." {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			}
			if err := finish(target, st, mode); err != nil {
				return err
			}
			if st.Dev != rootSt.Dev {
				return fs.SkipDir // a mount point: the mount moves, not its content
			}
		case unix.S_IFREG:
			if err := copyFile(p, target); err != nil {
				return err
			}
			if err := finish(target, st, mode); err != nil {
				return err
			}
		case unix.S_IFLNK:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(to, target); err != nil {
				return err
			}
			_ = os.Lchown(target, int(st.Uid), int(st.Gid))
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("mknod %s: %w", target, err)
			}
			if err := finish(target, st, mode); err != nil {
				return err
			}
		default:
			return nil // sockets: nothing to copy
		}
		n++
		return nil
	})
	return n, err
}

// finish gives a copied entry its owner and mode (after the owner: chown
// clears set-id bits).
func finish(path string, st unix.Stat_t, mode uint32) error {
	if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(path, mode)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
