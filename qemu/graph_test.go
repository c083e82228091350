package qemu_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/threefoldtech/netinit/initramfs"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
)

// TestZOSFilesProvenance: every file under testdata/zosfiles is listed in
// its PROVENANCE with the sha256 it has.
func TestZOSFilesProvenance(t *testing.T) {
	dir := filepath.Join("testdata", "zosfiles")
	b, err := os.ReadFile(filepath.Join(dir, "PROVENANCE"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, " | ")
		if len(f) != 5 || len(f[3]) != 40 {
			t.Fatalf("PROVENANCE line %q: want path | repository | path there | commit | sha256", l)
		}
		listed[f[0]] = f[4]
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "PROVENANCE" {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		if want, ok := listed[rel]; !ok {
			t.Errorf("%s is not in PROVENANCE", rel)
		} else if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, PROVENANCE says %s", rel, got, want)
		}
		delete(listed, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range listed {
		t.Errorf("PROVENANCE lists %s, which is missing", p)
	}
}

var zosNodeBin built

// zosNodeBinary is qemu/testdata/zosnode, built once.
func zosNodeBinary(t *testing.T) string {
	t.Helper()
	return zosNodeBin.get(t, "zosnode", func(dir string) (string, error) {
		bin := filepath.Join(dir, "zosnode")
		return bin, goCmd(t, goBuild(bin, "./qemu/testdata/zosnode")...)
	})
}

// TestZinitParse: the runner reads 0-OS's service files as zinit does
// (the YAML of config.rs' Service: quoted and plain scalars, comments,
// lists at any indentation).
func TestZinitParse(t *testing.T) {
	bin := zosNodeBinary(t)
	files, _ := filepath.Glob("testdata/zosfiles/*/*/etc/zinit/*.yaml")
	more, _ := filepath.Glob("testdata/zosfiles/zos/etc/zinit/*.yaml")
	out, err := exec.Command(bin, append([]string{"--parse"}, append(files, more...)...)...).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	type svc struct {
		Exec, Test, Log string
		Oneshot         bool
		After           []string
	}
	var got map[string]svc
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 17 {
		t.Errorf("%d services, want 17: %v", len(got), got)
	}
	for name, want := range map[string]svc{
		"boot":      {Exec: "true", Log: "ring", Oneshot: true, After: []string{"node-ready", "storaged", "internet"}},
		"bootstrap": {Exec: "/sbin/bootstrap", Log: "stdout", Oneshot: true, After: []string{"internet"}},
		"internet":  {Exec: "internet", Log: "stdout", Oneshot: true, After: []string{"udev-trigger"}},
		"storaged": {Exec: "storaged --broker unix:///var/run/redis.sock", Log: "ring",
			Test: `sh -c "mountpoint /var/cache && zbusdebug --module storage"`, After: []string{"node-ready"}},
		"sshd": {Exec: "/usr/sbin/sshd -D -e", Log: "ring", After: []string{"sshd-setup"}},
		"ntp":  {Exec: "ntpd -n", Log: "ring"},
	} {
		g := got[name]
		if g.Exec != want.Exec || g.Test != want.Test || g.Log != want.Log || g.Oneshot != want.Oneshot || !slices.Equal(g.After, want.After) {
			t.Errorf("%s: %+v, want %+v", name, g, want)
		}
	}
}

// zosService is one ZINIT-SERVICE line of the runner's report.
type zosService struct {
	State, Exit, Waits string
	Starts             int
	First              float64
}

var serviceLine = regexp.MustCompile(`ZINIT-SERVICE name=(\S+) state=(\S+) starts=(\d+) first=(\S+) exit=("(?:[^"\\]|\\.)*") oneshot=\S+ waits=("(?:[^"\\]|\\.)*")`)

// zosServices parses the runner's report.
func zosServices(t *testing.T, console string) map[string]zosService {
	t.Helper()
	out := map[string]zosService{}
	for _, m := range serviceLine.FindAllStringSubmatch(console, -1) {
		n, _ := strconv.Atoi(m[3])
		first, _ := strconv.ParseFloat(m[4], 64)
		exit, _ := strconv.Unquote(m[5])
		waits, _ := strconv.Unquote(m[6])
		out[m[1]] = zosService{State: m[2], Starts: n, First: first, Exit: exit, Waits: waits}
	}
	if len(out) == 0 {
		t.Fatalf("no ZINIT-SERVICE lines on the console")
	}
	return out
}

// requireServices fails the test for each service not in the state want
// gives it (a state, then optionally " starts=N").
func requireServices(t *testing.T, got map[string]zosService, want map[string]string) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		st, starts, _ := strings.Cut(w, " starts=")
		switch {
		case !ok:
			t.Errorf("service %s: not monitored", name)
		case g.State != st:
			t.Errorf("service %s: %s (%s; waits %q), want %s", name, g.State, g.Exit, g.Waits, st)
		case starts != "" && strconv.Itoa(g.Starts) != starts:
			t.Errorf("service %s: started %d times, want %s", name, g.Starts, starts)
		}
	}
}

// TestZinitRunner: the runner keeps zinit's rules, on the host with
// commands of the host: a oneshot's dependents start only after it
// exited 0; a failed oneshot is not run again and its dependents stay
// blocked, as do those of an unknown service and of one that cannot be
// spawned; a long-running service counts as running once its test passed
// (not before), is started again when it exits, and a monitor request on
// the socket adds a service that unblocks its waiters.
func TestZinitRunner(t *testing.T) {
	bin := zosNodeBinary(t)
	lab.Require(t, "sh", "sleep", "test", "touch", "wc")
	dir := t.TempDir()
	zinit := filepath.Join(dir, "zinit")
	if err := os.Symlink(bin, zinit); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "etc")
	if err := os.Mkdir(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	flag := func(n string) string { return filepath.Join(dir, n) }
	for name, yaml := range map[string]string{
		"a": "exec: \"true\"\noneshot: true\n",
		"b": "exec: sh -c \"exit 3\"\noneshot: true\nafter:\n  - a\n",
		"c": "exec: \"true\"\noneshot: true\nafter:\n  - b # failed: never\n",
		"d": "exec: \"true\"\noneshot: true\nafter:\n  - ghost\n",
		// A flow-style list is outside the runner's YAML subset: the file
		// is reported and skipped, as zinit skips one it cannot load.
		"bad": "exec: \"true\"\nafter: [ghost]\n",
		// p ends after 1 s, leaving a flag; o and e's test need it.
		"p": fmt.Sprintf("exec: sh -c 'sleep 1; touch %s'\noneshot: true\n", flag("p")),
		"o": fmt.Sprintf("exec: test -e %s\noneshot: true\nafter:\n    - p\n", flag("p")),
		"e": fmt.Sprintf("exec: sleep 600\ntest: test -e %s\n", flag("p")),
		"f": fmt.Sprintf("exec: test -e %s\noneshot: true\nafter:\n  - e\n", flag("p")),
		// g exits twice, then stays: started three times.
		"g": fmt.Sprintf("exec: sh -c 'echo x >> %[1]s; [ $(wc -l < %[1]s) -ge 3 ] && exec sleep 600; exit 0'\n", flag("g")),
		"x": "exec: /nonexistent/program\n",
		"y": "exec: \"true\"\noneshot: true\nafter:\n  - x\n",
		"q": "exec: \"true\"\noneshot: true\nafter:\n  - late\n",
	} {
		if err := os.WriteFile(filepath.Join(conf, name+".yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "zinit.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, zinit, "-s", sock, "init", "-c", conf, "--settle", "60s")
	var out lab.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// late is monitored through the socket, as bootstrap does.
	if !lab.Eventually(10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatalf("no socket:\n%s", out.String())
	}
	os.WriteFile(filepath.Join(conf, "late.yaml"), []byte("exec: \"true\"\noneshot: true\n"), 0o644)
	if o, err := exec.Command(zinit, "-s", sock, "monitor", "late").CombinedOutput(); err != nil {
		t.Errorf("zinit monitor late: %v %s", err, o)
	}
	if o, err := exec.Command(zinit, "-s", sock, "monitor", "late").CombinedOutput(); err == nil {
		t.Errorf("zinit monitor late twice: accepted: %s", o)
	}
	if err := <-done; err != nil {
		t.Fatalf("runner: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "the service graph settled") {
		t.Errorf("the graph did not settle")
	}
	if !strings.Contains(out.String(), "failed to load config file bad.yaml") {
		t.Errorf("the bad file was not reported")
	}
	requireServices(t, zosServices(t, out.String()), map[string]string{
		"a": "Success starts=1", "b": "Error starts=1", "c": "Blocked starts=0", "d": "Blocked starts=0",
		"p": "Success", "o": "Success starts=1", "e": "Running starts=1", "f": "Success starts=1",
		"g": "Running starts=3", "x": "Failure starts=1", "y": "Blocked starts=0",
		"late": "Success starts=1", "q": "Success starts=1",
	})
}

// zosBase writes the base image: 0-OS's service files, the runner as
// /sbin/zinit and the stand-ins, kmod with modules of the booted kernel's
// release (baseKmod), the observer's service file, an /init placeholder
// (0-initramfs' config/init/init is code: not checked in),
// gzip-compressed.
func zosBase(t *testing.T, e env, dir string) string {
	t.Helper()
	bin := zosNodeBinary(t)
	zinit, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	names, err := exec.Command(bin, "--names").Output()
	if err != nil {
		t.Fatal(err)
	}
	recs := []cpio.Record{
		cpio.StaticFile("init", "#!/bin/sh\n# 0-initramfs config/init/init would build the tmpfs root and\n# switch_root /mnt/root /sbin/zinit init here.\n", 0o755),
		cpio.StaticRecord(zinit, cpio.Info{Name: "sbin/zinit", Mode: cpio.S_IFREG | 0o755}),
		cpio.StaticFile("etc/zinit/observe.yaml", observeService, 0o644),
		// 0-initramfs initramfs.sh: "Ensure /run -> /var/run"; its
		// config/init/init copies both into the tmpfs root.
		cpio.Directory("var/run", 0o755),
		cpio.Symlink("run", "var/run"),
	}
	recs = append(recs, baseKmod(t, e)...)
	dirs := map[string]bool{}
	for _, p := range strings.Fields(string(names)) {
		recs = append(recs, cpio.Symlink(strings.TrimPrefix(p, "/"), "/sbin/zinit"))
	}
	add := func(glob, to string) {
		files, _ := filepath.Glob(glob)
		if len(files) == 0 {
			t.Fatalf("no %s", glob)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, cpio.StaticRecord(b, cpio.Info{Name: to + "/" + filepath.Base(f), Mode: cpio.S_IFREG | 0o644}))
		}
	}
	add("testdata/zosfiles/0-initramfs/config/etc/zinit/*.yaml", "etc/zinit")
	add("testdata/zosfiles/zos/bootstrap/etc/zinit/*.yaml", "etc/zinit")
	add("testdata/zosfiles/zos/etc/zinit/*.yaml", "usr/lib/zosnode/flist/etc/zinit")
	for _, r := range recs {
		for d := filepath.Dir(r.Name); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	slices.SortFunc(recs, func(a, b cpio.Record) int { return strings.Compare(a.Name, b.Name) })
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	p := filepath.Join(dir, "zos.cpio.gz")
	if err := os.WriteFile(p, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// zosImages are the baked image and the same image with the base's own
// internet service put back.
type zosImages struct{ baked, stock string }

var zosImagesBuilt built

func bakedZOS(t *testing.T, e env) zosImages {
	t.Helper()
	bin := netinitBinary(t)
	p := zosImagesBuilt.get(t, "the baked 0-OS images", func(dir string) (string, error) {
		base := zosBase(t, e, dir)
		baked := filepath.Join(dir, "baked.cpio.lz4")
		out, err := goCmdOut(t, "run", "./cmd/mkinitramfs", "-base", base, "-compress", "lz4", "-init", bin,
			"-modules-dir", e.modules, "-o", baked)
		if err != nil {
			return "", err
		}
		// The build says what it rewrote.
		if want := "baked: rewrote /etc/zinit/internet.yaml: exec internet -> exec /init wait-online"; !strings.Contains(out, want) {
			return "", fmt.Errorf("mkinitramfs did not say %q:\n%s", want, out)
		}
		return dir, stockImage(baked, filepath.Join(dir, "stock.cpio"))
	})
	return zosImages{baked: filepath.Join(p, "baked.cpio.lz4"), stock: filepath.Join(p, "stock.cpio")}
}

// stockImage writes the baked image with 0-OS's own internet.yaml back in
// place of the rewritten one: the only difference between the two.
func stockImage(baked, out string) error {
	b, err := os.ReadFile(baked)
	if err != nil {
		return err
	}
	recs, order, err := initramfs.ReadImage(b)
	if err != nil {
		return err
	}
	orig, err := os.ReadFile("testdata/zosfiles/zos/bootstrap/etc/zinit/internet.yaml")
	if err != nil {
		return err
	}
	r, ok := recs[initramfs.InternetService]
	if !ok {
		return fmt.Errorf("no %s in the baked image", initramfs.InternetService)
	}
	if bytes.Equal(orig, mustRead(r)) {
		return fmt.Errorf("%s was not rewritten", initramfs.InternetService)
	}
	r.ReaderAt, r.FileSize = bytes.NewReader(orig), uint64(len(orig))
	recs[initramfs.InternetService] = r
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	for _, n := range order {
		if err := w.WriteRecord(recs[n]); err != nil {
			return err
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return err
	}
	return os.WriteFile(out, raw.Bytes(), 0o644)
}

func mustRead(r cpio.Record) []byte {
	b := make([]byte, r.FileSize)
	_, _ = r.ReadAt(b, 0)
	return b
}

// probeTarget is the grid's stand-in: a TCP server in ns, reached from the
// guest through slirp at 10.0.2.2:port. It records the first line of each
// connection ("" for a connect and close).
type probeTarget struct {
	port  int
	mu    sync.Mutex
	lines []string
}

func startProbeTarget(t *testing.T, ns *lab.NS) *probeTarget {
	t.Helper()
	var ln net.Listener
	if err := lab.In(ns.Name, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pt := &probeTarget{port: ln.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
				l, _ := bufio.NewReader(c).ReadString('\n')
				pt.mu.Lock()
				pt.lines = append(pt.lines, strings.TrimSpace(l))
				pt.mu.Unlock()
			}()
		}
	}()
	return pt
}

func (p *probeTarget) saw() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// TestBootZOSGraph boots 0-OS's real service graph on netinit (issue 25):
// on a one-NIC node and on a node with a second NIC on another LAN (its
// own slirp, its own DHCP server, no way to the grid), and once more with
// the base's own internet service in place of the rewrite, whose stand-in
// gives up after standin.internet.max_elapsed= instead of 15 minutes; and
// a one-NIC hidden node whose netinit runs Yggdrasil and WireGuard while
// the stand-ins play 0-OS after the handoff (bootHandover: issue 26).
//
// The base image holds 0-OS's own zinit service files, byte for byte
// (testdata/zosfiles, see its PROVENANCE): 0-initramfs' config/etc/zinit
// and zos' bootstrap/etc/zinit in /etc/zinit, as 0-OS's initramfs has
// them, and the zos etc/zinit files on the path from `internet` to
// networkd and identityd (boot and what it waits for: node-ready, redis,
// storaged; networkd, identityd), from where the bootstrap stand-in
// installs them as the real bootstrap installs them from 0-OS's packages.
// /sbin/zinit is testdata/zosnode: a runner of those files with zinit's
// semantics (zosnode/zinit.go cites the zinit source of each rule) and,
// installed under every other name the files run, the stand-ins of those
// programs (zosnode/standin.go): identityd writes the seed on the tmpfs
// storaged mounts over /var/cache, networkd makes ndmz and runs 0-OS's
// Yggdrasil there (zosnode/networkd.go, yggdrasil.go), and so on. The
// base also has kmod as the root's modprobe, with modules of the booted
// kernel's release (baseKmod). netinit is baked into that base with the
// real baking code (cmd/mkinitramfs -base), which rewrites `internet` to
// run netinit wait-online and remakes kmod's module indexes. The probe target is a TCP server on the host
// side of the first NIC's slirp (10.0.2.2), which records who came.
//
// To give a stand-in another behaviour after the handoff: edit its entry
// in zosnode/standin.go's programs table (a daemon's steps run once at
// start, in order; networkd and identityd have files of their own); a new
// program needs its install path there too (the test links every path to
// the one binary). A service file 0-OS has that is not here yet goes into
// testdata/zosfiles with its PROVENANCE line (TestZOSFilesProvenance
// checks it), under zos/etc/zinit to be installed by the bootstrap
// stand-in. The boot ends when the runner reports the graph settled
// (zinit.settle= bounds it; zinit.stay=1 keeps the VM up for a test that
// stops it itself); the ZINIT-SERVICE lines (zosServices) say how each
// service ended, and netinit's live state is the boot's result.
func TestBootZOSGraph(t *testing.T) {
	e := requireEnv(t)
	lab.Require(t, "ip")
	t.Parallel()
	imgs := bakedZOS(t, e)
	for _, tc := range []struct {
		name     string
		img      string
		extra    []string
		nics     string
		stock    bool
		handover bool
	}{
		{name: "one-nic", img: imgs.baked, nics: "eth0:zos"},
		{name: "two-nics", img: imgs.baked, nics: "eth0:zos,eth1:-", extra: []string{
			"-netdev", "user,id=n1,ipv4=on,ipv6=off,net=10.0.3.0/24",
			"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57"}},
		{name: "stock-internet", img: imgs.stock, stock: true},
		{name: "handover", img: imgs.baked, handover: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.handover {
				bootHandover(t, e, tc.img)
				return
			}
			ns := lab.NewNS(t, "zgraph")
			target := startProbeTarget(t, ns)
			res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: tc.img, NetNS: ns.Name,
				ExtraArgs: tc.extra, Timeout: 180 * time.Second,
				Append: fmt.Sprintf("runmode=dev netinit.ygg=off netinit.probe.targets=10.0.2.2:%d zinit.settle=90s "+
					"standin.internet.max_elapsed=6s", target.port)})
			if !strings.Contains(res.Console, "zinit: [") || !strings.Contains(res.Console, "the service graph settled") {
				t.Fatalf("the runner did not report a settled graph")
			}
			svcs := zosServices(t, res.Console)
			if tc.stock {
				requireStock(t, res, svcs)
				return
			}
			requireBooted(t, res, svcs, target, tc.nics)
		})
	}
}

// requireBooted: 0-OS's graph ran to its end on netinit: internet (netinit
// wait-online) succeeded once, bootstrap ran and found what 0-OS needs,
// and the services it installed run.
func requireBooted(t *testing.T, res *qemu.Result, svcs map[string]zosService, target *probeTarget, nics string) {
	t.Helper()
	requireServices(t, svcs, map[string]string{
		"udevd": "Running", "udev-trigger": "Success", "internet": "Success starts=1", "bootstrap": "Success starts=1",
		"redis": "Running", "node-ready": "Success", "storaged": "Running", "boot": "Success",
		"networkd": "Running", "identityd": "Running", "ntp": "Running", "sshd": "Running",
	})
	for n, s := range svcs {
		if s.State != "Success" && s.State != "Running" {
			t.Errorf("service %s: %s (%s, waits %q)", n, s.State, s.Exit, s.Waits)
		}
	}
	requireConsole(t, res,
		"internet: online after",
		"BOOTSTRAP uplink=zos/eth0",
		"BOOTSTRAP targets-reached=true",
		"BOOTSTRAP openpty=ok:/dev/pts/",
		"BOOTSTRAP run=var/run:state\n",
		"BOOTSTRAP bridges=zos\n",
		"BOOTSTRAP zos-ports=eth0\n",
		"BOOTSTRAP nics="+nics+"\n",
		",others:none\n",
		"BOOTSTRAP monitored=boot,identityd,networkd,node-ready,redis,storaged\n")
	if m := regexp.MustCompile(`BOOTSTRAP devpts=(\S+)`).FindStringSubmatch(res.Console); m == nil || !strings.Contains(m[1], "ptmxmode=666") {
		t.Errorf("devpts on /dev/pts: %v, want it with ptmxmode=666", m)
	}
	if !regexp.MustCompile(`BOOTSTRAP dhcp=netinit-daemon/\d+/bound-on-zos,others:none`).MatchString(res.Console) {
		t.Errorf("DHCP on zos is not netinit's alone")
	}
	if !slices.Contains(target.saw(), "bootstrap via zos") {
		t.Errorf("the probe target never heard from bootstrap through zos: %q", target.saw())
	}
	for _, bad := range []string{"dhcpcd", "udhcpc", "dhcp-zos"} {
		if strings.Contains(res.Console, bad) {
			t.Errorf("the console mentions %s", bad)
		}
	}
	if st := res.State; st == nil || st.Uplink != "zos" || st.UplinkNIC != "eth0" {
		t.Errorf("netinit's live state at the end: %+v", st)
	}
	// From /init (netinit's start, in the kernel's clock) to the bootstrap
	// stand-in's start (the runner's stamp): the done-when of issue 25 is
	// 10 s under TCG. Measured and reported, not asserted (make bench
	// measures speed).
	init := kernelUp.FindStringSubmatch(res.Console) // netinit's first line: /init's start
	if init == nil || svcs["bootstrap"].First <= 0 {
		t.Errorf("no stamps to measure with: init %v, bootstrap %+v", init, svcs["bootstrap"])
		return
	}
	at, _ := strconv.ParseFloat(init[1], 64)
	t.Logf("bootstrap started %.2fs after /init (kernel up %.2fs at /init, %.2fs at bootstrap; accelerator %s)",
		svcs["bootstrap"].First-at, at, svcs["bootstrap"].First, res.Accel)
}

// requireStock: with 0-OS's own internet (its stand-in) on a node netinit
// configured, internet finds no NIC for its bridge, gives up and exits 1,
// zinit does not run it again, and bootstrap never starts.
func requireStock(t *testing.T, res *qemu.Result, svcs map[string]zosService) {
	t.Helper()
	requireServices(t, svcs, map[string]string{
		"internet": "Error starts=1", "bootstrap": "Blocked starts=0", "udev-trigger": "Success", "udevd": "Running",
	})
	if s := svcs["internet"]; s.Exit != "exit 1" {
		t.Errorf("internet ended with %q, want exit 1", s.Exit)
	}
	if s := svcs["bootstrap"]; s.Waits != "internet (Error)" {
		t.Errorf("bootstrap waits for %q, want internet (Error)", s.Waits)
	}
	for _, n := range []string{"boot", "networkd", "identityd"} {
		if _, ok := svcs[n]; ok {
			t.Errorf("%s is monitored: only bootstrap installs it", n)
		}
	}
	requireConsole(t, res, "eth0: error analyzing interface: link is attached to device",
		"failed to bootstrap network: no route with default gateway found")
	if strings.Contains(res.Console, "BOOTSTRAP ") {
		t.Errorf("the bootstrap stand-in ran")
	}
}
