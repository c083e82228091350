package qemu_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/threefoldtech/netinit/initramfs"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
)

// observeService runs the zosnode observer (zosnode/observe.go) as a
// oneshot of the test image's own; it does nothing without
// standin.observe=1.
const observeService = "exec: /usr/lib/zosnode/observe\noneshot: true\nlog: stdout\n"

// baseKmod is what 0-OS's image has of kmod, for the base: /bin/kmod
// with /sbin/modprobe a link to it (0-initramfs packages/kmod.sh), here
// Debian's kmod with the libraries it links, and modules of the booted
// kernel's release with depmod's indexes, as 0-initramfs makes them
// (packages/linux-kernel.sh: modules_install, then depmod -a -b): macvlan,
// which the stand-in networkd's npub4 needs and netinit's image does not
// carry. After the handoff the kernel's module helper is this modprobe.
func baseKmod(t *testing.T, e env) []cpio.Record {
	t.Helper()
	kmod, err := exec.LookPath("kmod")
	if err != nil {
		need(t, "kmod (Debian package kmod) is not installed")
	}
	recs := []cpio.Record{cpio.Symlink("sbin/modprobe", "/bin/kmod")}
	add := func(src, dst string) {
		b, err := os.ReadFile(src) // through links: the file itself
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: dst, Mode: cpio.S_IFREG | 0o755}))
	}
	add(kmod, "bin/kmod")
	out, err := exec.Command("ldd", kmod).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", kmod, err)
	}
	// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the
	// interpreter, "/lib64/ld-linux-x86-64.so.2 (0x...)".
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:\S+ => )?(/\S+) \(0x`).FindAllStringSubmatch(string(out), -1) {
		add(m[1], strings.TrimPrefix(m[1], "/"))
	}

	tree, err := initramfs.OpenModuleTree(e.modules, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := tree.Closure([]string{"macvlan"})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules", tree.Release)
	write := func(rel string, b []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range set.Modules {
		b, err := initramfs.ReadModule(m.Src)
		if err != nil {
			t.Fatal(err)
		}
		write(m.Path, b)
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		b, err := os.ReadFile(filepath.Join(e.modules, f))
		if err != nil {
			t.Fatal(err)
		}
		write(f, b)
	}
	if out, err := exec.Command("depmod", "-b", root, "-C", t.TempDir(), tree.Release).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: filepath.ToSlash(rel), Mode: cpio.S_IFREG | 0o644}))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// consoleWatch is a console writer that sends on ch, once, the rest of
// the first line that starts with prefix (ch must have room for it).
type consoleWatch struct {
	prefix string
	ch     chan<- string
	mu     sync.Mutex
	buf    []byte
	sent   bool
}

func (c *consoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	lines, c.buf = splitLines(c.buf, p)
	for _, line := range lines {
		if rest, ok := strings.CutPrefix(line, c.prefix); ok && !c.sent {
			c.sent = true
			c.ch <- rest
		}
	}
	return len(p), nil
}

// observations are the observer's OBSERVE lines, by key (the last one).
func observations(console string) map[string]string {
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^OBSERVE (\S+?)=(.*)$`).FindAllStringSubmatch(console, -1) {
		out[m[1]] = strings.TrimRight(m[2], "\r")
	}
	return out
}

// bootHandover is the handover subtest of TestBootZOSGraph: a hidden
// one-NIC node whose netinit runs Yggdrasil (peer: the host side's
// yggdrasil-go node at 10.0.2.2:9943) and WireGuard (a peer configured),
// while the stand-ins play 0-OS after the handoff: storaged mounts a
// tmpfs over /var/cache, identityd writes the node's seed there, networkd
// makes ndmz (npub4: a macvlan with a static address on slirp's LAN; the
// kernel loads macvlan through the root's kmod) and runs 0-OS's
// Yggdrasil in it with the same peer; the observer (zosnode/observe.go)
// watches and kills netinit's worker once. When the observer is done with
// that (the node handed over, the worker back: its cue), the host-side
// node pings the node's address 20 times in a row, which can only reach
// it through 0-OS's instance in ndmz.
func bootHandover(t *testing.T, e env, img string) {
	lab.RequireTUN(t)
	lab.Require(t, "chronyd", "ss")
	ns := lab.NewNS(t, "zgygg")
	target := startProbeTarget(t, ns)
	lab.Chrony(t, ns, "127.0.0.1", 0) // the guest's 10.0.2.2:123
	// The peer is the tree's root (zosLab in cmd/netinit says why).
	peer, err := startYggPeer(t, ns, buildYggPeer(t), "-root")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The observer's cue, once it is done with the rest: the node's
	// address.
	cue := make(chan string, 1)
	pinged := make(chan error, 1)
	go func() {
		select {
		case addr := <-cue:
			pinged <- ns.PingInARow(ctx, addr, 20, 90*time.Second)
		case <-ctx.Done():
			pinged <- fmt.Errorf("the node was not handed over")
		}
	}()
	res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: img, NetNS: ns.Name, Memory: "1024",
		Console: &consoleWatch{prefix: "OBSERVE waiting-for-echoes=", ch: cue}, Timeout: 8 * time.Minute,
		Append: fmt.Sprintf("runmode=dev netinit.probe.targets=10.0.2.2:%d netinit.ntp=10.0.2.2 standin.internet.max_elapsed=6s zinit.settle=7m "+
			"netinit.ygg.peers=tcp://10.0.2.2:9943 netinit.ygg.multicast=off "+
			"netinit.wg.peer=7544TpIlpuhtcNJzVPUupRcePPNFWcFtgYWrQSVo2mo=@10.0.2.2:51820 netinit.wg.address=2001:db8:77::2/64 "+
			"standin.observe=1 standin.networkd.peers=tcp://10.0.2.2:9943 standin.networkd.static=10.0.2.60/24", target.port)})
	cancel()
	// The peer outside reached the node through 0-OS's instance.
	if err := <-pinged; err != nil {
		t.Errorf("the host-side Yggdrasil node through 0-OS's instance: %v\n%s", err, peer.Output())
	}
	if !strings.Contains(res.Console, "the service graph settled") {
		t.Errorf("the graph did not settle")
	}
	svcs := zosServices(t, res.Console)
	requireServices(t, svcs, map[string]string{"observe": "Success starts=1", "internet": "Success starts=1",
		"storaged": "Running", "identityd": "Running", "networkd": "Running"})
	o := observations(res.Console)
	t.Logf("observed: %q", o)
	if o["error"] != "" || o["done"] != "true" {
		t.Fatalf("the observer: error %s, done %q", o["error"], o["done"])
	}
	node := o["node-ygg"]
	// netinit's Yggdrasil moved to the identity's key (its own line), then
	// stepped aside for 0-OS's within 5 s of it holding the address; or,
	// when 0-OS's held it before the daemon's identity poll found the
	// seed, stepped aside at once without ever running that key.
	switched := strings.Contains(res.Console, "yggdrasil: now the 0-OS node identity from /var/cache/modules/identityd/seed.txt: address "+o["boot-ygg"]+" -> "+node)
	aside := strings.Contains(res.Console, "with the node identity /var/cache/modules/identityd/seed.txt, which netinit's (address "+o["boot-ygg"]+") had not switched to yet")
	requireConsole(t, res, "yggdrasil: handed to 0-OS: its own instance (ygg0 in netns ndmz) holds this node's address "+node)
	var overlap int64
	_, err = fmt.Sscan(o["overlap-ms"], &overlap)
	switch {
	case switched == aside:
		t.Errorf("netinit's Yggdrasil switched to the node identity: %v; stepped aside before switching: %v (want one of them)", switched, aside)
	case err != nil || overlap > 5000 || aside && overlap > 0:
		t.Errorf("two instances with the node's key for %s ms (want at most 5000; none when netinit's never switched)", o["overlap-ms"])
	case switched:
		t.Logf("netinit's Yggdrasil switched to the node identity, then was handed over (%d ms with both)", overlap)
	default:
		t.Logf("0-OS's Yggdrasil ran with the node identity before netinit's found it: netinit's stepped aside without switching")
	}
	if o["handover"] != "ndmz/ygg0/"+node || !strings.Contains(o["status"], "handed to 0-OS (ygg0 in netns ndmz, since ") {
		t.Errorf("handover %q, netinit status %s", o["handover"], o["status"])
	}
	if st := res.State; st == nil || st.Yggdrasil != nil || st.YggdrasilHandover == nil || st.YggdrasilHandover.Address != node {
		t.Errorf("the final state does not say handed over: %+v", st)
	}
	// Keys: the same after the cache disk over /var/cache and a worker
	// restart, which does not start Yggdrasil beside 0-OS's.
	if o["after-kill-ygg"] != "handed-over/"+node || o["after-kill-wg"] != o["boot-wg"] || o["after-kill-own-ygg0"] != "false" {
		t.Errorf("after the worker was killed: yggdrasil %s (want handed-over/%s), wireguard %s (was %s), netinit's ygg0 %s",
			o["after-kill-ygg"], node, o["after-kill-wg"], o["boot-wg"], o["after-kill-own-ygg0"])
	}
	// The clock is 0-OS's ntpd's (0-initramfs' ntp service, the stand-in
	// run as ntpd): the worker started after it only measures.
	ntpd := regexp.MustCompile(`zinit: \[[ \d.]+\] ntp: started, pid (\d+)`).FindStringSubmatch(res.Console)
	if ntpd == nil || o["clock"] != fmt.Sprintf(`owner="0-OS's ntpd (pid %s)",set=false,measured=true,server=10.0.2.2,error=""`, ntpd[1]) {
		t.Errorf("the clock after 0-OS's ntpd started (%v): %s", ntpd, o["clock"])
	}
	requireConsole(t, res, "clock: 0-OS's ntpd (pid ", ") keeps the clock from now on: netinit only measures")
	// The module helper is the root's kmod, which loads the base's
	// modules and netinit's alike.
	if o["modprobe-helper"] != "/sbin/modprobe" || o["macvlan-loaded"] != "true" || !strings.Contains(o["kmod-8021q"], "loaded=true,err=<nil>") {
		t.Errorf("module helper %q; macvlan loaded %s; kmod 8021q %s", o["modprobe-helper"], o["macvlan-loaded"], o["kmod-8021q"])
	}
	t.Logf("echo requests seen in ndmz: %s", o["echoes"])
}
