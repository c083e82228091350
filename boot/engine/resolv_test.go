package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/boot/state"
)

// TestWriteResolvRechecks: whatever reaches the state, resolv.conf gets
// no line the network wrote (issue 13): a name server that is not an
// address and a search domain with a newline are left out, and said.
func TestWriteResolvRechecks(t *testing.T) {
	var logged []string
	path := filepath.Join(t.TempDir(), "resolv.conf")
	e := New(Config{ResolvConf: path, Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }})
	st := &state.State{
		DNS:    []string{"6.6.6.6\nnameserver 7.7.7.7", "192.0.2.53", "2001:db8::53"},
		Search: []string{"x\nnameserver\t6.6.6.6", "lab.example", "\x1b[2J"},
	}
	if err := e.writeResolv(st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const want = "# written by netinit; see /run/netinit/state.json\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch lab.example\n"
	if string(b) != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", b, want)
	}
	all := strings.Join(logged, "\n")
	for _, w := range []string{`name server "6.6.6.6\nnameserver 7.7.7.7"`, `search domain "x\nnameserver\t6.6.6.6"`, `search domain "\x1b[2J"`} {
		if !strings.Contains(all, w) {
			t.Errorf("no log line naming %s in:\n%s", w, all)
		}
	}
}
