// Package clock sets the system clock from NTP before anything that depends
// on it runs.
//
// Why it runs before WireGuard: a WireGuard responder drops a handshake
// initiation whose TAI64N timestamp is not newer than the greatest one it
// has seen from that static key (WireGuard paper §5.1, "replay attack"
// protection). A node without a good RTC that reboots with a clock in the
// past and the same key is ignored by its gateway until its clock catches
// up with the previous boot, so the clock is stepped first.
//
// The NTP client is github.com/beevik/ntp (SNTP, RFC 4330 / RFC 5905
// on-wire protocol); this package only adds parallel queries, bounds and
// the step.
package clock

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beevik/ntp"
)

// DefaultTimeout bounds a whole Sync when ctx has no earlier deadline.
const DefaultTimeout = 3 * time.Second

// Result is the outcome of one Sync, meant for the state file and logs.
type Result struct {
	// Server is the server whose answer was used ("" when none answered).
	Server string `json:"server"`
	// Offset is what the clock was (or would have been) stepped by: true
	// time minus local time.
	Offset time.Duration `json:"offset"`
	// Set reports whether the system clock was stepped.
	Set bool `json:"set"`
	// Err says what went wrong ("" on success).
	Err string `json:"err,omitempty"`
}

// Syncer queries NTP servers and steps a clock. The zero value uses the
// system clock; tests replace Now and Set so that the machine's real clock
// is never touched.
type Syncer struct {
	// Timeout bounds the whole Sync (DefaultTimeout when 0); ctx may
	// bound it further.
	Timeout time.Duration
	// Now is the local clock (time.Now when nil).
	Now func() time.Time
	// Set steps the clock to t (SetSystemClock when nil).
	Set func(t time.Time) error
	// Port is the NTP port (123 when 0).
	Port int
}

// Sync queries servers in parallel with DefaultTimeout and steps the
// system clock to the first valid answer.
func Sync(ctx context.Context, servers []string, logf func(string, ...any)) Result {
	return (&Syncer{}).Sync(ctx, servers, logf)
}

type answer struct {
	server string
	resp   *ntp.Response
	err    error
}

// Sync queries all servers at once, takes the first answer that passes
// the sanity checks of RFC 5905 (ntp.Response.Validate: stratum, leap
// indicator, root distance, reference time freshness) and steps the clock
// by its offset. When no server answers within the bound it says so in
// Result.Err and logs it; the clock is left alone.
func (s *Syncer) Sync(ctx context.Context, servers []string, logf func(string, ...any)) Result {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	set := s.Set
	if set == nil {
		set = SetSystemClock
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if len(servers) == 0 {
		logf("clock: NO NTP servers known (no DHCP option 42, none configured): the clock is NOT set")
		return Result{Err: "no NTP servers"}
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	answers := make(chan answer, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.query(ctx, srv, time.Until(deadline), now)
			answers <- answer{server: srv, resp: resp, err: err}
		}()
	}
	// Every query ends when ctx ends (its socket is closed then), so
	// cancelling and waiting is bounded.
	defer wg.Wait()
	defer cancel()

	var errs []string
	for range servers {
		a := <-answers
		if a.err != nil {
			logf("clock: ntp %s: %v", a.server, a.err)
			errs = append(errs, fmt.Sprintf("%s: %v", a.server, a.err))
			continue
		}
		// The offset is relative, so applying it to the current local
		// time a moment later is still right (RFC 5905 §8: theta).
		r := Result{Server: a.server, Offset: a.resp.ClockOffset}
		target := now().Add(a.resp.ClockOffset)
		if err := set(target); err != nil {
			r.Err = fmt.Sprintf("setting the clock to %s (from %s): %v", target.UTC().Format(time.RFC3339), a.server, err)
			logf("clock: %s", r.Err)
			return r
		}
		r.Set = true
		logf("clock: stepped by %s to %s from ntp %s (stratum %d, rtt %s)",
			r.Offset.Round(time.Millisecond), target.UTC().Format(time.RFC3339), a.server, a.resp.Stratum, a.resp.RTT.Round(time.Millisecond))
		return r
	}
	sort.Strings(errs)
	r := Result{Err: "no NTP server answered: " + strings.Join(errs, "; ")}
	logf("clock: NO NTP server answered, the clock is NOT set (WireGuard handshakes may be ignored by peers): %s", strings.Join(errs, "; "))
	return r
}

// query asks one server, bounded by ctx (name resolution and the exchange).
func (s *Syncer) query(ctx context.Context, server string, timeout time.Duration, now func() time.Time) (*ntp.Response, error) {
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	opt := ntp.QueryOptions{
		Timeout:       timeout,
		Port:          s.Port,
		GetSystemTime: now,
		Dialer: func(laddr, raddr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "udp", raddr)
			if err != nil {
				return nil, err
			}
			// Close the socket when ctx ends so the library's read returns.
			stop := context.AfterFunc(ctx, func() { c.Close() })
			return &stopConn{Conn: c, stop: stop}, nil
		},
	}
	resp, err := ntp.QueryWithOptions(server, opt)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer in time: %w", ctx.Err())
		}
		return nil, fmt.Errorf("query: %w", err)
	}
	if err := resp.Validate(); err != nil {
		return nil, fmt.Errorf("answer rejected (stratum %d, leap %d): %w", resp.Stratum, resp.Leap, err)
	}
	return resp, nil
}

// stopConn releases the AfterFunc when the library closes the socket.
type stopConn struct {
	net.Conn
	stop func() bool
}

func (c *stopConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
