// Command nextstage stands in for 0-OS's next stage (zinit) in the QEMU
// handoff test. netinit execs it as PID 1; it checks that the network
// daemon survived the exec and answers on its control socket, asks it to
// renew the DHCP lease, waits for the renewal, with nextstage.kill=1 kills
// the daemon's worker and waits for its restart, prints what it saw
// ("NEXTSTAGE key=value" lines, then the live state between the result
// markers) and powers the VM off.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/state"
)

func main() {
	defer poweroff()
	say := func(k string, v any) { fmt.Printf("NEXTSTAGE %s=%v\n", k, v) }
	say("pid", os.Getpid())
	say("args", strings.Join(os.Args[1:], " "))
	say("root-fstype", rootFSType())
	if st, err := state.Read(state.DefaultPath); err != nil {
		say("state-file", err)
	} else {
		say("state-file-phase", st.Phase)
	}
	status := func() *state.State {
		st, err := liveState()
		if err != nil {
			say("status-error", err)
		}
		return st
	}
	st := status()
	if st == nil {
		return
	}
	say("socket-phase", st.Phase)
	say("daemon-pid", st.PID)
	say("daemon-alive", unix.Kill(st.PID, 0) == nil)
	say("daemon-same-root", sameRoot(st.PID))
	before := renewals(st)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err := control.Call(ctx, control.DefaultPath, "renew")
	cancel()
	say("renew-error", err)
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		if s := status(); s != nil && renewals(s) > before {
			st = s
			say("renewed", true)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	moduleHelper(strings.Contains(string(cmdline), "nextstage.modprobe=later"), say)
	if strings.Contains(string(cmdline), "nextstage.kill=1") {
		killWorker(st.PID, say)
	}
	if strings.Contains(string(cmdline), "nextstage.ygg=1") {
		st = waitYggdrasil(st, status, say)
	}
	if strings.Contains(string(cmdline), "nextstage.bridge=1") {
		st = waitBridge(st, status, say)
	}
	if strings.Contains(string(cmdline), "nextstage.leases=2") {
		st = waitLeases(st, 2, status, say)
	}
	b, _ := json.Marshal(st)
	fmt.Printf("NETINIT-RESULT-BEGIN\n%s\nNETINIT-RESULT-END\n", b)
	if strings.Contains(string(cmdline), "nextstage.ygg=1") && st.Yggdrasil != nil {
		// Stay up while the test reaches this node over the overlay (it
		// stops the VM when done).
		time.Sleep(60 * time.Second)
	}
}

// killWorker kills the network daemon's worker (SIGKILL, pid from the
// state) and waits (bounded) until a new worker answers on the control
// socket, started by the supervisor netinit left to watch it. This
// process does not reap: the killed worker stays a zombie, and the
// supervisor, which is not its parent, must see its exit anyway.
func killWorker(pid int, say func(string, any)) {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		say("kill-error", err)
		return
	}
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		// Not answering (the socket's listener is gone) until the new
		// worker is up: not said, only the outcome is.
		if s, err := liveState(); err == nil && s != nil && s.PID > 1 && s.PID != pid && unix.Kill(s.PID, 0) == nil {
			say("worker-restarted", true)
			say("worker-pid", s.PID)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	say("worker-restarted", false)
}

// The final root's own modprobe and the stand-in for it
// (qemu/testdata/standin/modprobe), which logs each run.
const (
	rootModprobe    = "/sbin/modprobe"
	standinModprobe = "/usr/lib/standin/modprobe"
	standinLog      = "/run/standin-modprobe.log"
)

// moduleHelper says which module helper the kernel has. With later, the
// root gets its own modprobe only now (the stand-in copied to
// /sbin/modprobe), and the network daemon must hand the helper to it
// (bounded wait). When the helper is the root's modprobe, a socket of a
// family no kernel module provides (AF_DECnet, gone since Linux 6.1)
// makes the kernel run it (request_module("net-pf-12")), and what it was
// run with is said.
func moduleHelper(later bool, say func(string, any)) {
	helper := func() string {
		b, _ := os.ReadFile("/proc/sys/kernel/modprobe")
		return strings.TrimSpace(string(b))
	}
	say("modprobe-helper", helper())
	if later {
		b, err := os.ReadFile(standinModprobe)
		if err == nil {
			err = os.WriteFile(rootModprobe, b, 0o755)
		}
		if err != nil {
			say("modprobe-copy-error", err)
			return
		}
		end := time.Now().Add(30 * time.Second)
		for helper() != rootModprobe && time.Now().Before(end) {
			time.Sleep(200 * time.Millisecond)
		}
		say("modprobe-handed-back", helper() == rootModprobe)
	}
	if helper() != rootModprobe {
		return
	}
	if fd, err := unix.Socket(unix.AF_DECnet, unix.SOCK_SEQPACKET, 0); err == nil {
		unix.Close(fd)
	}
	b, err := os.ReadFile(standinLog)
	if err != nil {
		say("modprobe-ran-error", err)
		return
	}
	say("modprobe-ran", strings.TrimSpace(string(b)))
}

// liveState asks the daemon for its state on the control socket.
func liveState() (*state.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := control.Call(ctx, control.DefaultPath, "status")
	if err != nil {
		return nil, err
	}
	return r.State, nil
}

// waitBridge waits (bounded) until the management bridge passes what
// 0-OS's networkd checks before it accepts the node (zosbase
// bootstrap.DefaultBridgeValid: a link zos of type bridge with an IPv6
// default route, IPv6 forwarding off), with the state's uplink_nic as its
// port carrying the bridge's MAC, and says so (bridge-valid=true) or why
// not (bridge-error=...).
func waitBridge(st *state.State, status func() *state.State, say func(string, any)) *state.State {
	end := time.Now().Add(30 * time.Second)
	why := "no state"
	for time.Now().Before(end) {
		if s := status(); s != nil {
			st = s
			if why = bridgeInvalid(s); why == "" {
				say("bridge-valid", true)
				return s
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	say("bridge-error", strconv.Quote(why))
	return st
}

// bridgeInvalid says what is wrong with the zos bridge, "" if nothing.
func bridgeInvalid(st *state.State) string {
	br, err := netlink.LinkByName("zos")
	if err != nil {
		return "zos: " + err.Error()
	}
	if br.Type() != "bridge" {
		return "zos is a " + br.Type()
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{LinkIndex: br.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return "routes: " + err.Error()
	}
	def := false
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && r.Dst.IP.To4() == nil {
			def = true
		}
	}
	if !def {
		return "no IPv6 default route on zos"
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv6/conf/zos/forwarding"); strings.TrimSpace(string(b)) != "0" {
		return "IPv6 forwarding on zos: " + string(b)
	}
	if st.Uplink != "zos" || st.UplinkNIC == "" {
		return fmt.Sprintf("state: uplink %q, uplink_nic %q", st.Uplink, st.UplinkNIC)
	}
	port, err := netlink.LinkByName(st.UplinkNIC)
	if err != nil {
		return err.Error()
	}
	if port.Attrs().MasterIndex != br.Attrs().Index || port.Attrs().HardwareAddr.String() != br.Attrs().HardwareAddr.String() {
		return fmt.Sprintf("%s: master %d (zos %d), MAC %s (zos %s)", st.UplinkNIC, port.Attrs().MasterIndex,
			br.Attrs().Index, port.Attrs().HardwareAddr, br.Attrs().HardwareAddr)
	}
	return ""
}

// waitLeases waits (bounded) until n links hold a DHCPv4 lease: the links
// that are not the uplink converge after the verdict.
func waitLeases(st *state.State, n int, status func() *state.State, say func(string, any)) *state.State {
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		if s := status(); s != nil {
			st = s
			bound := 0
			for _, ifc := range s.Interfaces {
				if ifc.DHCP4 == "bound" {
					bound++
				}
			}
			if bound >= n {
				say("leases", bound)
				return s
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	say("leases-error", "timeout")
	return st
}

// waitYggdrasil waits (bounded) until the daemon's Yggdrasil node has a
// peer up, and says its address.
func waitYggdrasil(st *state.State, status func() *state.State, say func(string, any)) *state.State {
	end := time.Now().Add(45 * time.Second)
	for time.Now().Before(end) {
		if s := status(); s != nil {
			st = s
			if y := s.Yggdrasil; y != nil {
				for _, p := range y.Peers {
					if p.Up {
						say("ygg-address", y.Address)
						return s
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	say("ygg-error", "no Yggdrasil peer up within 45s")
	return st
}

// rootFSType is the filesystem type of the mount on "/" (the last one in
// mountinfo): "rootfs" in the initramfs, "tmpfs" after netinit's root
// switch.
func rootFSType() string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "error: " + err.Error()
	}
	t := "none"
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 1 && f[4] == "/" {
			t = g[0]
		}
	}
	return t
}

// sameRoot says whether process pid sees the same "/" as this process
// (a daemon started before a switch_root would still sit in the deleted
// initramfs).
func sameRoot(pid int) bool {
	var a, b unix.Stat_t
	if unix.Stat("/", &a) != nil || unix.Stat(fmt.Sprintf("/proc/%d/root/", pid), &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func renewals(st *state.State) int {
	n := 0
	for _, ifc := range st.Interfaces {
		n += ifc.DHCP4Renewals
	}
	return n
}

func poweroff() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
