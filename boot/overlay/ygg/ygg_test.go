package ygg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEffectivePeer(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"tcp://198.51.100.1:1234", "tcp://198.51.100.1:1234?maxbackoff=30s", ""},
		{"tls://[2001:db8::1]:443?key=ab", "tls://[2001:db8::1]:443?key=ab&maxbackoff=30s", ""},
		{"quic://peer.example:443?maxbackoff=10s", "quic://peer.example:443?maxbackoff=10s", ""},
		{"http://198.51.100.1:80", "", "unsupported scheme"},
		{"198.51.100.1:80", "", ""},
	} {
		got, _, err := effectivePeer(c.in)
		if c.err != "" || c.want == "" {
			if err == nil {
				t.Errorf("%s: accepted as %s", c.in, got)
			} else if !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}

// TestNoPprof checks that $PPROFLISTEN (which a kernel command line word
// would put into PID 1's environment) does not start yggdrasil-go's
// profiler in a binary that links this package.
func TestNoPprof(t *testing.T) {
	if os.Getenv("NETINIT_YGG_PPROF_CHILD") != "" {
		// In the child: the variable must be gone by now.
		if v := os.Getenv("PPROFLISTEN"); v != "" {
			t.Fatalf("PPROFLISTEN still set: %q", v)
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestNoPprof$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "NETINIT_YGG_PPROF_CHILD=1", "PPROFLISTEN=127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "pprof") || !strings.Contains(string(out), "--- PASS: TestNoPprof") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestLoggerRedacts (issue 29): a yggdrasil-go line that names a peer's
// URI whole (src/core/link.go) reaches the log with its secrets redacted.
func TestLoggerRedacts(t *testing.T) {
	var got []string
	l := logger{func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) }}
	l.Warnf("Link %q reached inconsistent error state", "tls://h.example:443?password=hunter2")
	l.Infoln("Connected TLS:", "200:1::1, source [2001:db8::1]:9944")
	want := []string{`yggdrasil: warning: Link "tls://h.example:443?password=REDACTED" reached inconsistent error state`,
		`yggdrasil: Connected TLS: 200:1::1, source [2001:db8::1]:9944`}
	if !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}
