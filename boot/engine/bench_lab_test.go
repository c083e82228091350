package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
)

// TestBench is `make bench`: the time from process start to "network
// ready" (state written / client exited with the address applied) of
// `netinit up --oneshot` against u-root's dhclient and dhcpcd, in the same
// namespace lab, median of NETINIT_BENCH_RUNS (default 5) runs each. It
// reports; it asserts nothing about speed (a timed assertion would be a
// flaky test). It only runs with NETINIT_BENCH=1.
func TestBench(t *testing.T) {
	if os.Getenv("NETINIT_BENCH") != "1" {
		t.Skip("make bench sets NETINIT_BENCH=1")
	}
	lab.Require(t, "ip", "dnsmasq", "radvd", "dhcpcd")
	lab.GuardResolvConf(t)
	runs := 5
	fmt.Sscan(os.Getenv("NETINIT_BENCH_RUNS"), &runs)
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
	var table []string
	measure := func(scenario string, tools []tool, withRA bool) {
		var base time.Duration
		for _, tl := range tools {
			var ds []time.Duration
			for i := 0; i < runs; i++ {
				srv, cli := lab.NewLAN(t, "bn")
				lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
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
					t.Logf("%s %s run %d: %v\n%s", scenario, tl.name, i, err, out)
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
	measure("v4-ready", v4, false)
	measure("dual-ready", dual, true)
	fmt.Printf("\n%-12s %-16s %10s %5s %9s\n%s\n", "SCENARIO", "TOOL", "MEDIAN", "RUNS", "VS NETINIT", strings.Join(table, "\n"))
	fmt.Println("targets: v4 netinit <= 0.5x u-root dhclient; dual-stack netinit <= 150ms (radvd)")
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
