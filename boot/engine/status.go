package engine

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/atomicfile"
	"github.com/threefoldtech/netinit/boot/dnsname"
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
// changes, atomically. Every line is checked again here, whatever the
// clients validated: a name server that is not an address or a search
// domain that is not an RFC 1123 name would let the network add lines
// (issue 13).
func (e *Engine) writeResolv(st *state.State) error {
	var b strings.Builder
	var dropped []string
	b.WriteString("# written by netinit; see /run/netinit/state.json\n")
	n := 0
	for _, ns := range st.DNS {
		if _, err := netip.ParseAddr(ns); err != nil || strings.ContainsFunc(ns, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			dropped = append(dropped, fmt.Sprintf("name server %q: not an address", ns))
			continue
		}
		if n++; n > 3 { // glibc's MAXNS; the state keeps them all
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	var search []string
	for _, d := range st.Search {
		if err := dnsname.Check(d); err != nil {
			dropped = append(dropped, fmt.Sprintf("search domain %q: %v", d, err))
			continue
		}
		search = append(search, d)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if b.String() == e.resolv || n == 0 && e.resolv == "" {
		return nil
	}
	for _, d := range dropped {
		e.logf("resolv.conf: left out %s", d)
	}
	if err := os.MkdirAll(filepath.Dir(e.cfg.ResolvConf), 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(e.cfg.ResolvConf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	e.resolv = b.String()
	return nil
}

func setHostname(name string) error {
	return unix.Sethostname([]byte(name))
}
