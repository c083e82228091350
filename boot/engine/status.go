package engine

import "time"

// ready applies the readiness rule (core.go) to the engine now.
func (e *Engine) ready() bool {
	e.mu.Lock()
	defer e.unlock()
	return ready(e.viewLocked(), time.Now())
}
