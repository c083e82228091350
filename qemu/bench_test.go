package qemu_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yggdrasil-network/yggdrasil-go/src/address"

	"github.com/threefoldtech/netinit/boot/overlay/keys"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
)

// TestBenchQEMU is the QEMU part of `make bench`: boots of the cloud
// kernel with netinit's image under QEMU (TCG unless NETINIT_QEMU_ACCEL
// says otherwise), median of NETINIT_BENCH_QEMU_RUNS (default 5: this
// machine's TCG speed swings by up to a second between identical boots)
// each:
//
//   - the hidden node of TestBootHiddenNodeYggdrasil: slirp NAT with IPv4
//     only, a Yggdrasil node on the host side at 10.0.2.2 that, from
//     power-on, starts a TCP connect to the guest's Yggdrasil address
//     every 150 ms. The guest's identity is fixed (netinit.ygg.seed= with
//     a seed baked into the image) so that its address is known before it
//     boots. Reported: power-on -> the verdict, power-on -> the first
//     connect answered over Yggdrasil, and the share of each milestone on
//     the way (kernel, drivers, lease, overlay up, first path); booted
//     twice: on the bare NIC (the setup) and as 0-OS boots it,
//     with the management bridge zos (netinit.bridge=zos, what runmode=
//     implies; not runmode= itself, whose public Yggdrasil peers and NTP
//     servers the VM cannot reach);
//   - a plain boot on the same IPv4-only link without Yggdrasil: power-on
//     -> the verdict.
//
// Power-on is QEMU's start. netinit's milestones are its console stamps
// and the state's timings_ms (both since netinit started), placed on
// QEMU's clock by the first console line's arrival. It reports; it
// asserts nothing about speed. It only runs with NETINIT_BENCH=1.
func TestBenchQEMU(t *testing.T) {
	runs := lab.Bench(t, "NETINIT_BENCH_QEMU_RUNS", 5)
	e := requireEnv(t)
	lab.Require(t, "ip")

	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	// A 0-OS seed file (identityd's version 1.0.0: the JSON string
	// "1.0.0", then the 32-byte ed25519 seed); netinit.ygg.seed= derives
	// the Yggdrasil key from the file's bytes.
	raw := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seed, append([]byte(`"1.0.0"`), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := keys.Ed25519FromSeed(seed, ygg.SeedLabel)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	addr := netip.AddrFrom16(*address.AddrForKey(pub)).String()
	const seedPath = "/etc/netinit/bench.seed"
	img := imageWithNextStage(t, e, seed+":"+seedPath+":0600")
	peer := buildYggPeer(t)

	// The kinds of boot alternate, so that a change of the machine's
	// load weighs on each.
	var hidden, hiddenZOS, plain []benchBoot
	plainImg := image(t, e)
	for i := 0; i < runs; i++ {
		for _, k := range []struct {
			name   string
			bridge string
			into   *[]benchBoot
		}{{"hidden node", "", &hidden}, {"hidden node, bridge zos", benchBridge, &hiddenZOS}} {
			if b, err := benchHidden(t, e, img, peer, " netinit.ygg.seed="+seedPath+" "+k.bridge, addr, hex.EncodeToString(pub)); err != nil {
				lab.BenchMiss(t, "%s run %d: %v", k.name, i, err)
			} else {
				t.Logf("%s run %d: %s", k.name, i, b)
				*k.into = append(*k.into, b)
			}
		}
		if b, err := benchPlain(e, plainImg); err != nil {
			lab.BenchMiss(t, "plain run %d: %v", i, err)
		} else {
			t.Logf("plain run %d: %s", i, b)
			plain = append(plain, b)
		}
	}

	accel := "tcg"
	if len(hidden) > 0 {
		accel = hidden[0].accel
	} else if len(plain) > 0 {
		accel = plain[0].accel
	}
	fmt.Printf("\n%-54s %9s %5s %6s\n", fmt.Sprintf("QEMU (%s, %s, slirp IPv4 only)", accel, filepath.Base(filepath.Dir(e.kernel))), "MEDIAN", "RUNS", "SHARE")
	benchRows("hidden node", hidden)
	benchRows("hidden node, bridge zos (a 0-OS boot)", hiddenZOS)
	benchRow("power-on -> ready, plain boot (netinit.ygg=off)", plain, func(b benchBoot) time.Duration { return b.ready }, 0)
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(strings.Fields(string(b))) >= 3 {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("target (issue 16): power-on -> TCP answered over Yggdrasil <= 6s (TCG); shares are medians of each step; load average %s\n", load)
}

// benchRows prints the rows of one kind of hidden node boot: power-on ->
// ready and -> answered over Yggdrasil, and the share of each milestone.
func benchRows(name string, hidden []benchBoot) {
	firstPath := func(b benchBoot) time.Duration { return b.firstPath }
	total := median(hidden, firstPath)
	fmt.Printf("%s:\n", name)
	benchRow("power-on -> ready (Yggdrasil on)", hidden, func(b benchBoot) time.Duration { return b.ready }, 0)
	benchRow("power-on -> TCP answered over Yggdrasil from 10.0.2.2", hidden, firstPath, 0)
	// The share of each milestone: the time from the one before it.
	steps := []struct {
		name string
		at   func(benchBoot) time.Duration
	}{
		{"  kernel      power-on -> netinit starts", func(b benchBoot) time.Duration { return b.kernel }},
		{"  drivers     -> modules loaded", func(b benchBoot) time.Duration { return b.modules }},
		{"  lease       -> DHCPv4 lease", func(b benchBoot) time.Duration { return b.lease4 }},
		{"  overlay up  -> yggdrasil up", func(b benchBoot) time.Duration { return b.yggUp }},
		{"  first path  -> TCP answered over Yggdrasil", func(b benchBoot) time.Duration { return b.firstPath }},
	}
	for i, st := range steps {
		benchRow(st.name, hidden, func(b benchBoot) time.Duration {
			switch {
			case i == 0:
				return st.at(b)
			case st.at(b) == 0 || steps[i-1].at(b) == 0:
				return 0 // not seen
			}
			return st.at(b) - steps[i-1].at(b)
		}, total)
		if i == 0 {
			benchRow("    of which the kernel's clock ran (kernel up)", hidden, func(b benchBoot) time.Duration { return b.kernelUp }, total)
		}
	}
	peered := func(b benchBoot) time.Duration {
		if b.firstPeer == 0 || b.yggUp == 0 {
			return 0
		}
		return b.firstPeer - b.yggUp
	}
	if count(hidden, peered) > 0 {
		benchRow("    of which -> first peer up (ygg_first_peer)", hidden, peered, total)
	}
}

// benchRow prints the median of f over bs; with total, as a share of it.
func benchRow(name string, bs []benchBoot, f func(benchBoot) time.Duration, total time.Duration) {
	m, pct := median(bs, f), ""
	if total != 0 && m != 0 {
		pct = fmt.Sprintf("%5.0f%%", 100*float64(m)/float64(total))
	}
	fmt.Printf("%-54s %9s %5d %6s\n", name, round(m), count(bs, f), pct)
}

// benchBridge makes a bench boot build 0-OS's management bridge.
const benchBridge = "netinit.bridge=zos"

// benchBoot is one boot's milestones, each since power-on (0: not seen).
type benchBoot struct {
	accel                                 string
	kernel, modules, lease4, yggUp, ready time.Duration
	firstPath                             time.Duration
	verdict                               state.Phase
	// kernelUp is the kernel's uptime when netinit started (its first
	// line says "kernel up 1.23s"): kernel - kernelUp is the firmware
	// and the kernel's decompression.
	kernelUp time.Duration
	// firstPeer is timings_ms.ygg_first_peer, when the state has it.
	firstPeer time.Duration
}

func (b benchBoot) String() string {
	return fmt.Sprintf("%s: kernel %s (kernel up %s), modules %s, lease4 %s, yggdrasil up %s, %s %s, answered over Yggdrasil %s",
		b.accel, round(b.kernel), round(b.kernelUp), round(b.modules), round(b.lease4), round(b.yggUp), b.verdict, round(b.ready), round(b.firstPath))
}

// stampLine is a netinit console line: "netinit: [  1.234] message",
// stamped with the time since netinit started.
var stampLine = regexp.MustCompile(`^netinit: \[\s*(\d+\.\d+)\] (.*)$`)

// kernelUp is in netinit's first line: "starting as PID 1 (kernel up 1.23s)".
var kernelUp = regexp.MustCompile(`\(kernel up (\d+\.\d+)s\)`)

// consoleClock receives the console as the runner streams it and keeps
// netinit's stamped lines with their arrival time.
type consoleClock struct {
	mu    sync.Mutex
	buf   []byte
	lines []stamped
	end   bool // the result's end marker was seen
}

type stamped struct {
	arrived time.Time
	stamp   time.Duration // since netinit started
	text    string
}

func (c *consoleClock) Write(p []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	lines, c.buf = splitLines(c.buf, p)
	for _, line := range lines {
		c.end = c.end || strings.Contains(line, qemu.ResultEnd)
		if m := stampLine.FindStringSubmatch(line); m != nil {
			s, _ := strconv.ParseFloat(m[1], 64)
			c.lines = append(c.lines, stamped{now, time.Duration(s * float64(time.Second)), m[2]})
		}
	}
	return len(p), nil
}

// result reports whether the result document has ended.
func (c *consoleClock) result() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end
}

// first is the first stamped line containing text.
func (c *consoleClock) first(text string) (stamped, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l.text, text) {
			return l, true
		}
	}
	return stamped{}, false
}

// milestones fills b from the boot's result and console: kernel is the
// first console line's arrival (on QEMU's clock, res.InitAt) less its
// netinit stamp; netinit's milestones are kernel + their timings_ms.
// It returns the wallclock time of power-on.
func milestones(b *benchBoot, res *qemu.Result, c *consoleClock) (time.Time, error) {
	first, ok := c.first("")
	if !ok || res.InitAt == 0 {
		return time.Time{}, fmt.Errorf("no netinit line on the console")
	}
	b.accel = res.Accel
	b.kernel = res.InitAt - first.stamp
	if m := kernelUp.FindStringSubmatch(first.text); m != nil {
		up, _ := strconv.ParseFloat(m[1], 64)
		b.kernelUp = time.Duration(up * float64(time.Second))
	}
	st := res.State
	if st == nil {
		return time.Time{}, fmt.Errorf("no state")
	}
	b.verdict = st.Phase
	ms := func(k string) time.Duration {
		v, ok := st.TimingsMS[k]
		if !ok {
			return 0
		}
		return b.kernel + time.Duration(v)*time.Millisecond
	}
	b.modules, b.lease4, b.ready = ms("modules"), ms("lease4"), ms(string(st.Phase))
	b.firstPeer = ms("ygg_first_peer")
	if b.yggUp = ms("ygg_up"); b.yggUp == 0 {
		if l, ok := c.first("yggdrasil: up"); ok {
			b.yggUp = b.kernel + l.stamp
		}
	}
	return first.arrived.Add(-res.InitAt), nil
}

// benchCaptured counts the boots kept by NETINIT_BENCH_CAPTURE.
var benchCaptured int

// benchHidden is one boot of the hidden node: the guest behind slirp's
// IPv4-only NAT, its Yggdrasil peer on the host side probed from
// power-on; extra is added to its command line. The guest's key is
// guestKey (hex) and its address addr; the peer's key sorts below it, as
// the root's of the real network does: a node that joins is never the
// root of Yggdrasil's tree. With NETINIT_BENCH_CAPTURE=DIR, the boot's
// packets (QEMU's filter-dump, pcap) and console are kept in DIR as
// NN.pcap and NN.log, NN counting the boots of the run.
func benchHidden(t *testing.T, e env, img, peer, extra, addr, guestKey string) (benchBoot, error) {
	var b benchBoot
	ns := lab.NewNS(t, "vmbench")
	p, err := startYggPeer(t, ns, peer, "-below", guestKey)
	defer p.Stop()
	if err != nil {
		return b, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*bootTimeout)
	defer cancel()
	probed, probeDone := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(probeDone)
		out, err := ns.Exec(ctx, peer, "-probe", "["+addr+"]:9900", "-every", "150ms", "-for", (2 * bootTimeout).String())
		if err != nil {
			out += err.Error()
		}
		probed <- out
	}()
	defer func() { cancel(); <-probeDone }()
	var c consoleClock
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	opts := hiddenNode(e, img, ns.Name, extra)
	if d := os.Getenv("NETINIT_BENCH_CAPTURE"); d != "" {
		benchCaptured++
		f := filepath.Join(d, fmt.Sprintf("%02d", benchCaptured))
		opts.ExtraArgs = append(opts.ExtraArgs, "-object", "filter-dump,id=capture,netdev=n0,file="+f+".pcap")
		opts.LogFile = f + ".log"
	}
	opts.Console = &c
	done := bootAsync(bctx, opts, nil)
	var probe string
	select {
	case probe = <-probed:
	case bt := <-done:
		return b, fmt.Errorf("the VM ended before the probe was answered: %v\n%s", bt.err, console(bt.res))
	}
	// nextstage prints the state once it saw Yggdrasil, then waits to be
	// stopped.
	lab.Eventually(bootTimeout, c.result)
	stop()
	bt := <-done
	if bt.res == nil || bt.res.State == nil {
		return b, fmt.Errorf("no state from the VM: %v\n%s", bt.err, console(bt.res))
	}
	poweron, err := milestones(&b, bt.res, &c)
	if err != nil {
		return b, err
	}
	want := "eth0"
	if strings.Contains(extra, benchBridge) {
		want = "zos"
	}
	if st := bt.res.State; st.Uplink != want {
		t.Errorf("the guest's uplink %q, want %s", st.Uplink, want)
	}
	if y := bt.res.State.Yggdrasil; y == nil || y.Address != addr {
		t.Errorf("the guest's Yggdrasil %+v, want the seed's address %s", y, addr)
	}
	f := strings.Fields(probe)
	if len(f) < 3 || f[0] != "PROBE" || f[1] != "reached" {
		return b, fmt.Errorf("no answer over Yggdrasil: %q", probe)
	}
	ns64, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return b, fmt.Errorf("probe output %q: %w", probe, err)
	}
	b.firstPath = time.Unix(0, ns64).Sub(poweron)
	return b, nil
}

// benchPlain is one boot on the IPv4-only link without Yggdrasil.
func benchPlain(e env, img string) (benchBoot, error) {
	var b benchBoot
	var c consoleClock
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+10*time.Second)
	defer cancel()
	res, err := qemu.Boot(ctx, qemu.Options{
		Kernel:    e.kernel,
		Initramfs: img,
		NetDev:    "user,id=n0,ipv4=on,ipv6=off",
		Append:    "netinit.ygg=off netinit.test=poweroff",
		Timeout:   bootTimeout,
		Console:   &c,
	})
	if err != nil {
		return b, fmt.Errorf("%w\n%s", err, console(res))
	}
	_, err = milestones(&b, res, &c)
	return b, err
}

// console is the end of a boot's console, for a failed run's report.
func console(res *qemu.Result) string {
	if res == nil {
		return ""
	}
	return tail(res.Console, 40)
}

// median is the median of f over the boots where it is not 0 (0 when
// there is none).
func median(bs []benchBoot, f func(benchBoot) time.Duration) time.Duration {
	var ds []time.Duration
	for _, b := range bs {
		if d := f(b); d != 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// round shows d to 10 ms; "-" for 0 (not seen).
func round(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

func count(bs []benchBoot, f func(benchBoot) time.Duration) int {
	n := 0
	for _, b := range bs {
		if f(b) != 0 {
			n++
		}
	}
	return n
}

// TestBenchMilestones checks how the bench places netinit's milestones on
// QEMU's clock, without a VM.
func TestBenchMilestones(t *testing.T) {
	var c consoleClock
	t0 := time.Now()
	// Written in pieces, as a pipe may deliver them.
	for _, p := range []string{
		"SeaBIOS\nnetinit: [  0.010] netinit v1 starting as PID 1 (kernel up 2.50s)\n",
		"netinit: [  1.200] eth0: lease 10.0.2.15\nnetinit: [  4.3",
		"00] yggdrasil: up, address 200::1, 1 peers configured\r\n" + qemu.ResultEnd + "\n",
	} {
		c.Write([]byte(p))
	}
	if !c.result() {
		t.Error("the result's end marker was not seen")
	}
	res := &qemu.Result{Accel: "tcg", InitAt: 3 * time.Second, State: &state.State{
		Phase:     state.PhaseReady,
		TimingsMS: map[string]int64{"modules": 500, "lease4": 1200, "ready": 4000},
	}}
	var b benchBoot
	poweron, err := milestones(&b, res, &c)
	if err != nil {
		t.Fatal(err)
	}
	want := benchBoot{accel: "tcg", verdict: state.PhaseReady, kernelUp: 2500 * time.Millisecond,
		kernel: 2990 * time.Millisecond, modules: 3490 * time.Millisecond, lease4: 4190 * time.Millisecond,
		ready: 6990 * time.Millisecond, yggUp: 7290 * time.Millisecond}
	if b != want {
		t.Errorf("milestones\n got %s\nwant %s", b, want)
	}
	if d := poweron.Sub(t0); d > -3*time.Second+time.Second || d < -3*time.Second {
		t.Errorf("power-on %v from the first line's arrival, want about -3s", d)
	}
	res.State.TimingsMS["ygg_up"] = 4100
	if milestones(&b, res, &c); b.yggUp != 7090*time.Millisecond {
		t.Errorf("yggUp %v, want timings_ms.ygg_up over the console line", b.yggUp)
	}
}
