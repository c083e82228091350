package qemu_test

import (
	"testing"

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
	// The probe target: a TCP listener on the host side of the second
	// NIC's slirp (the guest's 10.0.3.2:9943 is this namespace's
	// 127.0.0.1:9943). A Yggdrasil listener is as good as any.
	ns := lab.NewNS(t, "vmelect")
	if _, err := startYggPeer(t, ns, buildYggPeer(t)); err != nil {
		t.Fatal(err)
	}
	res := bootWith(t, qemu.Options{
		Kernel: e.kernel, Initramfs: img, NetNS: ns.Name,
		NetDev: "user,id=n0,ipv4=on,ipv6=off,net=10.0.2.0/24",
		ExtraArgs: []string{"-netdev", "user,id=n1,ipv4=on,ipv6=off,net=10.0.3.0/24",
			"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57"},
		Append: "ip=dhcp netinit.probe.targets=10.0.3.2:9943 netinit.ygg=off netinit.test=poweroff",
	})
	st := res.State
	second := requireUplink(t, st, "52:54:00:12:34:57", "reachable")
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
