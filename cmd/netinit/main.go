// Command netinit is 0-OS's boot-time network init. Run as PID 1 it is the
// init of the initramfs (see boot/pid1 and init.go); run as modprobe (the
// kernel's request_module, through the /run/netinit/modprobe symlink) it
// loads a module; otherwise it is a CLI (usage below, `netinit help`):
//
//	netinit up [flags] [IFACE...]   bring the network up in this namespace
//	netinit status [flags]          show the state (live, or the state file)
//	netinit daemon [--adopt]        the network daemon PID 1 starts at boot
//	netinit probe [flags]           connectivity verdicts per family
//	netinit probe-server [flags]    the reflector for inbound proofs
//	netinit wait-online [flags]     0-OS's "internet" service when baked
//	netinit modprobe [-q] NAME      load a module with its dependencies
//	netinit version                 print the version
//	netinit help                    print the usage
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// version is set by the build (-X main.version=...).
var version = "dev"

func main() {
	if os.Getpid() == 1 {
		runInit() // never returns
	}
	if filepath.Base(os.Args[0]) == "modprobe" { // the kernel's request_module
		os.Exit(cmdModprobe(os.Args[1:]))
	}
	os.Exit(cli(os.Args[1:]))
}

const usage = `netinit — boot-time network init for 0-OS

As PID 1 it is the init of the initramfs. Otherwise:

  netinit up [--oneshot] [--state PATH] [--resolv-conf PATH] [--cmdline STRING]
             [--config PATH] [--timeout DUR] [IFACE...]
        bring the network up with the same engine PID 1 uses, in the current
        network namespace; without --oneshot it keeps the network (renews
        leases, follows RAs) until SIGTERM. Exit: 0 ready, 3 degraded or
        offline (state still written), 2 usage or config error.
  netinit status [--json | --timeline] [--state PATH] [--socket PATH]
        show the network state: live from the daemon's control socket, else
        from the state file (marked STALE when its writer is gone)
  netinit daemon [--adopt]
        the network daemon PID 1 starts at boot (keeps the network after the
        handoff; control socket /run/netinit/ctl.sock): a supervisor that
        starts and restarts its worker (netinit daemon --worker); PID 1 runs
        the worker itself until the handoff, then starts the supervisor with
        --adopt and the worker's pidfd as fd 3
  netinit probe [--json] [--reflector HOST:PORT...] [--target HOST:PORT...]
        connectivity verdicts per family (none, private, public-unverified,
        public-outbound, public-inbound) with the evidence
  netinit probe-server --listen ADDR
        the reflector a public node runs for inbound proofs
        (docs/probe-protocol.md)
  netinit wait-online [--timeout DUR] [--target HOST:PORT]...
        wait until the uplink is up and every probe target (netinit.probe.targets=,
        else runmode='s) takes a TCP connection through it: 0-OS's "internet"
        service in a baked image (docs/release.md). Exit: 0 online, 1 --timeout
        passed, 2 usage
  netinit modprobe [-q] [--] NAME
        load a module or alias with its dependencies (the kernel's modprobe
        helper at boot: /proc/sys/kernel/modprobe is /run/netinit/modprobe)
  netinit version
  netinit help
`

func cli(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "up":
		return cmdUp(args[1:])
	case "status":
		return cmdStatus(args[1:])
	case "daemon":
		return cmdDaemon(args[1:])
	case "probe":
		return cmdProbe(args[1:])
	case "probe-server":
		return cmdProbeServer(args[1:])
	case "wait-online":
		return cmdWaitOnline(args[1:])
	case "modprobe":
		return cmdModprobe(args[1:])
	case "version", "--version", "-v":
		fmt.Println("netinit", version)
		return 0
	case "help", "--help", "-h":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "netinit: unknown command %q\n\n%s", args[0], usage)
	return 2
}
