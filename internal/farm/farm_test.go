package farm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
)

// TestFarmSmoke runs a farm of 5 real netinit daemons bounded to 2 LAN
// peers each (one ring): every node gets a Yggdrasil address with a peer,
// reaches every sampled node, keeps exactly its 2 ring neighbours, and
// nothing of the farm is left behind.
func TestFarmSmoke(t *testing.T) {
	lab.Require(t, "dnsmasq", "ip")
	lab.RequireTUN(t)
	lab.GuardResolvConf(t)
	bin := lab.BuildNetinit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	r, err := Run(ctx, Config{N: 5, LANPeers: 2, Netinit: bin, Dir: dir, Sample: 4, Settle: 15 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(Header)
	t.Log(r.Summary())
	if r.AllAddressed == 0 {
		t.Errorf("only %d of 5 nodes addressed", r.Addressed)
	}
	if ok, total := r.Reach(); ok != total || total != 5*4 {
		t.Errorf("reachable %d of %d sampled pairs, want 20 of 20", ok, total)
	}
	for _, n := range r.Nodes {
		if n.LANPeers != 2 {
			t.Errorf("node %d: %d LAN peers up, want its 2 ring neighbours", n.Index, n.LANPeers)
		}
		if n.RSSKiB <= 0 || n.CPU <= 0 {
			t.Errorf("node %d: RSS %d KiB, CPU %v", n.Index, n.RSSKiB, n.CPU)
		}
	}
	var csv strings.Builder
	if err := r.WriteCSV(&csv); err != nil || strings.Count(csv.String(), "\n") != 5 {
		t.Errorf("CSV: %v\n%s", err, csv.String())
	}
	// Torn down: no namespace, no daemon, no work directory.
	out, _ := exec.Command("ip", "netns", "list").Output()
	tag := fmt.Sprintf("nf%d", os.Getpid()%100000)
	if slices.ContainsFunc(strings.Fields(string(out)), func(s string) bool {
		return s == tag+"h" || strings.HasPrefix(s, tag+"-")
	}) {
		t.Errorf("namespaces left: %s", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work directory %s left: %v", dir, err)
	}
}

func TestTargets(t *testing.T) {
	for _, c := range []struct{ i, n, sample int }{{0, 5, 4}, {3, 5, 10}, {0, 1, 5}, {7, 100, 5}} {
		got := targets(c.i, c.n, c.sample)
		if len(got) != min(c.sample, c.n-1) || slices.Contains(got, c.i) {
			t.Errorf("targets(%d, %d, %d) = %v", c.i, c.n, c.sample, got)
		}
		if !slices.Equal(got, targets(c.i, c.n, c.sample)) {
			t.Errorf("targets(%d, %d, %d) not reproducible", c.i, c.n, c.sample)
		}
		slices.Sort(got)
		if len(slices.Compact(got)) != len(got) {
			t.Errorf("targets(%d, %d, %d): duplicates", c.i, c.n, c.sample)
		}
	}
}
