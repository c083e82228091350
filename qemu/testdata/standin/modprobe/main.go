// Command modprobe stands in for the final root's own modprobe (0-OS's
// kmod, /sbin/modprobe -> /bin/kmod) in the QEMU handoff tests: when the
// kernel runs it for request_module() it appends its arguments to
// /run/standin-modprobe.log and fails as kmod does for a module it does
// not have ("modprobe: FATAL: Module NAME not found", exit 1).
package main

import (
	"fmt"
	"os"
	"strings"
)

// Log is where each run's arguments go, one line a run.
const Log = "/run/standin-modprobe.log"

func main() {
	if f, err := os.OpenFile(Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(os.Args[1:], " "))
		f.Close()
	}
	name := "?"
	if len(os.Args) > 1 {
		name = os.Args[len(os.Args)-1]
	}
	fmt.Fprintf(os.Stderr, "modprobe: FATAL: Module %s not found in directory /lib/modules\n", name)
	os.Exit(1)
}
