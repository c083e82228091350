package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/threefoldtech/netinit/boot/coldplug"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/state"
)

// modprobeLink is the path PID 1 writes to /proc/sys/kernel/modprobe: a
// symlink to netinit itself, so that the kernel's request_module() (a
// crypto algorithm such as "crypto-crc32c", an nft expression such as
// "nft-expr-ct", "net-pf-16-proto-12"...) runs `netinit modprobe`. The
// kernel calls it as `<path> -q -- NAME` (kernel/kmod.c:
// call_modprobe), so netinit recognises the mode by its argv[0].
const modprobeLink = "/run/netinit/modprobe"

const modprobeUsage = `usage: netinit modprobe [-q] [-v] [--] NAME
  load module NAME (a module name or an alias such as crypto-crc32c) with
  its dependencies and soft dependencies from /lib/modules/$(uname -r);
  what the kernel runs for request_module(). Exit 0 when loaded (or built
  in), 1 when not.
`

// installModprobe makes netinit the kernel's modprobe helper (PID 1 only).
func installModprobe() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("modprobe helper: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(modprobeLink), 0o755); err != nil {
		return fmt.Errorf("modprobe helper: %w", err)
	}
	os.Remove(modprobeLink)
	if err := os.Symlink(exe, modprobeLink); err != nil {
		return fmt.Errorf("modprobe helper: %w", err)
	}
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte(modprobeLink+"\n"), 0o644); err != nil {
		return fmt.Errorf("modprobe helper: setting /proc/sys/kernel/modprobe: %w", err)
	}
	return nil
}

// handBackModprobe hands the kernel's module helper back to the final
// root's modprobe when one is there that is not netinit (coldplug.HandBack):
// PID 1 does it at the handoff, the daemon later (watchModprobe). It
// reports whether there is nothing left to do.
func handBackModprobe(log *console.Log) bool {
	helper := func() string { b, _ := os.ReadFile(coldplug.HelperSysctl); return strings.TrimSpace(string(b)) }
	before := helper()
	done, err := coldplug.HandBack(coldplug.HelperSysctl, modprobeLink, coldplug.RootModprobe)
	if err != nil {
		log.Logf("%v", err)
		return false
	}
	// Said once: by whoever handed it back (PID 1 at the handoff, or the
	// daemon), not again by a daemon that finds it done.
	if done && before != coldplug.RootModprobe && helper() == coldplug.RootModprobe {
		log.Logf("module helper: handed back to %s (the root's own modprobe, with its modprobe.d rules)", coldplug.RootModprobe)
	}
	return done
}

// ModprobeCheck is how often the daemon looks, after the handoff, for a
// modprobe the final root may get later (a stat and a small read).
const ModprobeCheck = 10 * time.Second

// watchModprobe hands the module helper back once the final root has a
// modprobe of its own (handBackModprobe), looking every ModprobeCheck
// after the handoff (PID 1 is no longer netinit) until ctx ends or there
// is nothing left to do.
func watchModprobe(ctx context.Context, log *console.Log) {
	for {
		if !pid1IsSelf() && handBackModprobe(log) {
			return
		}
		if pause.For(ctx, ModprobeCheck) != nil {
			return
		}
	}
}

// pid1IsSelf reports whether PID 1 runs this binary: the boot has not
// handed off yet.
func pid1IsSelf() bool {
	a, err1 := os.Stat("/proc/1/exe")
	b, err2 := os.Stat("/proc/self/exe")
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// cmdModprobe is `netinit modprobe`: the kernel's modprobe. Its stdio is
// not connected when the kernel runs it, so events go to the kernel log.
// NAME can come from an unprivileged user (a socket family, a filesystem
// type): it is only ever looked up in the image's module index, never used
// as a path, and logged quoted.
func cmdModprobe(args []string) int {
	quiet := false
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			names = append(names, args[i+1:]...)
			i = len(args)
		case a == "-q" || a == "--quiet":
			quiet = true
		case a == "-v" || a == "--verbose" || a == "-b" || a == "--use-blacklist":
		case a == "-h" || a == "--help":
			fmt.Print(modprobeUsage)
			return 0
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(os.Stderr, "netinit modprobe: unsupported option %q\n%s", a, modprobeUsage)
			return 2
		default:
			names = append(names, a)
		}
	}
	// modprobe NAME [PARAM=VALUE...]: module parameters are not supported;
	// the kernel never passes any.
	if len(names) == 0 {
		fmt.Fprint(os.Stderr, modprobeUsage)
		return 2
	}
	name := names[0]
	if len(names) > 1 {
		kmsg(4, "netinit modprobe %q: ignoring module parameters %q", name, names[1:])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := coldplug.Load(ctx, coldplug.Options{}, name)
	if err != nil {
		kmsg(4, "netinit modprobe %q: %v", name, err)
		if !quiet {
			fmt.Fprintf(os.Stderr, "netinit modprobe %q: %v\n", name, err)
		}
		return 1
	}
	if len(m.Loaded) > 0 {
		kmsg(6, "netinit modprobe %q: loaded %s in %dms", name, strings.Join(m.Loaded, " "), m.TookMS)
	}
	if len(m.Failed) > 0 {
		kmsg(4, "netinit modprobe %q: failed: %q", name, m.Failed)
		if !quiet {
			fmt.Fprintf(os.Stderr, "netinit modprobe %q: %q\n", name, m.Failed)
		}
		// A failed soft dependency alone is not a failure (modprobe(8)):
		// the request is met when some module it resolves to is in.
		if len(m.Loaded) == 0 && len(m.Builtin) == 0 {
			return 1
		}
	}
	return 0
}

// kmsg writes one line to the kernel log at the given syslog level.
func kmsg(level int, format string, args ...any) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "<%d>%s\n", level, fmt.Sprintf(format, args...))
}

// features are what netinit needs modules for, by the module whose
// failure takes the feature away.
var features = []struct{ feature, module string }{
	{"firewall", "nf_tables"},
	{"firewall", "nft_ct"},
	{"overlays", "tun"},
	{"vlans", "8021q"},
	{"bonds", "bonding"},
}

// featureProblems turns failed modules a feature depends on into state
// problems ("firewall unavailable: nf_tables failed to load (...)"); the
// raw failures stay in modules.failed.
func featureProblems(m *state.Modules) []string {
	if m == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range features {
		for _, fail := range m.Failed {
			mod, why, _ := strings.Cut(fail, ": ")
			if mod != f.module || seen[f.feature] {
				continue
			}
			seen[f.feature] = true
			out = append(out, fmt.Sprintf("%s unavailable: %s failed to load (%s)", f.feature, mod, why))
		}
	}
	return out
}
