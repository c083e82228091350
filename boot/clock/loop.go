package clock

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
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

// Servers is the set one round asks: configured (netinit.ntp=,
// preferred), else the pool (the run mode's public pool, reported by
// usedPool), then learned (DHCPv4 option 42, DHCPv6 NTP, each with its
// lease), less any name already there. The pool is asked beside the
// servers a lease names: a large step needs a configured or pool server
// agreeing (Syncer.Sync), and a node whose farm only names its LAN's
// servers must still be able to get a wrong clock right.
func Servers(configured []string, learned []Server, pool []string) (servers []Server, usedPool bool) {
	servers = Named(KindConfigured, "", configured...)
	if len(configured) == 0 {
		servers, usedPool = Named(KindPool, "", pool...), len(pool) > 0
	}
	for _, l := range learned {
		if !slices.ContainsFunc(servers, func(s Server) bool { return s.Name == l.Name }) {
			servers = append(servers, l)
		}
	}
	return servers, usedPool
}

// LoopConfig is what a Loop needs.
type LoopConfig struct {
	// Syncer does each round (the system clock when nil).
	Syncer *Syncer
	// Interval between rounds that succeed (DefaultInterval when 0).
	Interval time.Duration
	// Retry is the first wait after a failed round (DefaultRetry when 0).
	Retry time.Duration
	// Pool is the run mode's public pool: asked when no server is
	// configured.
	Pool []string
	// FloorFile is where a round that a configured or pool server
	// confirmed within StepBound saves the time (SaveFloor); "" none.
	FloorFile string
	Logf      console.Logf
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
	learned    []Server
	owner      string // the other program that keeps the clock, at the last round
	rounds     int
	failures   int
	busy       bool // a round is running
	last       Result
	first1     Result // the first round's
	servers    []string
	pool       bool
	lastSync   time.Time
	next       time.Time
	floorErr   string // the last error saving the floor, said once
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
		cfg.Logf = console.Discard
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	return &Loop{cfg: cfg, kick: make(chan struct{}, 1), first: make(chan struct{})}
}

// SetServers gives the servers known now: configured (netinit.ntp=) and
// learned from the leases. A change starts a round at once: a new DHCP
// lease may be the first to name a reachable server, and a server that is
// gone should not be asked for another interval.
func (l *Loop) SetServers(configured []string, learned []Server) {
	l.mu.Lock()
	changed := !slices.Equal(l.configured, configured) || !slices.Equal(l.learned, learned)
	if changed {
		l.configured, l.learned = slices.Clone(configured), slices.Clone(learned)
	}
	started := l.rounds > 0 || l.busy
	l.mu.Unlock()
	if changed && started {
		l.cfg.Logf("clock: NTP servers changed (configured %q, learned %s): syncing now", configured, names(learned))
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
	servers, pool := Servers(l.configured, l.learned, l.cfg.Pool)
	l.busy = true
	wasPool := l.rounds > 0 && l.pool
	owner := l.owner
	l.mu.Unlock()
	if pool && !wasPool {
		l.cfg.Logf("clock: no NTP server in netinit.ntp=, asking the public pool %q too", l.cfg.Pool)
	}
	// Who keeps the clock is said before the round's own line; the
	// round asks again (Syncer.Owner) before it corrects anything.
	is, _ := l.cfg.Syncer.owner()
	l.handOver(owner, is)
	r := l.cfg.Syncer.Sync(ctx, servers, l.cfg.Logf)
	now := time.Now
	if l.cfg.Syncer.Now != nil {
		now = l.cfg.Syncer.Now
	}
	l.saveFloor(r, now)
	l.mu.Lock()
	l.rounds++
	l.last, l.pool, l.owner = r, pool, is
	l.servers = names(servers)
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

// handOver says when another program starts or stops keeping the clock
// (was and is: Result.Owner of the last round and of this one). When one
// starts, a slew of netinit's still in progress is cancelled: from then
// on the clock has one owner (issue 26).
func (l *Loop) handOver(was, is string) {
	switch {
	case is != "" && was == "":
		l.cfg.Logf("clock: %s keeps the clock from now on: netinit only measures", is)
		if err := l.cfg.Syncer.cancelSlew(); err != nil {
			l.cfg.Logf("clock: cancelling netinit's slew in progress: %v", err)
		}
	case is == "" && was != "":
		l.cfg.Logf("clock: %s is gone: netinit keeps the clock again", was)
	}
}

// saveFloor saves the time a configured or pool server confirmed within
// StepBound (LoopConfig.FloorFile). Only such a round: a time from the
// LAN alone, or a large step not yet confirmed by a round after it, would
// make a floor that no later step back could go below.
func (l *Loop) saveFloor(r Result, now func() time.Time) {
	if l.cfg.FloorFile == "" || r.Err != "" || !r.Trusted || !(r.Set || r.Measured) || r.Offset.Abs() > StepBound {
		return
	}
	t := now()
	if r.Measured {
		t = t.Add(r.Offset)
	}
	if err := SaveFloor(l.cfg.FloorFile, t); err != nil && err.Error() != l.floorErr {
		l.cfg.Logf("clock: %v", err)
		l.floorErr = err.Error()
	}
}

// names are the servers' names, in order.
func names(servers []Server) []string {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		out = append(out, s.Name)
	}
	return out
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
	c := &state.Clock{Server: r.Server, OffsetMS: r.Offset.Milliseconds(), Set: r.Set, Measured: r.Measured, Method: r.Method,
		Owner: r.Owner, Error: r.Err}
	if !r.Floor.IsZero() {
		f := r.Floor.UTC()
		c.Floor = &f
	}
	for _, s := range r.Sources {
		c.Sources = append(c.Sources, state.ClockSource{Server: s.Server, Configured: s.Configured, Origin: s.Origin,
			Address: s.Address, OffsetMS: s.Offset.Milliseconds(), Error: s.Err})
	}
	return c
}
