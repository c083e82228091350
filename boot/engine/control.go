package engine

import (
	"runtime/debug"
)

// Renew kicks every link's clients (the control socket's "renew"): the
// DHCPv4 and DHCPv6 clients renew now, router discovery solicits again.
func (e *Engine) Renew() {
	e.mu.Lock()
	defer e.unlock()
	e.logLocked("renew requested")
	for _, l := range e.links {
		for _, ch := range []chan struct{}{l.renew4, l.renew6, l.renewDHCP6} {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// Problem records something a farmer must know that another part of
// netinit found (a driver's failed firmware load in the kernel log), says
// it on the console, and publishes it with the next status.
func (e *Engine) Problem(msg string) {
	e.problem("%s", msg)
	e.notify()
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
