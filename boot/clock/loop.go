package clock

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/state"
)

// DefaultInterval is how often the loop corrects the clock when the last
// round succeeded. A PC's crystal drifts up to about 100 ppm (60 ms in
// 11 minutes), so each correction stays a slew well within SlewBound;
// 11 minutes is also the kernel's own RTC sync period and ntpd's
// maximum poll interval is far longer (RFC 5905 §7.3, MAXPOLL 2^17 s), so
// public servers see a client that is not greedy.
const DefaultInterval = 11 * time.Minute

// DefaultRetry is the wait after a failed round; it doubles with each
// failure in a row, up to the interval (Backoff).
const DefaultRetry = time.Minute

// Backoff is the wait before the next round after failures failed rounds
// in a row (0: the last round succeeded).
func Backoff(failures int, retry, interval time.Duration) time.Duration {
	if failures <= 0 {
		return interval
	}
	return pause.Backoff(failures, retry, interval)
}

// Servers is the set one round asks: configured (netinit.ntp=, preferred)
// and others (DHCPv4 option 42, DHCPv6 NTP; the state's list, which also
// holds the configured ones, so those are dropped); when both are empty,
// the fallback (the run mode's public pool), reported by pool.
func Servers(configured, others, fallback []string) (conf, oth []string, pool bool) {
	if len(configured) == 0 && len(others) == 0 {
		return nil, slices.Clone(fallback), len(fallback) > 0
	}
	for _, o := range others {
		if !slices.Contains(configured, o) && !slices.Contains(oth, o) {
			oth = append(oth, o)
		}
	}
	return slices.Clone(configured), oth, false
}

// LoopConfig is what a Loop needs.
type LoopConfig struct {
	// Syncer does each round (the system clock when nil).
	Syncer *Syncer
	// Interval between rounds that succeed (DefaultInterval when 0).
	Interval time.Duration
	// Retry is the first wait after a failed round (DefaultRetry when 0).
	Retry time.Duration
	// Fallback servers are asked when no other is known.
	Fallback []string
	Logf     func(format string, args ...any)
	// Changed is called after every round (the state is rewritten).
	Changed func()
}

// Loop keeps the clock right: a round (Syncer.Sync) now, then every
// Interval, sooner after a failed round, and at once when the set of
// servers changes. Its owner runs Run until its context ends.
type Loop struct {
	cfg   LoopConfig
	kick  chan struct{} // a round now (buffered 1)
	first chan struct{} // closed when the first round is done

	mu         sync.Mutex
	configured []string
	others     []string
	rounds     int
	failures   int
	busy       bool // a round is running
	last       Result
	first1     Result // the first round's
	servers    []string
	pool       bool
	lastSync   time.Time
	next       time.Time
}

// NewLoop returns a loop that has not run yet.
func NewLoop(cfg LoopConfig) *Loop {
	if cfg.Syncer == nil {
		cfg.Syncer = &Syncer{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	return &Loop{cfg: cfg, kick: make(chan struct{}, 1), first: make(chan struct{})}
}

// SetServers gives the servers known now. A change starts a round at once:
// a new DHCP lease may be the first to name a reachable server, and a
// server that is gone should not be asked for another interval.
func (l *Loop) SetServers(configured, others []string) {
	l.mu.Lock()
	changed := !slices.Equal(l.configured, configured) || !slices.Equal(l.others, others)
	if changed {
		l.configured, l.others = slices.Clone(configured), slices.Clone(others)
	}
	started := l.rounds > 0 || l.busy
	l.mu.Unlock()
	if changed && started {
		l.cfg.Logf("clock: NTP servers changed (%q, %q): syncing now", configured, others)
		select {
		case l.kick <- struct{}{}:
		default: // a round is already due
		}
	}
}

// Run does rounds until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-l.kick:
			timer.Stop()
		}
		wait := l.round(ctx)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(wait)
	}
}

// round does one Sync and records it; it returns the wait before the next.
func (l *Loop) round(ctx context.Context) time.Duration {
	l.mu.Lock()
	conf, oth, pool := Servers(l.configured, l.others, l.cfg.Fallback)
	l.busy = true
	wasPool := l.rounds > 0 && l.pool
	l.mu.Unlock()
	if pool && !wasPool {
		l.cfg.Logf("clock: no NTP server from DHCP or netinit.ntp=, asking the public pool %q", oth)
	}
	r := l.cfg.Syncer.Sync(ctx, conf, oth, l.cfg.Logf)
	now := time.Now
	if l.cfg.Syncer.Now != nil {
		now = l.cfg.Syncer.Now
	}
	l.mu.Lock()
	l.rounds++
	l.last, l.pool = r, pool
	l.servers = append(conf, oth...)
	switch {
	case r.Set:
		l.failures = 0
		l.lastSync = now()
	case r.Measured:
		l.failures = 0
	default:
		l.failures++
	}
	wait := Backoff(l.failures, l.cfg.Retry, l.cfg.Interval)
	l.next = now().Add(wait)
	l.busy = false
	if l.rounds == 1 {
		l.first1 = r
		close(l.first)
	}
	l.mu.Unlock()
	l.cfg.Changed()
	return wait
}

// First waits, bounded by ctx, for the first round and returns its
// outcome (ok false when ctx ended first, or l is nil).
func (l *Loop) First(ctx context.Context) (r Result, ok bool) {
	if l == nil {
		return Result{Err: "the clock loop is not running"}, false
	}
	select {
	case <-ctx.Done():
		return Result{Err: "the first NTP round did not end in time"}, false
	case <-l.first:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first1, true
}

// State is the clock part of the state file (nil before the first round).
func (l *Loop) State() *state.Clock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rounds == 0 {
		return nil
	}
	c := l.last.State()
	c.Servers = slices.Clone(l.servers)
	c.Pool = l.pool
	c.Rounds = l.rounds
	if !l.lastSync.IsZero() {
		t := l.lastSync.UTC()
		c.LastSync = &t
	}
	next := l.next.UTC()
	c.NextSync = &next
	return c
}

// State is the state file's record of one Sync.
func (r Result) State() *state.Clock {
	c := &state.Clock{Server: r.Server, OffsetMS: r.Offset.Milliseconds(), Set: r.Set, Measured: r.Measured, Method: r.Method, Error: r.Err}
	for _, s := range r.Sources {
		c.Sources = append(c.Sources, state.ClockSource{Server: s.Server, Configured: s.Configured, OffsetMS: s.Offset.Milliseconds(), Error: s.Err})
	}
	return c
}
