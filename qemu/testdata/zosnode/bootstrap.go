package main

// bootstrap stands in for 0-OS's /sbin/bootstrap (zos bootstrap/bootstrap,
// Rust; bootstrap/etc/zinit/bootstrap.yaml: oneshot, after internet), the
// first of 0-OS's own programs that needs the network: it downloads 0-OS
// from the hub. It reports what 0-OS finds at that point ("BOOTSTRAP
// key=value" lines for the test), then does what the real one does with
// 0-OS's packages: copies their zinit service files into /etc/zinit and
// runs `zinit monitor NAME` for each (bootstrap/src/bootstrap.rs:
// install_package, run_all; src/zinit.rs: monitor), from the image's
// flistDir instead of an flist downloaded from the hub.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/state"
)

// flistDir holds the zos etc/zinit files the test image carries for the
// bootstrap stand-in to install.
const flistDir = "/usr/lib/zosnode/flist/etc/zinit"

func bootstrap([]string) int {
	report := func(k string, v any) { fmt.Printf("BOOTSTRAP %s=%v\n", k, v) }
	report("ran", fmt.Sprintf("%.3f", uptime()))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	rep, err := control.Call(ctx, control.DefaultPath, "status")
	cancel()
	var st *state.State
	if err != nil || rep.State == nil {
		report("netinit-error", fmt.Sprintf("%q", fmt.Sprint(err)))
		st = &state.State{}
	} else {
		st = rep.State
	}
	report("uplink", st.Uplink+"/"+st.UplinkNIC)

	reached := reachTargets(st.Uplink, report)
	report("targets-reached", reached)
	report("openpty", ptyCheck())
	report("devpts", mountOptions("/dev/pts"))
	report("run", runLink())
	report("dhcp", dhcpClients(st))
	links(report)

	names, err := installFlist()
	if err != nil {
		report("flist-error", fmt.Sprintf("%q", err.Error()))
		return 1
	}
	report("monitored", strings.Join(names, ","))
	return 0
}

// runLink says what /run is in the final root (0-initramfs's is a
// symlink to var/run) and whether netinit's state file is found through
// it: "var/run:state" on a root laid out as 0-OS's.
func runLink() string {
	to, err := os.Readlink("/run")
	if err != nil {
		to = "not-a-symlink"
	}
	if _, err := os.Stat(state.DefaultPath); err != nil {
		return to + ":no-state"
	}
	return to + ":state"
}

// reachTargets connects to every probe target (netinit.probe.targets=)
// through the uplink only, and says hello so that the server knows who
// came.
func reachTargets(uplink string, report func(string, any)) bool {
	b, _ := os.ReadFile("/proc/cmdline")
	s, _ := cmdline.Load(cmdline.DefaultConfigPath, string(b))
	if len(s.ProbeTargets) == 0 || uplink == "" {
		report("targets-error", fmt.Sprintf("%q", fmt.Sprintf("targets %v, uplink %q", s.ProbeTargets, uplink)))
		return false
	}
	d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), uplink) }); err != nil {
			return err
		}
		return serr
	}}
	ok := true
	for _, t := range s.ProbeTargets {
		c, err := d.Dial("tcp", t)
		if err == nil {
			_, err = fmt.Fprintf(c, "bootstrap via %s\n", uplink)
			c.Close()
		}
		if err != nil {
			report("target", fmt.Sprintf("%q", t+": "+err.Error()))
			ok = false
			continue
		}
		report("target", t+"/reached-via/"+uplink)
	}
	return ok
}

// ptyCheck opens a pseudo-terminal pair as openpty(3) does (/dev/ptmx,
// unlock, /dev/pts/N) and passes a line through it.
func ptyCheck() string {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return "error:" + err.Error()
	}
	defer m.Close()
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		return "error:TIOCGPTN:" + err.Error()
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return "error:TIOCSPTLCK:" + err.Error()
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	sl, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return "error:" + err.Error()
	}
	defer sl.Close()
	if _, err := sl.WriteString("through the pty\n"); err != nil {
		return "error:write:" + err.Error()
	}
	_ = m.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	k, err := m.Read(buf)
	if err != nil || !strings.Contains(string(buf[:k]), "through the pty") {
		return fmt.Sprintf("error:read:%q:%v", buf[:k], err)
	}
	return "ok:" + name
}

// mountOptions are the mount and superblock options of the mount at dir
// (mountinfo), "none" when nothing is mounted there.
func mountOptions(dir string) string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	out := "none"
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 6 && len(g) >= 3 && f[4] == dir {
			out = g[0] + ":" + f[5] + "," + g[2]
		}
	}
	return out
}

// dhcpClients says who serves DHCP on the uplink: netinit's daemon (its
// client bound there) and, as it should be, nothing else: no dhcpcd,
// udhcpc or dhclient process, and no dhcp-* zinit service (zos' internet
// would add dhcp-zos: zosbase pkg/network/dhcp/service.go).
func dhcpClients(st *state.State) string {
	var others []string
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if c := strings.TrimSpace(string(b)); err == nil && slices.Contains([]string{"dhcpcd", "udhcpc", "dhclient"}, c) {
			others = append(others, c+"/"+filepath.Base(filepath.Dir(p)))
		}
	}
	out, err := exec.Command("zinit", "list").Output()
	var services map[string]string
	if err == nil {
		err = json.Unmarshal(out, &services)
	}
	if err != nil {
		others = append(others, "zinit-list-error:"+strings.ReplaceAll(err.Error(), " ", "_"))
	}
	for n := range services {
		if strings.HasPrefix(n, "dhcp-") {
			others = append(others, "zinit-service:"+n)
		}
	}
	if _, err := os.Stat("/etc/zinit/dhcp-zos.yaml"); err == nil {
		others = append(others, "/etc/zinit/dhcp-zos.yaml")
	}
	netinit := "none"
	for _, ifc := range st.Interfaces {
		if ifc.Name == st.Uplink && ifc.DHCP4 == "bound" && st.PID > 0 && unix.Kill(st.PID, 0) == nil {
			netinit = fmt.Sprintf("netinit-daemon/%d/bound-on-%s", st.PID, ifc.Name)
		}
	}
	if len(others) == 0 {
		return netinit + ",others:none"
	}
	slices.Sort(others)
	return netinit + ",others:" + strings.Join(others, ",")
}

// links reports the bridges, the zos bridge's ports, and each NIC's
// master ("-": none).
func links(report func(string, any)) {
	ls, err := netlink.LinkList()
	if err != nil {
		report("links-error", fmt.Sprintf("%q", err.Error()))
		return
	}
	byIndex := map[int]string{}
	for _, l := range ls {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	var bridges, ports, nics []string
	for _, l := range ls {
		a := l.Attrs()
		if l.Type() == "bridge" {
			bridges = append(bridges, a.Name)
		}
		if master := byIndex[a.MasterIndex]; master == "zos" {
			ports = append(ports, a.Name)
		}
		if l.Type() == "device" && a.Name != "lo" {
			master := "-"
			if a.MasterIndex != 0 {
				master = byIndex[a.MasterIndex]
			}
			nics = append(nics, a.Name+":"+master)
		}
	}
	report("bridges", strings.Join(bridges, ","))
	report("zos-ports", strings.Join(ports, ","))
	report("nics", strings.Join(nics, ","))
}

// installFlist copies the package's service files into /etc/zinit and
// asks zinit to monitor each, in name order (bootstrap.rs run_all: a
// service that cannot be monitored is skipped with a warning).
func installFlist() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(flistDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no service files in %s (%v)", flistDir, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join("/etc/zinit", filepath.Base(f)), b, 0o644); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if out, err := exec.Command("zinit", "monitor", name).CombinedOutput(); err != nil {
			say("bootstrap", "failed to monitor service '%s': %v %s", name, err, out)
			continue
		}
		names = append(names, name)
	}
	return names, nil
}
