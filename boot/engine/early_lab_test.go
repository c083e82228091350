package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// TestDaemonEarlyYggdrasil (issue 16): on an IPv4-only link a hidden node
// starts Yggdrasil, behind its firewall, as soon as the lease is there —
// before the verdict, which still waits out the RA wait — and the verdict
// records it. The timeline in the state shows the order.
func TestDaemonEarlyYggdrasil(t *testing.T) {
	lab.Require(t, "ip", "dnsmasq", "nft")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	srv, cli := lab.NewLAN(t, "early")
	lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
	statePath := filepath.Join(t.TempDir(), "state.json")
	d := cli.Start(bin, "up", "--state", statePath, "--cmdline",
		"netinit.ra_timeout=3s netinit.ygg.multicast=off", "eth0")
	st := waitState(t, statePath, 30*time.Second, "no Yggdrasil in the state", d.Output,
		func(s *state.State) bool { return s.Overlays != nil && s.Yggdrasil != nil })
	tm := st.TimingsMS
	for _, k := range []string{"lease4", "firewall", "ygg_up", "ready"} {
		if _, ok := tm[k]; !ok {
			t.Fatalf("timings lack %s: %v\n%s", k, tm, d.Output())
		}
	}
	if !(tm["lease4"] <= tm["firewall"] && tm["firewall"] <= tm["ygg_up"] && tm["ygg_up"] < tm["ready"]) {
		t.Errorf("want lease4 <= firewall <= ygg_up < ready (the RA wait off the overlay's path): %v", tm)
	}
	if !st.Overlays.Yggdrasil || !strings.Contains(st.Overlays.YggdrasilReason, "started before the verdict") {
		t.Errorf("decision %+v", st.Overlays)
	}
	if st.FirewallStatus == nil || !st.FirewallStatus.Applied {
		t.Errorf("firewall %+v", st.FirewallStatus)
	}
	out := d.Output()
	if i, j := strings.Index(out, "yggdrasil: up"), strings.Index(out, "ready after"); i < 0 || j < 0 || i > j {
		t.Errorf("the console does not show Yggdrasil up before the verdict:\n%s", out)
	}
	b, _ := os.ReadFile(statePath)
	lab.ValidateState(t, b)
	t.Logf("timings %v", tm)
}
