package engine_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
)

// TestUpNothingToManage: `netinit up` without link names in a namespace
// whose only link is a veth says why the veth is skipped and that nothing
// is manageable, and exits 3 at once instead of waiting out its deadline
// (here an hour; the command is killed after 30 s, which fails the test).
func TestUpNothingToManage(t *testing.T) {
	lab.Require(t, "ip")
	bin := netinitBin(t)
	for _, mode := range [][]string{{"--oneshot"}, {}} {
		t.Run(strings.Join(append([]string{"up"}, mode...), " "), func(t *testing.T) {
			peer, cli := lab.NewNS(t, "skps"), lab.NewNS(t, "skpc")
			lab.Veth(t, peer, "p0", cli, "eth0")
			dir := t.TempDir()
			args := append([]string{"netns", "exec", cli.Name, bin, "up", "--timeout", "1h",
				"--state", filepath.Join(dir, "state.json")}, mode...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
			t.Logf("netinit up %v:\n%s", mode, out)
			ee, ok := err.(*exec.ExitError)
			if ctx.Err() != nil || !ok || ee.ExitCode() != 3 {
				t.Fatalf("netinit up: %v (ctx %v), want exit 3 at once", err, ctx.Err())
			}
			for _, want := range []string{
				"eth0: skipped (veth; name it to manage it)",
				"no link to manage: every link is skipped",
			} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if strings.Contains(string(out), "lo: skipped") {
				t.Error("loopback is reported as skipped")
			}
		})
	}
}
