package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// TestWaitOnline: wait-online waits while the daemon has no verdict, then
// while a target refuses, and exits 0 once every target takes a TCP
// connection through the uplink (here lo, with no daemon answering: the
// state file); it says each step. With nothing listening and --timeout it
// gives up with 1.
func TestWaitOnline(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	sock := filepath.Join(dir, "ctl.sock") // no daemon: the state file is read
	write := func(phase state.Phase, uplink string) {
		t.Helper()
		if err := state.Write(path, &state.State{Schema: state.Schema, Phase: phase, Uplink: uplink, PID: os.Getpid()}); err != nil {
			t.Fatal(err)
		}
	}
	// Two targets: both must connect, as for 0-OS's internet.
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln1.Close()
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	second := ln2.Addr().String()
	ln2.Close() // refused until listened on again
	targets := []string{ln1.Addr().String(), second}
	write(state.PhaseStarting, "")

	var out lab.Buffer
	done := make(chan int, 1)
	go func() {
		done <- waitOnline(context.Background(), console.New(time.Now(), &out), sock, path, targets, 30*time.Second)
	}()
	waitFor := func(s string) {
		t.Helper()
		end := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), s) {
			if time.Now().After(end) {
				t.Fatalf("no %q in:\n%s", s, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("waiting (no uplink yet: phase starting)")
	write(state.PhaseReady, "lo")
	waitFor("waiting (uplink lo ready, " + targets[0] + " connected, " + second + " refused)")
	ln2, err = net.Listen("tcp", second)
	if err != nil {
		t.Fatalf("listening on %s again: %v", second, err)
	}
	defer ln2.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("still waiting:\n%s", out.String())
	}
	waitFor("internet: online after")
	t.Logf("\n%s", out.String())

	// Nothing listens on the second target: --timeout ends it with 1.
	ln2.Close()
	var out2 lab.Buffer
	if code := waitOnline(context.Background(), console.New(time.Now(), &out2), sock, path, targets, time.Second); code != 1 {
		t.Errorf("exit %d with a refusing target, want 1:\n%s", code, out2.String())
	}
	if !strings.Contains(out2.String(), "gave up after 1s, not online (uplink lo ready") {
		t.Errorf("no give-up line:\n%s", out2.String())
	}
}

// TestOnlineTargets: netinit.probe.targets= wins; runmode= selects its
// mode's; without either, prod's (the hosts of 0-OS's internet).
func TestOnlineTargets(t *testing.T) {
	for line, want := range map[string]string{
		"netinit.probe.targets=192.0.2.1:80,192.0.2.2:443 runmode=dev": "192.0.2.1:80 192.0.2.2:443",
		"runmode=test": "bootstrap.grid.tf:80 hub.grid.tf:80",
		"quiet":        "bootstrap.grid.tf:80 hub.grid.tf:80",
	} {
		if got := strings.Join(onlineTargets(line), " "); got != want {
			t.Errorf("%q: %s, want %s", line, got, want)
		}
	}
}
