package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// TestBench is `make bench`: the time from process start to "network
// ready" (state written / client exited with the address applied) of
// `netinit up --oneshot` against u-root's dhclient and dhcpcd, in the same
// namespace lab, median of NETINIT_BENCH_RUNS (default 5) runs each. It
// reports; it asserts nothing about speed (a timed assertion would be a
// flaky test). It only runs with NETINIT_BENCH=1; under `make bench-smoke`
// a run that fails fails the test.
func TestBench(t *testing.T) {
	runs := lab.Bench(t, "NETINIT_BENCH_RUNS", 5)
	lab.Require(t, "ip", "dnsmasq", "radvd", "dhcpcd")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	dhclient := buildDhclient(t)

	type tool struct {
		name string
		args func(dir string) []string
	}
	v4 := []tool{
		{"netinit", func(d string) []string {
			return []string{bin, "up", "--oneshot", "--state", filepath.Join(d, "state.json"), "--cmdline", "ip=dhcp", "eth0"}
		}},
		{"u-root dhclient", func(string) []string { return []string{dhclient, "-ipv6=false", "-timeout", "15", "eth0"} }},
		{"dhcpcd", func(string) []string {
			return []string{"dhcpcd", "-B", "-1", "-4", "-w", "-t", "15", "-f", "/dev/null", "-c", "/bin/true", "eth0"}
		}},
	}
	dual := []tool{
		{"netinit", func(d string) []string {
			return []string{bin, "up", "--oneshot", "--state", filepath.Join(d, "state.json"), "eth0"}
		}},
		{"dhcpcd", func(string) []string {
			return []string{"dhcpcd", "-B", "-1", "-w", "--waitip=4", "--waitip=6", "-t", "15", "-f", "/dev/null", "-c", "/bin/true", "eth0"}
		}},
	}
	// IPv6-only: radvd (SLAAC, RDNSS), no DHCPv4 server. netinit by
	// default waits netinit.dhcp4_timeout (3 s) for IPv4 once IPv6 is
	// complete; with ip=auto6 it does not ask for IPv4 at all.
	v6 := []tool{
		{"netinit", func(d string) []string {
			return []string{bin, "up", "--oneshot", "--state", filepath.Join(d, "state.json"), "eth0"}
		}},
		{"netinit auto6", func(d string) []string {
			return []string{bin, "up", "--oneshot", "--state", filepath.Join(d, "state.json"), "--cmdline", "ip=eth0:auto6", "eth0"}
		}},
		{"dhcpcd", func(string) []string {
			return []string{"dhcpcd", "-B", "-1", "-w", "--waitip=6", "-t", "15", "-f", "/dev/null", "-c", "/bin/true", "eth0"}
		}},
	}
	var table []string
	measure := func(scenario string, tools []tool, withDHCP4, withRA bool) {
		var base time.Duration
		for _, tl := range tools {
			var ds []time.Duration
			for i := 0; i < runs; i++ {
				srv, cli := lab.NewLAN(t, "bn")
				if withDHCP4 {
					lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
				}
				if withRA {
					lab.Radvd(t, srv, radvdConf)
				}
				time.Sleep(time.Second) // servers listening (radvd past its first RAs)
				dir := t.TempDir()
				args := tl.args(dir)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", cli.Name}, args...)...).CombinedOutput()
				d := time.Since(start)
				cancel()
				if err != nil {
					lab.BenchMiss(t, "%s %s run %d: %v\n%s", scenario, tl.name, i, err, out)
					continue
				}
				ds = append(ds, d)
			}
			if len(ds) == 0 {
				table = append(table, fmt.Sprintf("%-12s %-16s %10s", scenario, tl.name, "failed"))
				continue
			}
			slices.Sort(ds)
			med := ds[len(ds)/2]
			if base == 0 {
				base = med
			}
			table = append(table, fmt.Sprintf("%-12s %-16s %10s %5d %8.2fx", scenario, tl.name,
				med.Round(100*time.Microsecond), len(ds), float64(med)/float64(base)))
		}
	}
	measure("v4-ready", v4, true, false)
	measure("dual-ready", dual, true, true)
	measure("v6-only", v6, false, true)
	fmt.Printf("\n%-12s %-16s %10s %5s %9s\n%s\n", "SCENARIO", "TOOL", "MEDIAN", "RUNS", "VS NETINIT", strings.Join(table, "\n"))
	fmt.Println("targets: v4 netinit <= 0.5x u-root dhclient; dual-stack netinit <= 150ms (radvd); v6-only ready without the deadline")
}

// buildDhclient builds u-root's dhclient at the version go.mod pins.
func buildDhclient(t *testing.T) string {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/u-root/u-root/cmds/core/dhclient@v0.16.0")
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building u-root dhclient: %v\n%s", err, out)
	}
	return filepath.Join(dir, "dhclient")
}

// TestBenchOverlay is the overlay part of `make bench`: TCP throughput
// (iperf3, 3 s) between two nodes directly and through Yggdrasil (a
// netinit daemon that started Yggdrasil by itself, peered with a node of
// netinit's ygg package), the time from the bring-up verdict to the first
// TCP connection over Yggdrasil, and the daemon's RSS with Yggdrasil up.
func TestBenchOverlay(t *testing.T) {
	lab.Bench(t, "NETINIT_BENCH_RUNS", 1)
	lab.Require(t, "ip", "dnsmasq", "iperf3", "wg")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "bo")
	lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
	peer := buildYggPeer(t)
	startYggPeer(t, srv, peer)
	gw := lab.NewGateway(t, srv, lab.BuildWireguardGo(t), 51820, "2001:db8:77::1/64")
	srv.Start("iperf3", "-s", "-B", "2001:db8:77::1")
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	startAt := time.Now()
	d := cli.Start(bin, "up", "--state", statePath, "--cmdline",
		"ip=dhcp netinit.ygg.peers=tcp://192.0.2.1:9943 netinit.ygg.multicast=off netinit.allow=5201/tcp "+
			"netinit.wg.peer="+gw.Public+"@192.0.2.1:51820 netinit.wg.address=2001:db8:77::2/64 netinit.wg.allowed=2001:db8:77::/64", "eth0")
	var st *state.State
	if !lab.Eventually(30*time.Second, func() bool {
		st = readState(statePath)
		return st != nil && st.Yggdrasil != nil && st.Yggdrasil.Address != "" && st.WireGuard != nil
	}) {
		t.Fatalf("no Yggdrasil and WireGuard in the state:\n%s", d.Output())
	}
	gw.AddPeer(t, st.WireGuard.PublicKey, "2001:db8:77::2/128")
	rssIdle := rss(st.PID)
	cli.Start("iperf3", "-s")
	time.Sleep(300 * time.Millisecond)
	addr := st.Yggdrasil.Address
	var reachable time.Duration
	if lab.Eventually(30*time.Second, func() bool {
		dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer dcancel()
		out, err := srv.Exec(dctx, peer, "-dial", "["+addr+"]:5201")
		return err == nil && strings.Contains(out, "reached (connected)")
	}) {
		// From the verdict (timings_ms.ready, since the process started).
		reachable = time.Since(startAt) - time.Duration(readState(statePath).TimingsMS["ready"])*time.Millisecond
	} else {
		lab.BenchMiss(t, "%s not reachable over Yggdrasil", addr)
	}
	ip4 := ""
	for _, ifc := range st.Interfaces {
		for _, a := range ifc.Addresses {
			if a.Source == "dhcp4" {
				ip4 = strings.Split(a.CIDR, "/")[0]
			}
		}
	}
	direct := iperf(t, srv, ip4)
	overlay := iperf(t, srv, addr)
	var wgRate float64
	lab.Eventually(20*time.Second, func() bool { wgRate = iperf(t, cli, "2001:db8:77::1"); return wgRate > 0 })
	for what, rate := range map[string]float64{"direct": direct, "ygg0": overlay, "wg0": wgRate} {
		if rate == 0 {
			lab.BenchMiss(t, "no TCP throughput %s", what)
		}
	}

	rssLoaded := rss(st.PID)
	time.Sleep(5 * time.Second)
	rssAfter := rss(st.PID)
	fmt.Printf("\n%-42s %s\n", "OVERLAY", "VALUE")
	fmt.Printf("%-42s %.0f Mbit/s\n", "TCP direct (veth)", direct/1e6)
	fmt.Printf("%-42s %.0f Mbit/s (%.2fx of direct)\n", "TCP through ygg0", overlay/1e6, overlay/direct)
	fmt.Printf("%-42s %.0f Mbit/s (%.2fx of direct)\n", "TCP through wg0 (to the gateway)", wgRate/1e6, wgRate/direct)
	fmt.Printf("%-42s %v\n", "verdict (no public IPv6) -> TCP over ygg", reachable.Round(time.Millisecond))
	fmt.Printf("%-42s %s (goal <= 40 MB)\n", "daemon RSS, Yggdrasil + WireGuard up", rssIdle)
	fmt.Printf("%-42s %s, 5 s later %s\n", "daemon RSS right after the iperf3 runs", rssLoaded, rssAfter)
}

// readState is the state file, or nil while there is none.
// buildYggPeer builds qemu/testdata/yggpeer, a Yggdrasil node of
// netinit's ygg package.
func buildYggPeer(t *testing.T) string {
	t.Helper()
	peer := filepath.Join(t.TempDir(), "yggpeer")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", peer, "./qemu/testdata/yggpeer")
	build.Dir = lab.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building yggpeer: %v\n%s", err, out)
	}
	return peer
}

// startYggPeer runs the yggpeer binary peer in ns, listening on
// tcp://192.0.2.1:9943, until the test ends.
func startYggPeer(t *testing.T, ns *lab.NS, peer string) *lab.Proc {
	t.Helper()
	p := ns.Start(peer, "-listen", "tcp://192.0.2.1:9943", "-keydir", t.TempDir())
	if !lab.Eventually(20*time.Second, func() bool { return strings.Contains(p.Output(), "ADDRESS ") }) {
		t.Fatalf("yggpeer did not start:\n%s", p.Output())
	}
	return p
}

func readState(path string) *state.State {
	st, err := state.Read(path)
	if err != nil {
		return nil
	}
	return st
}

// rss is a process's resident set size as /proc says it.
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

// iperf measures TCP throughput from ns to addr (bits per second).
func iperf(t *testing.T, ns *lab.NS, addr string) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ns.Exec(ctx, "iperf3", "-c", addr, "-t", "3", "-J")
	if err != nil {
		t.Logf("iperf3 to %s: %v\n%s", addr, err, out)
		return 0
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Logf("iperf3 output: %v", err)
	}
	return r.End.SumReceived.BitsPerSecond
}
