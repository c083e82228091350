package qemu_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// Fault rows of docs/reliability.md that need a whole boot: each asserts
// the phase, that the boot reached its end (result printed, VM powered
// off: the handoff point) inside a bound, and logs the time it took.

func faultBoot(t *testing.T, netdev, appendArgs string) *qemu.Result {
	t.Helper()
	e := requireEnv(t)
	res := bootWith(t, qemu.Options{Kernel: e.kernel, Initramfs: image(t, e), NetDev: netdev, Append: appendArgs})
	t.Logf("fault %q %q: init -> result (handoff point) %v", netdev, appendArgs, res.InitToResult.Round(time.Millisecond))
	return res
}

// TestFaultNoNIC: a machine without any NIC is offline at the deadline,
// and the boot goes on.
func TestFaultNoNIC(t *testing.T) {
	t.Parallel()
	res := faultBoot(t, "none", "netinit.timeout=4s netinit.test=poweroff")
	st := res.State
	if st.Phase != state.PhaseOffline || len(st.Interfaces) != 0 || st.Uplink != "" {
		t.Fatalf("state %+v, want offline with no interfaces", st)
	}
	if res.InitToResult > 30*time.Second {
		t.Errorf("no-NIC boot took %v to its end with a 4 s deadline", res.InitToResult)
	}
}

// TestFaultPanicContained: a panic in PID 1's bring-up is caught, reported
// with what went wrong, and the boot still reaches its end with an honest
// state.
func TestFaultPanicContained(t *testing.T) {
	t.Parallel()
	res := faultBoot(t, "", "netinit.test=panic")
	if !strings.Contains(res.Console, "ERROR bring-up crashed: panic: netinit.test=panic") {
		t.Errorf("the panic is not reported on the console")
	}
	st := res.State
	if st.Phase != state.PhaseOffline || len(st.Problems) == 0 || !strings.Contains(st.Problems[0], "bring-up crashed") {
		t.Fatalf("state %+v, want offline with the crash as a problem", st)
	}
}

// TestBootVLAN: vlan=eth0.100:eth0 on a real kernel: PID 1 loads 8021q
// (there is no modprobe for the kernel to call), the VLAN link is created
// on the NIC and managed; the untagged NIC still gets its lease.
func TestBootVLAN(t *testing.T) {
	t.Parallel()
	res := faultBoot(t, "", "vlan=eth0.100:eth0 netinit.timeout=8s netinit.test=poweroff")
	st := res.State
	if st.Modules == nil || !slices.Contains(st.Modules.Loaded, "8021q") {
		t.Errorf("8021q not loaded: %+v", st.Modules)
	}
	var names []string
	for _, ifc := range st.Interfaces {
		names = append(names, ifc.Name)
	}
	if !slices.Contains(names, "eth0.100") || !slices.Contains(names, "eth0") {
		t.Fatalf("interfaces %v, want eth0 and eth0.100", names)
	}
	if st.Phase != state.PhaseReady || st.Uplink != "eth0" {
		t.Errorf("phase %s uplink %s, want ready on eth0", st.Phase, st.Uplink)
	}
}

// TestFaultDaemonRestart: the network daemon dies at its first start,
// after sending SIGTERM, SIGINT and SIGHUP to PID 1; PID 1 survives them,
// the daemon is restarted with backoff, and the boot still ends ready.
func TestFaultDaemonRestart(t *testing.T) {
	t.Parallel()
	res := faultBoot(t, "", "netinit.test=daemon-crash")
	if !strings.Contains(res.Console, "exited with status 1; restarting in 1s (start 2)") {
		t.Errorf("the daemon's death and restart are not on the console")
	}
	// The dying daemon sent SIGTERM, SIGINT and SIGHUP to PID 1, which
	// survived them (else: kernel panic, no result).
	for _, sig := range []string{"terminated", "interrupt", "hangup"} {
		if !strings.Contains(res.Console, "init: "+sig+" received and ignored") {
			t.Errorf("PID 1 did not report holding %s", sig)
		}
	}
	if st := res.State; st.Phase != state.PhaseReady {
		t.Fatalf("phase %s after the daemon restart, want ready", st.Phase)
	}
}

// TestBootTwoNICsBootIF: two NICs that both get a DHCP lease; BOOTIF (as
// pxelinux/iPXE pass it) names the second one, which becomes the uplink
// and the only link with a default route.
func TestBootTwoNICsBootIF(t *testing.T) {
	e := requireEnv(t)
	t.Parallel()
	img := imageWithNextStage(t, e)
	res := bootWith(t, qemu.Options{
		Kernel: e.kernel, Initramfs: img,
		ExtraArgs: []string{"-netdev", "user,id=n1,ipv4=on,ipv6=off,net=10.0.3.0/24",
			"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57"},
		// The next stage reads the live state once both NICs hold a
		// lease: the one that is not the uplink converges after the verdict.
		Append: "BOOTIF=01-52-54-00-12-34-57 ip=dhcp netinit.next=/sbin/nextstage nextstage.leases=2",
	})
	if os.Getenv("NETINIT_QEMU_SHOW") != "" {
		t.Logf("console:\n%s", res.Console)
	}
	st := res.State
	up := requireUplink(t, st, "52:54:00:12:34:57", "bootif")
	for _, r := range st.Routes {
		if r.Dst == "0.0.0.0/0" && r.Dev != up {
			t.Errorf("default route on %s, only the uplink %s may have one", r.Dev, up)
		}
	}
	if len(st.Interfaces) != 2 {
		t.Fatalf("interfaces %+v, want both NICs", st.Interfaces)
	}
	// The other NIC got its lease too (it is not the uplink: no default).
	leased := 0
	for _, ifc := range st.Interfaces {
		for _, a := range ifc.Addresses {
			if a.Source == lease.SourceDHCP4 {
				leased++
			}
		}
	}
	if leased != 2 {
		t.Errorf("%d NICs with a DHCP lease, want 2: %+v", leased, st.Interfaces)
	}
}
