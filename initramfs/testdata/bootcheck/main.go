// Command bootcheck is a stand-in /init for the image builder's QEMU test.
// It checks what the image must provide to a real netinit: a console on
// /dev/console, and a module tree whose modules.alias and modules.dep let
// an init load the NIC driver of the device it finds (coldplug by
// modalias, dependencies loaded first). It prints BOOTCHECK lines and
// reboots (QEMU runs with -no-reboot, so it exits).
package main

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func say(f string, a ...any) { fmt.Printf("BOOTCHECK "+f+"\n", a...) }

func main() {
	defer func() {
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}()
	var st unix.Stat_t
	if err := unix.Stat("/dev/console", &st); err == nil {
		say("console %d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	}
	for _, m := range []struct{ src, dst, fs string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}} {
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			say("FAIL mount %s: %v", m.dst, err)
			return
		}
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	rel := unix.ByteSliceToString(uts.Release[:])
	dir := filepath.Join("/lib/modules", rel)
	deps, err := readDep(filepath.Join(dir, "modules.dep"))
	if err != nil {
		say("FAIL %v", err)
		return
	}
	aliases, err := readAlias(filepath.Join(dir, "modules.alias"))
	if err != nil {
		say("FAIL %v", err)
		return
	}
	loaded := map[string]bool{}
	load := func(p string) {
		if loaded[p] {
			return
		}
		loaded[p] = true
		f, err := os.Open(filepath.Join(dir, p))
		if err != nil {
			say("FAIL open %s: %v", p, err)
			return
		}
		defer f.Close()
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			say("FAIL load %s: %v", p, err)
			return
		}
		say("loaded %s", p)
	}
	// Coldplug a few rounds: loading a bus driver (virtio_pci) creates
	// devices on another bus (virtio) whose drivers come next.
	for round := 0; round < 3; round++ {
		mas, _ := filepath.Glob("/sys/bus/*/devices/*/modalias")
		for _, ma := range mas {
			b, err := os.ReadFile(ma)
			if err != nil {
				continue
			}
			alias := strings.TrimSpace(string(b))
			for _, a := range aliases {
				if ok, _ := path.Match(a.pattern, alias); !ok {
					continue
				}
				for _, p := range deps.paths[a.module] {
					// modules.dep lists dependencies so that loading
					// them from the end satisfies each one.
					d := deps.deps[p]
					for i := len(d) - 1; i >= 0; i-- {
						load(d[i])
					}
					load(p)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 0; i < 50; i++ {
		links, _ := filepath.Glob("/sys/class/net/*/device/driver")
		if len(links) > 0 {
			for _, l := range links {
				drv, _ := os.Readlink(l)
				say("nic %s driver %s", strings.Split(l, "/")[4], filepath.Base(drv))
			}
			say("DONE")
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	say("FAIL no NIC appeared")
}

type depFile struct {
	paths map[string][]string // module name -> path(s)
	deps  map[string][]string // path -> dependency paths
}

func readDep(p string) (depFile, error) {
	df := depFile{paths: map[string][]string{}, deps: map[string][]string{}}
	f, err := os.Open(p)
	if err != nil {
		return df, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := strings.ReplaceAll(strings.TrimSuffix(path.Base(mod), ".ko"), "-", "_")
		df.paths[name] = append(df.paths[name], mod)
		df.deps[mod] = strings.Fields(rest)
	}
	return df, sc.Err()
}

type alias struct{ pattern, module string }

func readAlias(p string) ([]alias, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []alias
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 3 && fs[0] == "alias" {
			out = append(out, alias{fs[1], fs[2]})
		}
	}
	return out, sc.Err()
}
