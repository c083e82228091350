package engine

import (
	"context"
	"testing"
	"time"
)

// TestDHCP6Restart: the DHCPv6 client follows the RA's M flag (issue 13):
// a client that ended is not restarted by every RA (at most every 30 s in
// the same mode), but an RA that changes M starts one in the new mode at
// once. The client here ends at once (no such link); what is checked is
// which client the engine starts.
func TestDHCP6Restart(t *testing.T) {
	e := New(Config{Logf: t.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.runCtx = ctx
	l := e.newLink(ctx, "nolink0", "", nil)
	e.links[l.name] = l
	state := func() (int, bool, bool) {
		e.wg.Wait()
		e.mu.Lock()
		defer e.mu.Unlock()
		return l.dhcp6Gen, l.dhcp6Managed, l.dhcp6Active
	}
	e.startDHCP6(l.name, false, true) // first RA: O only
	if gen, managed, active := state(); gen != 1 || managed || active {
		t.Fatalf("after the first RA: start %d managed %v active %v", gen, managed, active)
	}
	e.startDHCP6(l.name, false, true) // the next RA, same flags: not again so soon
	if gen, _, _ := state(); gen != 1 {
		t.Fatalf("restarted by an RA with the same flags: start %d", gen)
	}
	e.startDHCP6(l.name, true, true) // M set now: stateful at once
	if gen, managed, _ := state(); gen != 2 || !managed {
		t.Fatalf("after M changed: start %d managed %v, want 2 true", gen, managed)
	}
	e.mu.Lock()
	l.dhcp6At = time.Now().Add(-time.Minute)
	e.mu.Unlock()
	e.startDHCP6(l.name, true, true) // the client ended a minute ago: again
	if gen, _, _ := state(); gen != 3 {
		t.Fatalf("an ended client was not restarted: start %d", gen)
	}
}
