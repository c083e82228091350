package engine

import (
	"sync"

	"github.com/threefoldtech/netinit/boot/state"
)

// Subscription receives the engine's statuses: before the verdict after
// every change (phase "starting"), from the verdict on every status
// published. It holds the latest one only: a subscriber that is slow
// misses the statuses in between, never the last, and never holds the
// engine up.
type Subscription struct {
	mu sync.Mutex // one sender at a time: the buffer is then never full on send
	c  chan *state.NetworkStatus
}

// Subscribe returns a new subscription; it receives the statuses the
// engine publishes from now on.
func (e *Engine) Subscribe() *Subscription {
	s := &Subscription{c: make(chan *state.NetworkStatus, 1)}
	e.mu.Lock()
	e.subs = append(e.subs, s)
	e.unlock()
	return s
}

// Updates delivers the statuses. It is never closed: the subscriber
// stops with its own context.
func (s *Subscription) Updates() <-chan *state.NetworkStatus { return s.c }

// offer replaces the status waiting in the buffer, if any, with st.
func (s *Subscription) offer(st *state.NetworkStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.c: // not taken yet: superseded
	default:
	}
	s.c <- st
}

// offer hands st to every subscriber, outside the engine's lock.
func (e *Engine) offer(st *state.NetworkStatus) {
	e.mu.Lock()
	subs := e.subs
	e.unlock()
	for _, s := range subs {
		s.offer(st)
	}
}

// subscribed reports whether anyone follows the engine's statuses.
func (e *Engine) subscribed() bool {
	e.mu.Lock()
	defer e.unlock()
	return len(e.subs) > 0
}
