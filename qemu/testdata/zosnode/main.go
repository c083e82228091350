// Command zosnode plays what a 0-OS image runs after netinit's handoff, in
// the QEMU boot of 0-OS's real service graph (qemu/graph_test.go). It is
// one static program installed under every name the graph needs (the
// multi-call trick of busybox): as /sbin/zinit it is a runner of zinit's
// service files with zinit's semantics (zinit.go); under any other name
// it is the stand-in of that program (standin.go: the table to extend).
//
// Every line it prints for the test starts with a stamp of the boot
// clock ("[  12.345]", seconds since the kernel started, as /proc/uptime):
// the test measures from netinit's "kernel up" to the bootstrap stand-in
// with them.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name == "zinit" {
		os.Exit(zinitMain(os.Args[1:]))
	}
	if name == "zosnode" && len(os.Args) >= 2 {
		switch os.Args[1] {
		case "--names": // the paths the test installs the program under
			for _, p := range programPaths() {
				fmt.Println(p)
			}
			return
		case "--parse": // how the runner reads service files, as JSON
			os.Exit(parseFiles(os.Args[2:]))
		}
	}
	os.Exit(standin(name, os.Args[1:]))
}

// uptime is the boot clock in seconds (CLOCK_BOOTTIME: what /proc/uptime
// and netinit's "kernel up" say).
func uptime() float64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return -1
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// say prints one stamped line: "who: [  12.345] text".
func say(who, format string, args ...any) {
	fmt.Printf("%s: [%8.3f] %s\n", who, uptime(), fmt.Sprintf(format, args...))
}

// shlex splits a command line as zinit does (the Rust shlex crate,
// src/manager/mod.rs:153): words separated by blanks; '…' literal; "…"
// with \" \\ \$ \` escapes; a backslash outside quotes escapes the next
// character. It returns false for an unterminated quote.
func shlex(s string) ([]string, bool) {
	var (
		out   []string
		cur   strings.Builder
		word  bool
		quote rune
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			if quote == '"' && !strings.ContainsRune("\"\\$`\n", r) {
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				esc = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			esc, word = true, true
		case r == '\'' || r == '"':
			quote, word = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if word {
				out = append(out, cur.String())
				cur.Reset()
				word = false
			}
		default:
			cur.WriteRune(r)
			word = true
		}
	}
	if quote != 0 || esc {
		return nil, false
	}
	if word {
		out = append(out, cur.String())
	}
	return out, true
}

// cmdlineValue is the value of key= on the kernel command line, "" when
// absent.
func cmdlineValue(key string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// parseFiles prints {"name": config} for the service files, as the runner
// reads them.
func parseFiles(paths []string) int {
	out := map[string]config{}
	for _, p := range paths {
		name, c, err := loadService(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		out[name] = c
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return 0
}
