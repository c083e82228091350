package lab

import (
	"fmt"
	"strings"
	"sync"
)

// Logs collects log lines from any goroutine: its Logf goes where a
// package under test takes a Logf option.
type Logs struct {
	mu    sync.Mutex
	lines []string
}

// Logf records one line.
func (l *Logs) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// Lines is a copy of the lines so far.
func (l *Logs) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// String is the lines so far, one a line.
func (l *Logs) String() string { return strings.Join(l.Lines(), "\n") }
