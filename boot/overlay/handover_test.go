package overlay

import (
	"testing"
	"time"
)

// TestHandOverNow: netinit's running instance steps aside for 0-OS's once
// it is peered, or when it has held the node's address without a peering
// for HandoverUnpeered; never while there is none, and the wait starts
// again when it goes.
func TestHandOverNow(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	unpeered := zosYgg{NS: "ndmz", IfName: "ygg0"}
	peered := zosYgg{NS: "ndmz", IfName: "ygg0", Peered: true}
	steps := []struct {
		at        time.Duration
		z         zosYgg
		now       bool
		waitSince time.Duration // -1: not waiting
	}{
		{0, zosYgg{}, false, -1},
		{1 * time.Second, unpeered, false, 1 * time.Second},
		{30 * time.Second, unpeered, false, 1 * time.Second},
		{HandoverUnpeered, unpeered, false, 1 * time.Second},
		{HandoverUnpeered + time.Second, unpeered, true, 1 * time.Second},
		// gone, then back without a peering: the wait starts again
		{HandoverUnpeered + 2*time.Second, zosYgg{}, false, -1},
		{HandoverUnpeered + 3*time.Second, unpeered, false, HandoverUnpeered + 3*time.Second},
		{HandoverUnpeered + 4*time.Second, peered, true, -1},
	}
	var since time.Time
	for _, s := range steps {
		now, next := handOverNow(s.z, since, t0.Add(s.at))
		want := time.Time{}
		if s.waitSince >= 0 {
			want = t0.Add(s.waitSince)
		}
		if now != s.now || !next.Equal(want) {
			t.Errorf("at %v with %+v (waiting since %v): hand over %v, waiting since %v; want %v, %v", s.at, s.z, since, now, next, s.now, want)
		}
		since = next
	}
}
