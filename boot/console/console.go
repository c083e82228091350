// Package console is where a farmer reads what netinit did: one line per
// event, stamped with the time since netinit started, short enough for an
// 80-column serial console. As PID 1 every line also goes to /dev/kmsg so
// it survives in the kernel log (dmesg) after the handoff.
package console

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Logf prints one event line, formatted as by fmt.Sprintf, with the
// line's end left to it: the one type of every logger netinit hands around
// (the engine, the clients, the overlays, the servers), as tailscale's
// logger.Logf. (*Log).Logf is one, a testing.T's Logf another.
type Logf func(format string, args ...any)

// Discard is the Logf that prints nothing.
func Discard(string, ...any) {}

// Log writes stamped event lines to one or more writers.
type Log struct {
	mu    sync.Mutex
	start time.Time
	out   io.Writer
	kmsg  io.Writer // one record per write; may be nil
}

// New returns a Log whose clock starts at start, writing to out.
func New(start time.Time, out io.Writer) *Log {
	return &Log{start: start, out: out}
}

// AttachKmsg also sends every line to the kernel log. Errors writing to it
// are ignored: the console is the primary output.
func (l *Log) AttachKmsg(w io.Writer) {
	l.mu.Lock()
	l.kmsg = w
	l.mu.Unlock()
}

// Logf prints one event: "[  1.234] message". Multi-line messages are
// split so every line carries the stamp.
func (l *Log) Logf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	d := time.Since(l.start)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(l.out, "netinit: [%7.3f] %s\n", d.Seconds(), line)
		if l.kmsg != nil {
			// <6> is KERN_INFO; the kernel adds its own timestamp.
			_, _ = fmt.Fprintf(l.kmsg, "<6>netinit: %s\n", line)
		}
	}
}

// Raw writes text as is (for the result block between test markers).
func (l *Log) Raw(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.out, s)
}
