package qemu_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/qemu"
)

// Fault rows of docs/reliability.md that need a whole boot: each asserts
// the phase, that the boot reached its end (result printed, VM powered
// off: the handoff point) inside a bound, and logs the time it took.

func faultBoot(t *testing.T, netdev, appendArgs string) *qemu.Result {
	t.Helper()
	e := requireEnv(t)
	img := image(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout+10*time.Second)
	defer cancel()
	res, err := qemu.Boot(ctx, qemu.Options{
		Kernel: e.kernel, Initramfs: img, NetDev: netdev,
		Append:  appendArgs,
		Timeout: bootTimeout,
		LogFile: filepath.Join(t.TempDir(), "console.log"),
	})
	if res != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("console:\n%s", tail(res.Console, 60))
			}
		})
	}
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
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

// TestFaultDaemonRestart: the network daemon dies at its first start;
// PID 1 says so, restarts it with backoff, and the boot still ends ready.
func TestFaultDaemonRestart(t *testing.T) {
	t.Parallel()
	res := faultBoot(t, "", "netinit.test=daemon-crash")
	if !strings.Contains(res.Console, "exited with status 1; restarting in 1s (start 2)") {
		t.Errorf("the daemon's death and restart are not on the console")
	}
	if st := res.State; st.Phase != state.PhaseReady {
		t.Fatalf("phase %s after the daemon restart, want ready", st.Phase)
	}
}
