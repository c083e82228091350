package guestlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/coldplug"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/pid1"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// inGuest reports whether this process is a guest lab's /init: PID 1 with
// the boot's configuration in its root.
func inGuest() bool {
	if os.Getpid() != 1 {
		return false
	}
	_, err := os.Stat(configPath)
	return err == nil
}

// Guest is the program's view of the guest.
type Guest struct {
	cfg  guestConfig
	prog *Program
	ctx  context.Context
	nics []string // kernel names of the NICs, in Config.NICs' order

	mu     sync.Mutex
	step   string
	uptime map[string]float64
	done   bool
}

// nicsPath keeps the NICs' names for the check after a NodePID1 handoff
// (a NIC moved into a namespace cannot be found by its MAC any more),
// uptimePath the milestones before it.
const (
	nicsPath   = LogDir + "/nics.json"
	uptimePath = LogDir + "/uptime.json"
)

// guest runs the guest side and powers the guest off.
func guest() {
	pid1.Setup(time.Now()) // mounts, the console as stdio, a clean environment
	g := &Guest{uptime: map[string]float64{}}
	after := filepath.Base(os.Args[0]) == filepath.Base(checkPath)
	err := g.load(after)
	if err == nil {
		left := time.Until(g.cfg.Deadline)
		if left > g.cfg.Budget {
			left = g.cfg.Budget - uptime() // the guest's clock is not the host's
		}
		var cancel context.CancelFunc
		g.ctx, cancel = context.WithTimeout(context.Background(), left)
		defer cancel()
		go g.watchdog()
		var doc any
		if doc, err = g.run(after); err == nil {
			g.finish(doc, nil)
		}
		g.mu.Lock()
		err = fmt.Errorf("step %q: %w", g.step, err)
		g.mu.Unlock()
	}
	g.finish(nil, err)
}

// load reads the boot's configuration (and, after the handoff, the NICs).
func (g *Guest) load(after bool) error {
	b, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &g.cfg); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	if g.prog = program(g.cfg.Program); g.prog == nil {
		return fmt.Errorf("no program %q in this binary", g.cfg.Program)
	}
	if !after {
		g.mark("init")
		return os.MkdirAll(LogDir, 0o755)
	}
	if b, err := os.ReadFile(uptimePath); err == nil {
		_ = json.Unmarshal(b, &g.uptime)
	}
	g.mark("node")
	b, err = os.ReadFile(nicsPath)
	if err != nil {
		return fmt.Errorf("after the handoff: %w", err)
	}
	return json.Unmarshal(b, &g.nics)
}

// run is the guest's steps; after: the check after a NodePID1 handoff.
func (g *Guest) run(after bool) (any, error) {
	if !after {
		if err := g.begin("modules and NICs"); err != nil {
			return nil, err
		}
		if err := g.coldplug(); err != nil {
			return nil, err
		}
		if g.prog.Setup != nil {
			if err := g.begin("setup"); err != nil {
				return nil, err
			}
			if err := g.prog.Setup(g); err != nil {
				return nil, err
			}
		}
		g.mark("setup")
		if err := g.begin(g.cfg.Node.String()); err != nil {
			return nil, err
		}
		if err := g.node(); err != nil {
			return nil, err
		}
		g.mark("node")
	}
	if g.prog.Check == nil {
		return nil, nil
	}
	if err := g.begin("check"); err != nil {
		return nil, err
	}
	doc, err := g.prog.Check(g)
	if err != nil {
		return nil, err
	}
	g.mark("check")
	return doc, nil
}

// coldplug loads the NIC drivers and the modules asked for, and finds the
// NICs by their MACs.
func (g *Guest) coldplug() error {
	mods, err := coldplug.Run(g.ctx, coldplug.Options{Extra: g.cfg.Modules, Logf: g.Logf})
	if err != nil {
		return err
	}
	if len(mods.Failed) > 0 {
		return fmt.Errorf("modules failed to load: %v", mods.Failed)
	}
	g.Logf("modules loaded %v, built in %v", mods.Loaded, mods.Builtin)
	g.nics = make([]string, len(g.cfg.MACs))
	err = g.Until(20*time.Second, "the NICs "+strings.Join(g.cfg.MACs, ", "), func() (bool, error) {
		links, err := kernel.Dump(netlink.LinkList)
		if err != nil {
			return false, err
		}
		found := 0
		for i, mac := range g.cfg.MACs {
			for _, l := range links {
				if strings.EqualFold(l.Attrs().HardwareAddr.String(), mac) && l.Type() == "device" {
					g.nics[i] = l.Attrs().Name
					found++
				}
			}
		}
		return found == len(g.cfg.MACs), nil
	})
	if err != nil {
		return err
	}
	g.Logf("NICs %v", g.nics)
	b, _ := json.Marshal(g.nics)
	return os.WriteFile(nicsPath, b, 0o644)
}

// node runs the node side of cfg.Node.
func (g *Guest) node() error {
	switch g.cfg.Node {
	case NodePID1:
		g.mu.Lock()
		b, _ := json.Marshal(g.uptime)
		g.mu.Unlock()
		if err := os.WriteFile(uptimePath, b, 0o644); err != nil {
			return err
		}
		g.Logf("exec %s as PID 1 (its keys on the kernel command line), next stage %s", NetinitPath, checkPath)
		return fmt.Errorf("exec %s: %w", NetinitPath, unix.Exec(NetinitPath, []string{"netinit"}, pid1.Env))
	case NodeUp:
		cmd := exec.Command(NetinitPath, "up", "--cmdline", g.cfg.Cmdline)
		cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdout, os.Stdout, pid1.Env
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan error, 1)
		// Owned by the guest: it reaps `netinit up`, which runs until the
		// guest powers off.
		go func() { exited <- cmd.Wait() }()
		g.Logf("netinit up --cmdline %q: pid %d", g.cfg.Cmdline, cmd.Process.Pid)
		return g.Until(0, "netinit up's verdict in "+state.DefaultPath, func() (bool, error) {
			select {
			case err := <-exited:
				return false, fmt.Errorf("netinit up exited: %v", err)
			default:
			}
			st, err := state.Read(state.DefaultPath)
			return err == nil && st.Phase != state.PhaseStarting, nil
		})
	}
	return nil
}

// watchdog reports the step that overran the guest's budget and powers
// off.
func (g *Guest) watchdog() {
	<-g.ctx.Done()
	g.mu.Lock()
	step := g.step
	g.mu.Unlock()
	// A step that saw the deadline reports first, with its own words.
	time.Sleep(time.Second)
	g.finish(nil, fmt.Errorf("the guest's deadline (%v after QEMU started) passed in step %q", g.cfg.Budget, step))
}

// begin starts a step, unless the deadline passed.
func (g *Guest) begin(step string) error {
	g.mu.Lock()
	g.step = step
	g.mu.Unlock()
	g.Logf("step: %s", step)
	return g.ctx.Err()
}

func (g *Guest) mark(name string) {
	g.mu.Lock()
	g.uptime[name] = uptime().Seconds()
	g.mu.Unlock()
}

// finish prints the report (once) and powers off.
func (g *Guest) finish(doc any, err error) {
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		select {}
	}
	g.done = true
	rep := report{Uptime: g.uptime, Logs: logs()}
	g.mu.Unlock()
	if err == nil && doc != nil {
		if rep.Doc, err = json.Marshal(doc); err != nil {
			err = fmt.Errorf("the document: %w", err)
		}
	}
	if err != nil {
		rep.Error = err.Error()
	}
	b, _ := json.MarshalIndent(rep, "", " ")
	fmt.Printf("\n%s\n%s\n%s\n", ResultBegin, b, ResultEnd)
	if err := pid1.Poweroff(); err != nil {
		fmt.Printf("guestlab: %v\n", err)
	}
	select {}
}

// logs are the logs in LogDir by name.
func logs() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(LogDir)
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			b, _ := os.ReadFile(filepath.Join(LogDir, e.Name()))
			out[name] = string(b)
		}
	}
	return out
}

// uptime is the time since the guest's kernel started.
func uptime() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Logf prints one line on the guest's console.
func (g *Guest) Logf(format string, args ...any) {
	fmt.Printf("guestlab: [%7.3f] %s\n", uptime().Seconds(), fmt.Sprintf(format, args...))
}

// Context ends at the guest's deadline.
func (g *Guest) Context() context.Context { return g.ctx }

// Args decodes the program's arguments (Config.Args) into v.
func (g *Guest) Args(v any) error { return json.Unmarshal(g.cfg.Args, v) }

// NIC is the kernel's name of NIC i (Config.NICs), as found at boot.
func (g *Guest) NIC(i int) string { return g.nics[i] }

// MAC is NIC i's MAC.
func (g *Guest) MAC(i int) net.HardwareAddr {
	mac, _ := net.ParseMAC(g.cfg.MACs[i])
	return mac
}

// State is the node's state file (state.DefaultPath).
func (g *Guest) State() (*state.State, error) { return state.Read(state.DefaultPath) }

// Until polls cond every 50 ms until it holds, it fails, timeout passes
// (0: only the guest's deadline) or the guest's deadline does; what names
// the wait in the error. A netlink dump the kernel interrupted
// (netlink.ErrDumpInterrupted: the table changed while cond read it, as
// when an RA's address arrives) is not a failure: cond runs again.
func (g *Guest) Until(timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx := g.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			ok, err = false, nil
		}
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// NS is a network namespace of the guest: where the node's peers live.
type NS struct {
	Name string
	g    *Guest
}

// NewNS makes the named namespace (/run/netns/NAME), its loopback up.
func (g *Guest) NewNS(name string) (*NS, error) {
	ns := &NS{Name: name, g: g}
	done := make(chan error, 1)
	// NewNamed moves its thread into the namespace: a thread of its own,
	// locked and never switched back, that ends with the goroutine.
	go func() {
		runtime.LockOSThread()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	h, err := ns.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("namespace %s: loopback: %w", name, err)
	}
	return ns, nil
}

// NS is the namespace a Setup made, after a NodePID1 handoff.
func (g *Guest) NS(name string) *NS { return &NS{Name: name, g: g} }

// Do runs fn on a thread in the namespace (lab.In): what fn opens (a
// socket, a child process) belongs to the namespace.
func (ns *NS) Do(fn func() error) error { return lab.In(ns.Name, fn) }

// Handle is a netlink handle in the namespace; close it.
func (ns *NS) Handle() (*netlink.Handle, error) {
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns.Name, err)
	}
	defer h.Close()
	return netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
}

// Take moves the link (of the guest's root namespace: a NIC, g.NIC(i))
// into ns as name, up.
func (ns *NS) Take(link, name string) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return err
	}
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := netlink.LinkSetNsFd(l, int(h)); err != nil {
		return fmt.Errorf("moving %s into %s: %w", link, ns.Name, err)
	}
	nh, err := ns.Handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	if l, err = nh.LinkByName(link); err != nil {
		return err
	}
	if err := nh.LinkSetName(l, name); err != nil {
		return fmt.Errorf("%s: naming %s %s: %w", ns.Name, link, name, err)
	}
	return nh.LinkSetUp(l)
}

// Sysctl writes value to /proc/sys/KEY (slashes) in the namespace.
func (ns *NS) Sysctl(key, value string) error {
	return ns.Do(func() error { return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644) })
}

// Start starts the server argv in the namespace, its output in the log
// name (LogDir/NAME.log). It runs until the guest powers off.
func (ns *NS) Start(name string, argv ...string) error {
	f, err := os.Create(filepath.Join(LogDir, name+".log"))
	if err != nil {
		return err
	}
	cmd := ns.command(context.Background(), argv)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s in %s: %w", argv[0], ns.Name, err)
	}
	// Owned by the guest: it reaps the server and says in its log when
	// it ended.
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "guestlab: %s exited: %v\n", argv[0], err)
		f.Close()
	}()
	ns.g.Logf("%s: %s started in %s (pid %d)", name, strings.Join(argv, " "), ns.Name, cmd.Process.Pid)
	return nil
}

// command is argv in the namespace as `ip netns exec` runs it: with a
// mount namespace of its own where /sys is the namespace's (a program
// that reads /sys/class/net, as netinit does, sees its own links).
func (ns *NS) command(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	cmd.Env = pid1.Env
	return cmd
}

// Run runs argv in the namespace to its end (killed after timeout or at
// the guest's deadline), its output in the log name.
func (ns *NS) Run(name string, timeout time.Duration, argv ...string) error {
	f, err := os.Create(filepath.Join(LogDir, name+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ns.g.ctx, timeout)
	defer cancel()
	cmd := ns.command(ctx, argv)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s in %s: %w", strings.Join(argv, " "), ns.Name, err)
	}
	return nil
}

// Dnsmasq starts dnsmasq on iface as the labs run it (lab.DnsmasqArgs),
// its log name, and returns once it serves.
func (ns *NS) Dnsmasq(name, iface string, args ...string) error {
	dir := filepath.Join(LogDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := ns.Start(name, lab.DnsmasqArgs(iface, dir, args...)...); err != nil {
		return err
	}
	return ns.g.waitLog(name, lab.DnsmasqReady(args))
}

// Radvd starts radvd with conf (the body of radvd.conf) as the labs run
// it, its log name, IPv6 forwarding on in the namespace (radvd wants it).
func (ns *NS) Radvd(name, conf string) error {
	dir := filepath.Join(LogDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := ns.Sysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
		return err
	}
	return ns.Start(name, lab.RadvdArgs(cf, dir)...)
}

// waitLog returns once the log name has the text (at most 10 s).
func (g *Guest) waitLog(name, text string) error {
	err := g.Until(10*time.Second, fmt.Sprintf("%q in the log %s", text, name), func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(LogDir, name+".log"))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return strings.Contains(string(b), text), err
	})
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(LogDir, name+".log"))
		return fmt.Errorf("%w:\n%s", err, b)
	}
	return nil
}
