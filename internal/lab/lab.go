// Package lab builds network-namespace test labs: namespaces joined by veth
// pairs, with real protocol servers (dnsmasq, radvd, ...) started inside
// them. It never touches the host's own network: every command runs in a
// namespace the lab created, every namespace gets its own
// /etc/netns/NAME/resolv.conf before anything runs in it (so a DHCP client
// can't rewrite the host's /etc/resolv.conf), and everything is torn down
// by t.Cleanup.
//
// Go code under test runs in a namespace as a child process: the test
// binary re-executes itself with `ip netns exec` (see Child and RunChild).
// Switching a thread of the test process into a namespace is not used,
// because goroutines started from there would open sockets in the host's
// namespace.
package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Strict reports whether missing prerequisites are failures (make test sets
// NETINIT_LAB=1) rather than reasons to skip.
func Strict() bool { return os.Getenv("NETINIT_LAB") == "1" }

// Require skips (or, under NETINIT_LAB=1, fails) the test unless it runs as
// root and every named tool is on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "lab: needs root for network namespaces")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err2 := os.Stat(tool); err2 != nil {
				Missing(t, "lab: needs %s on PATH (make test installs it)", tool)
			}
		}
	}
}

var seq atomic.Int64

// NS is a network namespace owned by a test.
type NS struct {
	Name string
	t    testing.TB
}

// NewNS creates a namespace with loopback up and its own resolv.conf. The
// name is made unique from tag, the process id and a counter.
func NewNS(t testing.TB, tag string) *NS {
	t.Helper()
	name := fmt.Sprintf("ni%s%d-%d", shorten(tag), os.Getpid()%100000, seq.Add(1))
	etc := filepath.Join("/etc/netns", name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("# netinit lab "+name+"\n"), 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	ns := &NS{Name: name, t: t}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Kill whatever still runs in the namespace, then delete it.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.CommandContext(ctx, "kill", "-9", pid).Run()
			}
		}
		_ = exec.CommandContext(ctx, "ip", "netns", "del", name).Run()
		_ = os.RemoveAll(etc)
	})
	ns.MustRun("ip", "netns", "add", name)
	ns.MustExec("ip", "link", "set", "lo", "up")
	return ns
}

func shorten(tag string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(tag) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
		if b.Len() == 4 {
			break
		}
	}
	return b.String()
}

// MustRun runs a command on the host side (only ever `ip` commands that
// create or move lab objects) and fails the test on error.
func (ns *NS) MustRun(args ...string) string {
	ns.t.Helper()
	out, err := run(context.Background(), args...)
	if err != nil {
		ns.t.Fatalf("lab: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Exec runs a command inside the namespace, bounded by ctx (and 30 s).
func (ns *NS) Exec(ctx context.Context, args ...string) (string, error) {
	return run(ctx, append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// MustExec runs a command inside the namespace and fails the test on error.
func (ns *NS) MustExec(args ...string) string {
	ns.t.Helper()
	out, err := ns.Exec(context.Background(), args...)
	if err != nil {
		ns.t.Fatalf("lab: in %s: %s: %v\n%s", ns.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// PingInARow pings the IPv6 address addr from the namespace: once an echo
// is answered (tried for up to wait, while ctx lasts), n pings in a row,
// 0.2 s apart, must all be answered. The error names the first one lost.
func (ns *NS) PingInARow(ctx context.Context, addr string, n int, wait time.Duration) error {
	if !Eventually(wait, func() bool {
		_, err := ns.Exec(ctx, "ping", "-6", "-c", "1", "-W", "2", addr)
		return err == nil || ctx.Err() != nil
	}) || ctx.Err() != nil {
		return fmt.Errorf("%s does not answer a ping from %s within %v", addr, ns.Name, wait)
	}
	out, err := ns.Exec(ctx, "ping", "-6", "-c", strconv.Itoa(n), "-i", "0.2", "-W", "3", addr)
	for i := 1; i <= n; i++ {
		if !strings.Contains(out, fmt.Sprintf("icmp_seq=%d ", i)) {
			return fmt.Errorf("ping %d of %d to %s lost (%v):\n%s", i, n, addr, err, out)
		}
	}
	return nil
}

func run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// Start starts a long-running command (a server) inside the namespace. It
// is killed at cleanup; its output goes to the returned buffer.
func (ns *NS) Start(args ...string) *Proc {
	ns.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	p := &Proc{cmd: cmd, cancel: cancel, done: make(chan struct{})}
	cmd.Stdout = &p.out
	cmd.Stderr = &p.out
	if err := cmd.Start(); err != nil {
		cancel()
		ns.t.Fatalf("lab: start %s in %s: %v", args[0], ns.Name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ns.t.Cleanup(p.Stop)
	return p
}

// Proc is a process started by Start.
type Proc struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	out    Buffer
}

// Stop kills the process and waits (bounded) for it.
func (p *Proc) Stop() {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// In runs fn on a thread switched into the network namespace name, then
// switches back. What fn opens (a socket) stays in that namespace, whatever
// thread uses it later. A thread that cannot switch back stays locked: the
// runtime ends it with the goroutine.
func In(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	err = fn()
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread()
	}
	return err
}

// Veth joins two namespaces with a veth pair named an (in a) and bn (in b),
// both set up. It returns nothing; use the names.
func Veth(t testing.TB, a *NS, an string, b *NS, bn string) {
	t.Helper()
	tmp := fmt.Sprintf("nv%d-%d", os.Getpid()%100000, seq.Add(1))
	a.MustRun("ip", "link", "add", tmp+"a", "netns", a.Name, "type", "veth", "peer", "name", tmp+"b", "netns", b.Name)
	a.MustExec("ip", "link", "set", tmp+"a", "name", an)
	b.MustExec("ip", "link", "set", tmp+"b", "name", bn)
	a.MustExec("ip", "link", "set", an, "up")
	b.MustExec("ip", "link", "set", bn, "up")
}

// Link joins a and b as Veth does and gives each end its addresses
// (CIDRs); IPv6 ones skip duplicate address detection (nodad), as a
// lab's fixed addresses are unique.
func Link(t testing.TB, a *NS, an string, aAddrs []string, b *NS, bn string, bAddrs []string) {
	t.Helper()
	Veth(t, a, an, b, bn)
	for _, end := range []struct {
		ns    *NS
		name  string
		addrs []string
	}{{a, an, aAddrs}, {b, bn, bAddrs}} {
		for _, addr := range end.addrs {
			args := []string{"ip", "addr", "add", addr, "dev", end.name}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			end.ns.MustExec(args...)
		}
	}
}

// Handle returns a netlink handle bound to the namespace, for asserting on
// what the kernel holds there. It is closed at cleanup.
func (ns *NS) Handle() *netlink.Handle {
	ns.t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		ns.t.Fatalf("lab: netns %s: %v", ns.Name, err)
	}
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		ns.t.Fatalf("lab: netlink in %s: %v", ns.Name, err)
	}
	ns.t.Cleanup(func() { nh.Close(); h.Close() })
	return nh
}

// HoldsAddr reports whether the link ifname in the network namespace
// bound at nsPath ("": the caller's) holds addr: false when there is no
// such namespace or link. Route netlink only (a kernel without xfrm_user
// refuses netlink's default handle). The QEMU boot's guest-side observer
// (qemu/testdata/zosnode) uses it too.
func HoldsAddr(nsPath, ifname string, addr netip.Addr) bool {
	h := &netlink.Handle{}
	if nsPath != "" {
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			return false
		}
		defer ns.Close()
		if h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
			return false
		}
		defer h.Close()
	}
	l, err := h.LinkByName(ifname)
	if err != nil {
		return false
	}
	as, _ := h.AddrList(l, netlink.FAMILY_V6)
	for _, a := range as {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr {
			return true
		}
	}
	return false
}

// GuardResolvConf snapshots the host's /etc/resolv.conf and fails the test
// at cleanup if it changed: the lab must never touch the host's network.
func GuardResolvConf(t testing.TB) {
	t.Helper()
	before, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		after, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !os.IsNotExist(err) {
			t.Errorf("lab: host /etc/resolv.conf: %v", err)
			return
		}
		if !bytes.Equal(before, after) {
			t.Errorf("lab: the host's /etc/resolv.conf changed during the test:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// childEnv marks a re-executed test binary running inside a namespace.
const childEnv = "NETINIT_LAB_CHILD"

// Child reports whether this process is the in-namespace half of a test
// started by RunChild. Such a test does its in-namespace work and writes
// its result with ChildResult.
func Child() bool { return os.Getenv(childEnv) != "" }

// ChildResult writes v (JSON) where RunChild will read it. Call it at most
// once, from the child.
func ChildResult(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("lab: child result: %v", err)
	}
	if err := os.WriteFile(os.Getenv(childEnv), b, 0o600); err != nil {
		t.Fatalf("lab: child result: %v", err)
	}
}

// RunChild re-executes the current test (t.Name()) inside ns with the
// given extra environment, bounded by timeout, and decodes what the child
// passed to ChildResult into out. The child's output is logged.
func RunChild(t *testing.T, ns *NS, timeout time.Duration, env []string, out any) {
	t.Helper()
	runChild(t, ns, nil, timeout, env, out)
}

// RunChildPID is RunChild in a PID namespace of its own, with its own
// /proc: the child sees only the processes it starts, and they are seen
// by no test running beside it (a stand-in daemon found by its name in
// /proc, such as the clock's ntpd). The namespace ends with the child.
func RunChildPID(t *testing.T, ns *NS, timeout time.Duration, env []string, out any) {
	t.Helper()
	Require(t, "unshare")
	runChild(t, ns, []string{"unshare", "--pid", "--fork", "--kill-child", "--mount-proc"}, timeout, env, out)
}

func runChild(t *testing.T, ns *NS, wrap []string, timeout time.Duration, env []string, out any) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	resFile := filepath.Join(t.TempDir(), "child.json")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append(append([]string{"netns", "exec", ns.Name}, wrap...), exe,
		"-test.run=^"+strings.ReplaceAll(regexpQuote(t.Name()), "/", "$/^")+"$", "-test.v", "-test.count=1")
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(append(os.Environ(), childEnv+"="+resFile), env...)
	cmd.WaitDelay = 5 * time.Second
	output, err := cmd.CombinedOutput()
	t.Logf("child in %s:\n%s", ns.Name, output)
	if err != nil {
		t.Fatalf("lab: child test in %s: %v", ns.Name, err)
	}
	b, err := os.ReadFile(resFile)
	if err != nil {
		t.Fatalf("lab: child wrote no result: %v", err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("lab: child result: %v", err)
		}
	}
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Buffer is a bytes.Buffer safe for a writer process and a reader test
// (a command's Stdout and Stderr).
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// RequireTUN skips (or, under NETINIT_LAB=1, fails) the test unless
// /dev/net/tun exists (Yggdrasil's ygg0, wireguard-go).
func RequireTUN(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		Missing(t, "needs /dev/net/tun: %v", err)
	}
}
