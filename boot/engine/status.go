package engine

import (
	"time"

	"golang.org/x/sys/unix"
)

// ready applies the readiness rule (core.go) to the engine now.
func (e *Engine) ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ready(e.viewLocked(), time.Now())
}

func setHostname(name string) error {
	return unix.Sethostname([]byte(name))
}
