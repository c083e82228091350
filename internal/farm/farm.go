// Package farm runs a farm of netinit daemons on one LAN and measures what
// the farm costs each node: N network namespaces on one bridge (itself in
// a namespace: the host's network is never touched), a dnsmasq DHCPv4
// server, and in each node `netinit up` (the real binary, kept running as
// at boot) with Yggdrasil on and LAN multicast peering. It reports the
// time until every node has a Yggdrasil address with a peer up, whether
// every node reaches a sample of the others over Yggdrasil (one sweep,
// once the farm has settled), and each daemon's RSS and CPU time from
// /proc. docs/farm.md has results.
package farm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/state"
)

// MaxNodes is the most nodes one farm can have: one DHCP /24
// (192.0.2.0/24, documentation space) with the server and a margin.
const MaxNodes = 240

// Config is one farm run.
type Config struct {
	N        int    // nodes, 1..MaxNodes
	LANPeers int    // netinit.ygg.lan_peers= (-1: not given, the daemon's default)
	Netinit  string // the netinit binary
	Dir      string // work directory (state files, logs); removed unless Keep
	Keep     bool
	// PublicPeer, if set, is the command that runs a public Yggdrasil
	// node listening on the URI and key directory appended to it (see
	// PublicPeerURI). The farm then gets a NAT: the hub masquerades the
	// LAN (192.0.2.0/24) to 198.51.100.1 on a link to that node
	// (198.51.100.2), and every node has it as netinit.ygg.peers=.
	PublicPeer []string
	// Sample is how many other nodes each node pings (default 5).
	Sample int
	// Timeout bounds the wait for every node to be addressed (default
	// 60 s + 2 s per node).
	Timeout time.Duration
	// Settle is the wait between all-addressed and the sweep, after
	// which RSS and CPU are read (default 20 s: the LAN peerings chosen
	// while the nodes were still being heard are dropped after 10 s).
	Settle time.Duration
	// GOGC, if set, is the daemons' GOGC (more frequent GCs make the
	// live heap show in LiveHeapMiB; RSS then is not what a node has).
	GOGC string
	// NeighbourTable, when above the kernel's IPv6 neighbour table cap,
	// raises the cap to it for the run (see growNeighbourTable).
	NeighbourTable int
	Logf           console.Logf
}

// Node is one daemon's result.
type Node struct {
	Index       int
	Addressed   time.Duration // since the farm started; 0 = never
	LANPeers    int           // LAN (link-local) Yggdrasil peers up at the end
	RSSKiB      int64         // VmRSS at the end
	LiveHeapMiB int           // Go heap live after the last GC before the end (-1: none seen)
	CPUAddr     time.Duration // user+system CPU when every node was addressed
	CPU         time.Duration // user+system CPU at the end
	PingOK      int
	PingTotal   int
	Unreachable []int // sampled nodes that did not answer
}

// Result is one farm run.
type Result struct {
	N, LANPeers  int
	AllAddressed time.Duration // 0 = not every node within Timeout
	Addressed    int
	Nodes        []Node
	// NeighbourOverflows is how often the kernel's IPv6 neighbour table
	// was full during the run (see neighbourBudget): anything but 0
	// means lost beacons and peerings that no real farm would see.
	NeighbourOverflows int64
}

// node is a running daemon.
type node struct {
	index int
	ns    string
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
	addr  netip.Addr // Yggdrasil address
}

// farm is what Run set up, for teardown.
type farm struct {
	cfg     Config
	tag     string
	hub     string
	nss     []string
	procs   []*exec.Cmd
	waits   []chan struct{}
	nodes   []*node
	started time.Time
}

// Run builds the farm, measures and tears everything down (on error and
// when ctx ends too, e.g. on SIGINT).
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	if cfg.N < 1 || cfg.N > MaxNodes {
		return nil, fmt.Errorf("farm: %d nodes: want 1..%d", cfg.N, MaxNodes)
	}
	if cfg.Logf == nil {
		cfg.Logf = console.Discard
	}
	if cfg.Sample <= 0 {
		cfg.Sample = 5
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60*time.Second + time.Duration(cfg.N)*2*time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 20 * time.Second
	}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "netinit-farm-"); err != nil {
			return nil, fmt.Errorf("farm: %w", err)
		}
	}
	f := &farm{cfg: cfg, tag: fmt.Sprintf("nf%d", os.Getpid()%100000)}
	defer func() {
		f.teardown()
		if !cfg.Keep {
			os.RemoveAll(cfg.Dir)
		}
	}()
	if cfg.NeighbourTable > 0 {
		restore, err := growNeighbourTable(cfg.NeighbourTable, cfg.Logf)
		if err != nil {
			return nil, fmt.Errorf("farm: %w", err)
		}
		defer restore()
	}
	if w := neighbourBudget(cfg.N, cfg.LANPeers); w != "" {
		cfg.Logf("farm: WARNING: %s", w)
	}
	overflows := neighbourOverflows()
	defer func() {
		if res != nil {
			res.NeighbourOverflows = neighbourOverflows() - overflows
		}
	}()
	if err := f.build(ctx); err != nil {
		return nil, fmt.Errorf("farm: building: %w", err)
	}
	if err := f.start(); err != nil {
		return nil, fmt.Errorf("farm: starting the daemons: %w", err)
	}
	return f.measure(ctx)
}

// ipIn runs a command in namespace ns (the host's when ""), bounded.
func ipIn(ctx context.Context, ns string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addNS creates a namespace with loopback up and its own resolv.conf
// (ip netns exec binds /etc/netns/NAME over /etc: the host's stays).
func (f *farm) addNS(ctx context.Context, name string) error {
	etc := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("# netinit farm "+name+"\n"), 0o644); err != nil {
		return err
	}
	f.nss = append(f.nss, name)
	if err := ipIn(ctx, "", "ip", "netns", "add", name); err != nil {
		return err
	}
	return ipIn(ctx, name, "ip", "link", "set", "lo", "up")
}

// build makes the hub (bridge br0 with 192.0.2.1/24 and dnsmasq) and the
// nodes' namespaces, each with eth0 on the bridge, down as at boot.
func (f *farm) build(ctx context.Context) error {
	f.hub = f.tag + "h"
	if err := f.addNS(ctx, f.hub); err != nil {
		return err
	}
	// No multicast snooping: without an MLD querier on the LAN a
	// snooping bridge may stop forwarding the beacons (ff02::114). No
	// IPv6 on the hub's side (a switch has none): its ports would take
	// IPv6 neighbour entries, see neighbourBudget.
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"ip", "addr", "add", "192.0.2.1/24", "dev", "br0"},
		{"ip", "link", "set", "br0", "up"},
	} {
		if err := ipIn(ctx, f.hub, c...); err != nil {
			return err
		}
	}
	var batch strings.Builder
	for i := range f.cfg.N {
		ns := fmt.Sprintf("%s-%d", f.tag, i)
		if err := f.addNS(ctx, ns); err != nil {
			return err
		}
		fmt.Fprintf(&batch, "link add p%d type veth peer name eth0 netns %s\n", i, ns)
		fmt.Fprintf(&batch, "link set p%d master br0 up\n", i)
		dir := filepath.Join(f.cfg.Dir, fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f.nodes = append(f.nodes, &node{index: i, ns: ns, dir: dir})
	}
	bf := filepath.Join(f.cfg.Dir, "links.batch")
	if err := os.WriteFile(bf, []byte(batch.String()), 0o600); err != nil {
		return err
	}
	if err := ipIn(ctx, f.hub, "ip", "-batch", bf); err != nil {
		return err
	}
	dn := exec.Command("ip", "netns", "exec", f.hub, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=br0", "--bind-interfaces", "--user=root", "--group=root",
		"--dhcp-leasefile="+filepath.Join(f.cfg.Dir, "leases"), "--pid-file="+filepath.Join(f.cfg.Dir, "dnsmasq.pid"),
		"--dhcp-range=192.0.2.10,192.0.2.250,255.255.255.0,1h", "--no-ping",
		"--dhcp-option=option:router,192.0.2.1", "--dhcp-option=option:dns-server,192.0.2.1")
	if _, err := f.spawn(dn, filepath.Join(f.cfg.Dir, "dnsmasq.log")); err != nil {
		return err
	}
	if len(f.cfg.PublicPeer) > 0 {
		return f.buildPublic(ctx)
	}
	return nil
}

// PublicPeerURI is where the public peer listens (198.51.100.0/24 is
// documentation space, RFC 5737).
const PublicPeerURI = "tcp://198.51.100.2:12345"

// buildPublic links the hub to a public namespace through a NAT and
// starts the public peer there.
func (f *farm) buildPublic(ctx context.Context) error {
	pub := f.tag + "p"
	if err := f.addNS(ctx, pub); err != nil {
		return err
	}
	for _, c := range []struct {
		ns   string
		args []string
	}{
		{f.hub, []string{"ip", "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", pub}},
		{f.hub, []string{"ip", "addr", "add", "198.51.100.1/24", "dev", "wan0"}},
		{f.hub, []string{"ip", "link", "set", "wan0", "up"}},
		{f.hub, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
		{f.hub, []string{"nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority srcnat; }; " +
			"add rule ip nat post oifname wan0 masquerade"}},
		{pub, []string{"ip", "addr", "add", "198.51.100.2/24", "dev", "eth0"}},
		{pub, []string{"ip", "link", "set", "eth0", "up"}},
	} {
		if err := ipIn(ctx, c.ns, c.args...); err != nil {
			return err
		}
	}
	dir := filepath.Join(f.cfg.Dir, "public")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	args := append([]string{"netns", "exec", pub}, f.cfg.PublicPeer...)
	_, err := f.spawn(exec.Command("ip", append(args, PublicPeerURI, dir)...), filepath.Join(dir, "log"))
	return err
}

// spawn starts cmd with its output in logPath; teardown ends it. The
// channel it returns is closed when cmd has exited.
func (f *farm) spawn(cmd *exec.Cmd, logPath string) (chan struct{}, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); lf.Close(); close(done) }()
	f.procs = append(f.procs, cmd)
	f.waits = append(f.waits, done)
	return done, nil
}

// start runs `netinit up` (kept running, as the boot daemon) in every
// node: DHCPv4 on eth0, Yggdrasil on, LAN peering bounded as configured.
func (f *farm) start() error {
	line := "ip=eth0:dhcp netinit.ygg=on netinit.ygg.multicast=on"
	if f.cfg.LANPeers >= 0 {
		line += fmt.Sprintf(" netinit.ygg.lan_peers=%d", f.cfg.LANPeers)
	}
	if len(f.cfg.PublicPeer) > 0 {
		line += " netinit.ygg.peers=" + PublicPeerURI
	}
	f.started = time.Now()
	for _, n := range f.nodes {
		n.cmd = exec.Command("ip", "netns", "exec", n.ns, f.cfg.Netinit, "up",
			"--state", filepath.Join(n.dir, "state.json"), "--cmdline", line, "eth0")
		// gctrace: the Go runtime logs each GC with the heap left live
		// (liveHeap): RSS alone depends on where in its GC cycle the
		// daemon is read.
		n.cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
		if f.cfg.GOGC != "" {
			n.cmd.Env = append(n.cmd.Env, "GOGC="+f.cfg.GOGC)
		}
		done, err := f.spawn(n.cmd, filepath.Join(n.dir, "log"))
		if err != nil {
			return err
		}
		n.done = done
	}
	return nil
}

// teardown ends every process (TERM, then KILL after 5 s) and deletes the
// namespaces and their /etc/netns directories. It is bounded.
func (f *farm) teardown() {
	for _, c := range f.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(5 * time.Second)
	for i, done := range f.waits {
		select {
		case <-done:
		case <-deadline:
			_ = f.procs[i].Process.Kill()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, ns := range slices.Backward(f.nss) {
		// Whatever still runs inside (nothing should) goes too.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.CommandContext(ctx, "kill", "-9", pid).Run()
			}
		}
		_ = exec.CommandContext(ctx, "ip", "netns", "del", ns).Run()
		_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
}

// status asks a daemon for its live state (the state file is rewritten
// only every 10 s while the overlays run).
func (n *node) status(ctx context.Context) *state.State {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := control.Call(ctx, filepath.Join(n.dir, "ctl.sock"), "status")
	if err != nil {
		return nil
	}
	return r.State
}

// addressed is the node's Yggdrasil address once it has one and a peer
// up.
func addressed(st *state.State) (netip.Addr, bool) {
	if st == nil || st.Yggdrasil == nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(st.Yggdrasil.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	return a, slices.ContainsFunc(st.Yggdrasil.Peers, func(p state.YggdrasilPeer) bool { return p.Up })
}

// lanPeers counts the Yggdrasil peers up over IPv6 link-local addresses.
func lanPeers(st *state.Yggdrasil) int {
	c := 0
	for _, p := range st.Peers {
		if u, err := url.Parse(p.URI); err == nil && p.Up {
			if ap, err := netip.ParseAddrPort(u.Host); err == nil && ap.Addr().IsLinkLocalUnicast() {
				c++
			}
		}
	}
	return c
}

// measure waits for every node to be addressed, lets the farm settle,
// sweeps the pings and reads the daemons' cost.
func (f *farm) measure(ctx context.Context) (*Result, error) {
	res := &Result{N: f.cfg.N, LANPeers: f.cfg.LANPeers, Nodes: make([]Node, f.cfg.N)}
	for i := range res.Nodes {
		res.Nodes[i].Index = i
	}
	deadline := time.Now().Add(f.cfg.Timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for res.Addressed < f.cfg.N && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		for _, n := range f.nodes {
			select {
			case <-n.done:
				return nil, fmt.Errorf("node %d: netinit exited: %s", n.index, tail(filepath.Join(n.dir, "log")))
			default:
			}
			if n.addr.IsValid() {
				continue
			}
			if a, ok := addressed(n.status(ctx)); ok {
				n.addr = a
				res.Nodes[n.index].Addressed = time.Since(f.started)
				res.Addressed++
			}
		}
	}
	if res.Addressed == f.cfg.N {
		res.AllAddressed = time.Since(f.started)
		f.cfg.Logf("farm: %d nodes addressed in %.1fs", f.cfg.N, res.AllAddressed.Seconds())
	} else {
		f.cfg.Logf("farm: only %d of %d nodes addressed within %v", res.Addressed, f.cfg.N, f.cfg.Timeout)
	}
	for _, n := range f.nodes {
		res.Nodes[n.index].CPUAddr, _ = cpuTime(n.cmd.Process.Pid)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(f.cfg.Settle):
	}
	if err := f.sweep(ctx, res); err != nil {
		return nil, err
	}
	for _, n := range f.nodes {
		r := &res.Nodes[n.index]
		pid := n.cmd.Process.Pid
		var err error
		if r.RSSKiB, err = rss(pid); err != nil {
			return nil, fmt.Errorf("node %d: %w", n.index, err)
		}
		r.LiveHeapMiB = liveHeap(filepath.Join(n.dir, "log"))
		if r.CPU, err = cpuTime(pid); err != nil {
			return nil, fmt.Errorf("node %d: %w", n.index, err)
		}
		if st := n.status(ctx); st != nil && st.Yggdrasil != nil {
			r.LANPeers = lanPeers(st.Yggdrasil)
		}
	}
	return res, nil
}

// targets is the sample node i pings: its successor, the node half the
// farm away, then pseudo-random others (seeded by i: reproducible).
func targets(i, n, sample int) []int {
	var out []int
	add := func(j int) {
		if j != i && !slices.Contains(out, j) && len(out) < sample {
			out = append(out, j)
		}
	}
	add((i + 1) % n)
	add((i + n/2) % n)
	rng := rand.New(rand.NewPCG(uint64(i), uint64(n)))
	for len(out) < min(sample, n-1) {
		add(rng.IntN(n))
	}
	return out
}

// sweep has every addressed node ping its sample once (pingTimeout per
// pair, a few echo requests), 8 nodes at a time.
func (f *farm) sweep(ctx context.Context, res *Result) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 8)
	for _, n := range f.nodes {
		idx := targets(n.index, f.cfg.N, f.cfg.Sample)
		var dst []netip.Addr
		for _, j := range idx {
			dst = append(dst, f.nodes[j].addr) // invalid if never addressed: counts as unreachable
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, err := pingFrom(ctx, n.ns, dst)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %d: %w", n.index, err))
				return
			}
			r := &res.Nodes[n.index]
			for k, good := range ok {
				r.PingTotal++
				if good {
					r.PingOK++
				} else {
					r.Unreachable = append(r.Unreachable, idx[k])
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tail is the end of a log file, for errors.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}
