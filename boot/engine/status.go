package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/state"
)

// ready applies the readiness rule (core.go) to the engine now.
func (e *Engine) ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ready(e.viewLocked(), time.Now())
}

// writeResolv writes resolv.conf from the merged DNS of all families (one
// family never clobbers the other). It is only rewritten when its content
// changes, atomically.
func (e *Engine) writeResolv(st *state.State) error {
	var b strings.Builder
	b.WriteString("# written by netinit; see /run/netinit/state.json\n")
	for i, ns := range st.DNS {
		if i == 3 { // glibc's MAXNS; the state keeps them all
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(st.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(st.Search, " "))
	}
	if b.String() == e.resolv || len(st.DNS) == 0 && e.resolv == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(e.cfg.ResolvConf), 0o755); err != nil {
		return err
	}
	if err := state.WriteAtomic(e.cfg.ResolvConf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	e.resolv = b.String()
	return nil
}

func setHostname(name string) error {
	return unix.Sethostname([]byte(name))
}
