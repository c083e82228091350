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

// maxSources bounds the limiter's memory. When that many sources are
// tracked, full buckets (sources idle long enough to have refilled) are
// forgotten; if none is full, new sources are refused until some are.
const maxSources = 4096

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

// Allow takes a token for a's source and reports whether there was one.
func (l *Limiter) Allow(a netip.Addr) bool {
	key := sourceKey(a)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max && !l.prune(now) {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.perSec)
		b.last = now
	}
}

// prune forgets full buckets; it reports whether there is room now.
func (l *Limiter) prune(now time.Time) bool {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	return len(l.buckets) < l.max
}
