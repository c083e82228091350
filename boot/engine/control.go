package engine

import (
	"runtime/debug"
)

// Renew asks every DHCP client to renew its lease now and every link to
// solicit routers again (the control socket's "renew").
func (e *Engine) Renew() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logf("renew requested")
	for _, l := range e.links {
		for _, ch := range []chan struct{}{l.renew4, l.renew6} {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// spawn runs fn in a goroutine the engine waits for. A panic in it is
// contained: reported as a problem, the rest of the engine goes on.
func (e *Engine) spawn(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				e.problem("internal error (contained): %v", r)
				e.logf("%s", debug.Stack())
			}
		}()
		fn()
	}()
}
