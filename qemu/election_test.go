package qemu_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
)

// TestBootTwoNICsElection (issue 11): two NICs both get a DHCP lease with
// a router. The first has the lower address, which 0-OS's tie-break
// would prefer, but its router goes nowhere (its slirp sits in a
// namespace with only loopback: 10.0.3.2 is not its host alias); only the
// second reaches the probe target. No BOOTIF, no
// netinit.uplink=: the election picks the second by proven reachability,
// and it holds the only default route.
func TestBootTwoNICsElection(t *testing.T) {
	e := requireEnv(t)
	lab.Require(t, "ip")
	t.Parallel()
	img := imageWithNextStage(t, e)
	dir := t.TempDir()
	// The probe target: a TCP listener on the host side of the second
	// NIC's slirp (the guest's 10.0.3.2:9943 is this namespace's
	// 127.0.0.1:9943). A Yggdrasil listener is as good as any.
	ns := lab.NewNS(t, "vmelect")
	if _, err := startYggPeer(t, ns, buildYggPeer(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+10*time.Second)
	defer cancel()
	res, err := qemu.Boot(ctx, qemu.Options{
		Kernel: e.kernel, Initramfs: img, NetNS: ns.Name,
		NetDev: "user,id=n0,ipv4=on,ipv6=off,net=10.0.2.0/24",
		ExtraArgs: []string{"-netdev", "user,id=n1,ipv4=on,ipv6=off,net=10.0.3.0/24",
			"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57"},
		Append:  "ip=dhcp netinit.probe.targets=10.0.3.2:9943 netinit.ygg=off netinit.test=poweroff",
		Timeout: bootTimeout,
		LogFile: filepath.Join(dir, "console.log"),
	})
	if err != nil {
		if res != nil {
			t.Logf("console:\n%s", tail(res.Console, 60))
		}
		t.Fatalf("boot: %v", err)
	}
	st := res.State
	var second string
	for _, ifc := range st.Interfaces {
		if ifc.MAC == "52:54:00:12:34:57" {
			second = ifc.Name
		}
	}
	if second == "" || st.Uplink != second || st.UplinkReason != "reachable" || st.Phase != state.PhaseReady {
		t.Logf("console:\n%s", tail(res.Console, 60))
		t.Fatalf("uplink %q (%s) phase %s, want the reachable NIC %q; candidates %+v", st.Uplink, st.UplinkReason, st.Phase, second, st.Candidates)
	}
	defaults := 0
	for _, r := range st.Routes {
		if r.Dst == "0.0.0.0/0" {
			defaults++
			if r.Dev != second {
				t.Errorf("default route on %s, only the uplink %s may have one", r.Dev, second)
			}
		}
	}
	if defaults != 1 {
		t.Errorf("%d IPv4 default routes, want 1: %+v", defaults, st.Routes)
	}
	t.Logf("candidates %+v", st.Candidates)
}
