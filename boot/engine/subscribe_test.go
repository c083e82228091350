package engine

import (
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/state"
)

// TestSubscription: a status published after the subscriber subscribed
// reaches it; a subscriber that does not read never holds the engine up,
// and then gets the latest status, not a stale one.
func TestSubscription(t *testing.T) {
	e := New(Config{Kernel: kerneltest.New()})
	early := e.Subscribe()
	slow := e.Subscribe()

	first := &state.NetworkStatus{Phase: state.PhaseStarting}
	e.offer(first)
	select {
	case got := <-early.Updates():
		if got != first {
			t.Fatalf("got %+v, want the status published", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a published status did not reach the subscriber")
	}

	// slow never reads while many statuses are published: publishing
	// must return (bounded), and slow then finds the last one.
	var last *state.NetworkStatus
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			last = &state.NetworkStatus{Phase: state.PhaseReady, PID: i}
			e.offer(last)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing blocked on a subscriber that does not read")
	}
	select {
	case got := <-slow.Updates():
		if got != last {
			t.Fatalf("slow subscriber got PID %d, want the latest (%d)", got.PID, last.PID)
		}
	default:
		t.Fatal("the slow subscriber has nothing")
	}
	select {
	case got := <-slow.Updates():
		t.Fatalf("a superseded status was kept: %+v", got)
	default:
	}

	// A status the engine publishes itself reaches a subscriber too.
	e.publish(e.Status())
	select {
	case got := <-early.Updates():
		if got.Phase != state.PhaseStarting || got.PID == 0 {
			t.Errorf("published %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the engine's own publication did not reach the subscriber")
	}
}
