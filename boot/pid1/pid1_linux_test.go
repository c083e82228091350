package pid1

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
)

const signalsChild = "NETINIT_PID1_SIGNALS_CHILD"

// TestHoldSignals sends SIGTERM, SIGINT and SIGHUP to a process that
// called HoldSignals (a child: the test binary again): it survives each
// one and says so. Without it the Go runtime exits on the first, which in
// PID 1 is a kernel panic.
func TestHoldSignals(t *testing.T) {
	if os.Getenv(signalsChild) != "" {
		HoldSignals(console.New(time.Now(), os.Stdout))
		for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP} {
			_ = unix.Kill(os.Getpid(), sig)
			time.Sleep(100 * time.Millisecond)
		}
		os.Stdout.WriteString("still alive\n")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHoldSignals$")
	cmd.Env = append(os.Environ(), signalsChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the process died: %v\n%s", err, out)
	}
	for _, want := range []string{"terminated received and ignored", "interrupt received and ignored", "hangup received and ignored", "still alive"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
