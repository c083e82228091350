package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Node is a machine of the lab that mounts as a node's init does: its
// processes run in a namespace of the lab and in mount, UTS and PID
// namespaces of their own, where /run and /var/cache are fresh tmpfs, /etc
// is an overlay whose writes stay in the test's directory (the node's
// /etc/resolv.conf is its own), and /dev/kmsg is /dev/null. So a daemon
// run as at boot (its state in /run/netinit, its keys under /var/cache,
// 0-OS's /run/netns/ndmz) touches nothing of the host's. Its first process
// is a shell, PID 1 of the node: when it is killed at cleanup, the kernel
// kills everything in the node.
type Node struct {
	NS   *NS
	t    testing.TB
	init *Proc
	pid  int // the node's PID 1, as the host sees it
}

// NewNode starts a node in ns. Its PID 1 runs the shell script boot
// (after the mounts), then sleeps until cleanup.
func NewNode(t testing.TB, ns *NS, boot string) *Node {
	t.Helper()
	dir := t.TempDir()
	up, work := filepath.Join(dir, "etc-up"), filepath.Join(dir, "etc-work")
	for _, d := range []string{up, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /var/cache
mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc
mount --bind /dev/null /dev/kmsg
%s
exec sleep 3600
`, up, work, boot)
	n := &Node{NS: ns, t: t}
	n.init = ns.Start("unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--propagation", "private",
		"sh", "-c", script)
	// ip netns exec -> unshare (the same process), whose child is the
	// node's PID 1.
	if !Eventually(10*time.Second, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.init.cmd.Process.Pid, n.init.cmd.Process.Pid))
		if err != nil {
			return false
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false
		}
		n.pid, err = strconv.Atoi(f[0])
		return err == nil
	}) {
		t.Fatalf("lab: node in %s did not start:\n%s", ns.Name, n.init.Output())
	}
	return n
}

// Output is what the node's PID 1 and the processes it started printed.
func (n *Node) Output() string { return n.init.Output() }

// Path is path inside the node, as the host reaches it.
func (n *Node) Path(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", n.pid, path)
}

// enter is the command line that runs args inside the node. Entering a
// mount namespace puts a process at that namespace's root (setns(2)):
// --root and --wd=/ put it at the node's root instead, which is not the
// namespace's when the tests run chrooted (make fresh-check).
func (n *Node) enter(args []string) []string {
	return append([]string{"nsenter", "--target", strconv.Itoa(n.pid), "--mount", "--uts", "--net", "--pid",
		"--root", "--wd=/", "--"}, args...)
}

// Exec runs a command inside the node, bounded by ctx (and 30 s).
func (n *Node) Exec(ctx context.Context, args ...string) (string, error) {
	return run(ctx, n.enter(args)...)
}

// MustExec runs a command inside the node and fails the test on error.
func (n *Node) MustExec(args ...string) string {
	n.t.Helper()
	out, err := n.Exec(context.Background(), args...)
	if err != nil {
		n.t.Fatalf("lab: in node %s: %s: %v\n%s", n.NS.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Start starts a long-running command inside the node; it is stopped with
// the node at cleanup (or by Stop: then only nsenter is killed, and the
// command with the node).
func (n *Node) Start(args ...string) *Proc {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	full := n.enter(args)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	p := &Proc{cmd: cmd, cancel: cancel, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		cancel()
		n.t.Fatalf("lab: start %s in node %s: %v", args[0], n.NS.Name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n.t.Cleanup(p.Stop)
	return p
}
