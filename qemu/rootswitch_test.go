package qemu_test

import (
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/state"
)

// TestRootSwitch: with 0-OS's next stage (/sbin/zinit, here the test's
// nextstage) and no netinit.root=, netinit does what 0-OS's initramfs
// /init does — copies the initramfs into a tmpfs and switches root — but
// before it starts anything, then execs "/sbin/zinit init". The next
// stage runs in the tmpfs root, sees the same root as the network daemon,
// and finds the daemon's socket and live state there.
func TestRootSwitch(t *testing.T) {
	e := requireEnv(t)
	t.Parallel()
	res := bootHandoff(t, imageWithNextStageAt(t, e, "/sbin/zinit"),
		"", // the default: zinit is the next stage, so the root switch is on
		"root switch: initramfs copied to a 1536M tmpfs", "handing off to /sbin/zinit init",
		"NEXTSTAGE pid=1", "NEXTSTAGE args=init", "NEXTSTAGE root-fstype=tmpfs", "NEXTSTAGE state-file-phase=ready",
		"NEXTSTAGE socket-phase=ready", "NEXTSTAGE daemon-alive=true", "NEXTSTAGE daemon-same-root=true", "NEXTSTAGE renewed=true")
	if n := strings.Count(res.Console, "starting as PID 1"); n != 2 {
		t.Errorf("netinit started %d times as PID 1, want 2 (initramfs, then tmpfs root)", n)
	}
	if st := res.State; st == nil || st.Phase != state.PhaseReady || len(st.Problems) != 0 {
		t.Fatalf("live state after the handoff: %+v", st)
	}
}
