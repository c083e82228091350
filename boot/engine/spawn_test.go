package engine

import (
	"strings"
	"testing"
)

// TestSpawnContainsPanic: a panic in a goroutine the engine started (a
// protocol client) is contained and reported; the process goes on.
func TestSpawnContainsPanic(t *testing.T) {
	var logged []string
	e := New(Config{Logf: func(f string, a ...any) { logged = append(logged, f) }})
	e.spawn(func() { panic("client exploded") })
	e.wg.Wait()
	st := e.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "internal error (contained): client exploded") {
		t.Fatalf("problems %q", st.Problems)
	}
}
