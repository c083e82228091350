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

// TestYggdrasilOrder: a dual-stack node with public IPv6 ends the same
// whichever came first, its DHCPv4 lease or its RA (real dnsmasq and
// radvd, one of them started late). With netinit.ygg=auto, a lease first
// starts Yggdrasil early (the node looks hidden then), and the verdict,
// which finds the public IPv6 the RA brought, stops it: the same end as a
// node whose RA came first, which never starts it. No ygg0, no firewall.
func TestYggdrasilOrder(t *testing.T) {
	lab.Require(t, "ip", "dnsmasq", "radvd", "nft")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	for _, c := range []struct {
		name  string
		early bool // the lease first: Yggdrasil starts before the RA
	}{{"lease first", true}, {"RA first", false}} {
		t.Run(c.name, func(t *testing.T) {
			srv, cli := lab.NewLAN(t, "order")
			if c.early {
				lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
			} else {
				lab.Radvd(t, srv, radvdConf)
			}
			statePath := filepath.Join(t.TempDir(), "state.json")
			d := cli.Start(bin, "up", "--state", statePath, "--cmdline",
				"netinit.ra_timeout=8s netinit.dhcp4_timeout=8s netinit.ygg.multicast=off netinit.ygg.peers=tcp://192.0.2.1:9943 "+
					"netinit.ntp=192.0.2.1 netinit.probe.targets=192.0.2.1:80", "eth0")
			// The first is in, the second comes late.
			if !lab.Eventually(20*time.Second, func() bool {
				if c.early {
					return strings.Contains(d.Output(), "yggdrasil: up")
				}
				return strings.Contains(d.Output(), "ra: ")
			}) {
				t.Fatalf("the first of lease and RA did not come:\n%s", d.Output())
			}
			time.Sleep(time.Second)
			if c.early {
				lab.Radvd(t, srv, radvdConf)
			} else {
				lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
			}
			st := waitState(t, statePath, 40*time.Second, "no verdict with both the lease and public IPv6", d.Output,
				func(s *state.State) bool {
					return s.Overlays != nil && s.PublicIPv6 && len(s.Interfaces) == 1 && s.Interfaces[0].DHCP4 == "bound"
				})
			// The verdict's publication may come before the stop's.
			st = waitState(t, statePath, 10*time.Second, "Yggdrasil still running", d.Output,
				func(s *state.State) bool { return s.Yggdrasil == nil && s.FirewallStatus == nil })
			if st.Overlays.Yggdrasil || !strings.Contains(st.Overlays.YggdrasilReason, "public IPv6") {
				t.Errorf("decision %+v", st.Overlays)
			}
			_, started := st.TimingsMS["ygg_up"]
			if started != c.early {
				t.Errorf("Yggdrasil started before the verdict: %v, want %v (timings %v)", started, c.early, st.TimingsMS)
			}
			if c.early && !strings.Contains(st.Overlays.YggdrasilReason, "is stopped") {
				t.Errorf("the early instance's stop is not said: %q", st.Overlays.YggdrasilReason)
			}
			if _, err := cli.Handle().LinkByName("ygg0"); err == nil {
				t.Errorf("ygg0 is still there")
			}
			if out, err := cli.Exec(t.Context(), "nft", "list", "table", "inet", "netinit"); err == nil {
				t.Errorf("the overlay firewall is still there:\n%s", out)
			}
			b, _ := os.ReadFile(statePath)
			lab.ValidateState(t, b)
		})
	}
}
