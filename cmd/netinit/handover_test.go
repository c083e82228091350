package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// pid1Line has one token PID 1 rejects.
const pid1Line = "ip=eth0:dhcp netinit.timeout=soon netinit.ygg=off nameserver=192.0.2.53"

// TestBootInfoHandover: the daemon runs the spec PID 1 parsed, and PID 1's
// problems come with it; the daemon does not parse again.
func TestBootInfoHandover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boot.json")
	parsed, probs := cmdline.Load("", pid1Line)
	if len(probs) != 1 {
		t.Fatalf("problems %q, want the one of netinit.timeout=", probs)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mods := &state.Modules{Loaded: []string{"e1000"}}
	bi := handOver(t, path, bootInfo{Start: start, Spec: parsed, Modules: mods,
		Timings: map[string]int64{"modules": 12}, Problems: []string{probs[0].Error()}})
	if !reflect.DeepEqual(bi.Spec, parsed) {
		t.Errorf("spec\n%+v\nwant\n%+v", bi.Spec, parsed)
	}
	want := []string{`cmdline: netinit.timeout="soon": not a duration (want e.g. 60s)`}
	if !reflect.DeepEqual(bi.Problems, want) {
		t.Errorf("problems %q, want %q", bi.Problems, want)
	}
	if !bi.Start.Equal(start) || !reflect.DeepEqual(bi.Modules, mods) || bi.Timings["modules"] != 12 {
		t.Errorf("start %v, modules %+v, timings %v", bi.Start, bi.Modules, bi.Timings)
	}
}

// handOver writes bi as PID 1 does and reads it back as the daemon does,
// which must take it whole: no parse of its own, no problem of its own.
func handOver(t *testing.T, path string, bi bootInfo) bootInfo {
	t.Helper()
	if err := writeBootInfo(path, bi); err != nil {
		t.Fatal(err)
	}
	back, own := readBootInfo(path, func() (*spec.Spec, []cmdline.Problem) {
		t.Error("the daemon parsed the command line although PID 1 handed its spec over")
		return spec.Defaults(), nil
	})
	if len(own) != 0 {
		t.Errorf("own problems %q", own)
	}
	return back
}

// TestBootInfoFallback: a hand-over the daemon cannot use is said, and the
// daemon parses the command line itself, reporting that parse's problems
// (and keeping what it could read of PID 1's).
func TestBootInfoFallback(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string // content "" = no file
		why           string
		keep          []string // PID 1's problems still reported
	}{
		{"missing", "", "no such file", nil},
		{"corrupt", `{"version":1,"spec":{`, "unexpected end of JSON input", nil},
		{"old", `{"problems":["p1"]}`, "version 0, want 1 or later", []string{"p1"}},
		{"no spec", `{"version":1,"problems":["p1"]}`, "no spec in it", []string{"p1"}},
		{"bad spec", `{"version":1,"spec":{"overlay":{"ygg":"sometimes"}},"problems":["p1"]}`, `spec: "sometimes": want one of auto, on, off, auto-inbound`, []string{"p1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			parsed := 0
			bi, own := readBootInfo(path, func() (*spec.Spec, []cmdline.Problem) {
				parsed++
				return cmdline.Load("", pid1Line)
			})
			if parsed != 1 {
				t.Fatalf("parsed %d times, want once", parsed)
			}
			if len(own) != 2 || !strings.Contains(own[0], tc.why) || !strings.Contains(own[0], "the daemon parsed the command line itself") ||
				!strings.Contains(own[1], `netinit.timeout="soon"`) {
				t.Errorf("own problems %q, want why (%q) and the parse's problem", own, tc.why)
			}
			if want := append(slices.Clone(tc.keep), own...); !reflect.DeepEqual(bi.Problems, want) {
				t.Errorf("problems %q, want %q", bi.Problems, want)
			}
			if bi.Spec == nil || bi.Spec.Ygg != spec.YggOff || bi.Start.IsZero() {
				t.Errorf("spec %+v, start %v", bi.Spec, bi.Start)
			}
		})
	}
}

// TestDaemonStateHasPID1Problems: a token PID 1 rejected is in the state
// the daemon writes from PID 1's hand-over (the engine runs for real,
// oneshot, on a link that does not exist: offline at the 1 s deadline).
func TestDaemonStateHasPID1Problems(t *testing.T) {
	dir := t.TempDir()
	info := filepath.Join(dir, "boot.json")
	parsed, probs := cmdline.Load("", "netinit.timeout=1s netinit.mtu=12 ip=nosuch0:dhcp")
	if len(probs) != 1 {
		t.Fatalf("problems %q, want the one of netinit.mtu=", probs)
	}
	bi := handOver(t, info, bootInfo{Start: time.Now(), Spec: parsed, Problems: []string{probs[0].Error()}})
	f := files{state: filepath.Join(dir, "state.json"), resolvConf: filepath.Join(dir, "resolv.conf")}
	n := newBringUp(atBoot, bi, f, console.New(bi.Start, io.Discard))
	n.setHostname = false // the test machine's
	n.links, n.oneshot = []string{"nosuch0"}, true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.run(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := state.Read(f.state)
	if err != nil {
		t.Fatal(err)
	}
	want := `cmdline: netinit.mtu="12": not an MTU (want 68..65535)`
	if !slices.Contains(st.Problems, want) {
		t.Errorf("state problems %q do not have PID 1's %q", st.Problems, want)
	}
	if st.Phase != state.PhaseOffline {
		t.Errorf("phase %q, want offline", st.Phase)
	}
}

// TestBootInfoSecrets (issue 29): boot.json carries the spec whole, a
// Yggdrasil peer's password included (the daemon peers with it), so it is
// readable by root only, also when an older netinit left one 0644; the
// problem PID 1 reports for a peer it refuses never shows the password.
func TestBootInfoSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boot.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	const peer = "tls://peer.example.org:443?password=hunter2"
	parsed, probs := cmdline.Load("", "netinit.ygg.peers="+peer+" netinit.ygg.listen=tls://[::]:1?password=s3cret,udp://x")
	if len(probs) != 1 {
		t.Fatalf("problems %q, want the one of netinit.ygg.listen=", probs)
	}
	bi := handOver(t, path, bootInfo{Spec: parsed, Problems: []string{probs[0].Error()}})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("boot.json mode %v, want 0600", fi.Mode().Perm())
	}
	if !slices.Equal(bi.Spec.YggPeers, []string{peer}) {
		t.Errorf("the daemon's peers %q, want %q", bi.Spec.YggPeers, peer)
	}
	if p := bi.Problems[0]; strings.Contains(p, "s3cret") || !strings.Contains(p, "password=REDACTED") {
		t.Errorf("problem %q shows the listener's password", p)
	}
}
