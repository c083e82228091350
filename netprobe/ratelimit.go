package netprobe

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter is a token bucket per source: an IPv4 address, or an IPv6 /64
// (one host usually owns a whole /64, RFC 4291 section 2.5.1, so counting
// single IPv6 addresses would let one host rotate around the limit). Each
// source may make Burst requests at once and then PerMinute per minute.
// An IPv6 source also draws from the bucket of its /48 (a site's usual
// allocation, RFC 6177), which holds PrefixFactor times as much: one
// site cannot multiply its rate by rotating through its 65536 /64s.
type Limiter struct {
	perSec float64
	burst  float64
	max    int
	now    func() time.Time

	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxSources bounds the limiter's memory. When that many buckets are
// tracked, full buckets (sources idle long enough to have refilled) are
// forgotten; if none is full, the most drained one is (a newcomer is
// never refused for want of room).
const maxSources = 4096

// PrefixFactor is how many /64s' worth of requests a /48 may make.
const PrefixFactor = 4

// NewLimiter returns a limiter allowing perMinute requests per minute per
// source with a burst of burst (both at least 1).
func NewLimiter(perMinute, burst int) *Limiter {
	perMinute, burst = max(perMinute, 1), max(burst, 1)
	return &Limiter{
		perSec:  float64(perMinute) / 60,
		burst:   float64(burst),
		max:     maxSources,
		now:     time.Now,
		buckets: make(map[netip.Prefix]*bucket),
	}
}

// sourceKey is the unit a source is counted in.
func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.WithZone("").Prefix(bits)
	return p
}

// siteKey is the wider unit an IPv6 source is also counted in (its /48);
// invalid for IPv4.
func siteKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if !a.Is6() {
		return netip.Prefix{}
	}
	p, _ := a.WithZone("").Prefix(48)
	return p
}

// Allow takes a token for a's source (and its /48) and reports whether
// there was one.
func (l *Limiter) Allow(a netip.Addr) bool {
	src, site := sourceKey(a), siteKey(a)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var bs *bucket
	if site.IsValid() {
		// The /48 first: a source refused there leaves no /64 entry.
		if bs = l.get(site, now, netip.Prefix{}); bs.tokens < 1 {
			return false
		}
	}
	b := l.get(src, now, site)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	if bs != nil {
		bs.tokens--
	}
	return true
}

// capacity is the burst of a key's bucket.
func (l *Limiter) capacity(k netip.Prefix) float64 {
	if k.Addr().Is6() && k.Bits() == 48 {
		return l.burst * PrefixFactor
	}
	return l.burst
}

// get returns k's bucket, refilled, creating it (full) if needed; keep
// is never evicted to make room.
func (l *Limiter) get(k netip.Prefix, now time.Time, keep netip.Prefix) *bucket {
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.max {
			l.makeRoom(now, keep)
		}
		b = &bucket{tokens: l.capacity(k), last: now}
		l.buckets[k] = b
	}
	l.refill(k, b, now)
	return b
}

func (l *Limiter) refill(k netip.Prefix, b *bucket, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		c := l.capacity(k)
		b.tokens = min(c, b.tokens+d.Seconds()*l.perSec*c/l.burst)
		b.last = now
	}
}

// makeRoom forgets full buckets, or else the most drained one (the
// busiest source: forgetting it costs the others nothing).
func (l *Limiter) makeRoom(now time.Time, keep netip.Prefix) {
	var worst netip.Prefix
	worstFill := 2.0
	for k, b := range l.buckets {
		l.refill(k, b, now)
		if k == keep {
			continue
		}
		fill := b.tokens / l.capacity(k)
		if fill >= 1 {
			delete(l.buckets, k)
			continue
		}
		if fill < worstFill {
			worst, worstFill = k, fill
		}
	}
	if len(l.buckets) >= l.max && worst.IsValid() {
		delete(l.buckets, worst)
	}
}
