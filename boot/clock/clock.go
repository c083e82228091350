// Package clock sets the system clock from NTP before anything that depends
// on it runs, and keeps it right afterwards (Loop).
//
// Why it runs before WireGuard: a WireGuard responder drops a handshake
// initiation whose TAI64N timestamp is not newer than the greatest one it
// has seen from that static key (WireGuard paper §5.1, "replay attack"
// protection). A node without a good RTC that reboots with a clock in the
// past and the same key is ignored by its gateway until its clock catches
// up with the previous boot, so the clock is stepped first.
//
// The NTP client is github.com/beevik/ntp (SNTP, RFC 4330 / RFC 5905
// on-wire protocol); this package only adds parallel queries, bounds,
// the step or slew, and the loop.
package clock

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beevik/ntp"
)

// DefaultTimeout bounds a whole Sync when ctx has no earlier deadline.
const DefaultTimeout = 3 * time.Second

// StepBound is the largest step one NTP source may cause alone. A larger
// one needs a second source agreeing within AgreeWithin: NTP is
// unauthenticated and any link's DHCP (option 42, DHCPv6 NTP) can name a
// server, so one liar could otherwise move the clock years ahead, and a
// WireGuard gateway that saw the resulting handshake timestamps would
// ignore the node once its clock is right again (WireGuard paper §5.1).
// 1000 s is ntpd's panic threshold (RFC 5905 §10, PANICT): more than
// honest RTC drift between boots, far less than a wrong RTC (1970, a
// local-time RTC) which then needs two sources.
const StepBound = 1000 * time.Second

// SlewBound is the largest offset that is slewed rather than stepped. The
// kernel slews an adjtime(3) correction (ADJ_OFFSET_SINGLESHOT) at 500 ppm
// (MAX_TICKADJ): 0.5 s takes 1000 s, about one round of the clock loop
// (DefaultInterval), so a larger offset would still be there at the next
// round and the clock would stay wrong for many rounds. Below it the
// clock never jumps (no timestamp seen twice, no timer firing early);
// above it a step is better for everything the node runs (TLS validity,
// chain signatures, WireGuard handshakes) than being wrong for an hour.
// ntpd steps above 128 ms (RFC 5905 §10, STEPT) because it also
// disciplines the frequency; this loop only corrects the offset.
const SlewBound = 500 * time.Millisecond

// How a clock is corrected (Result.Method, state clock.method).
const (
	MethodSlew = "slew"
	MethodStep = "step"
)

// Method says how an offset chosen by the two-source rule is applied:
// slewed when within slewBound, stepped otherwise.
func Method(offset, slewBound time.Duration) string {
	if offset.Abs() <= slewBound {
		return MethodSlew
	}
	return MethodStep
}

// AgreeWithin is how close two sources' offsets must be to agree: network
// jitter and honest servers' errors are milliseconds.
const AgreeWithin = 2 * time.Second

// Result is the outcome of one Sync, meant for the state file and logs.
type Result struct {
	// Server is the server whose answer was used ("" when none was).
	Server string `json:"server"`
	// Offset is what the clock was (or would have been) stepped by: true
	// time minus local time.
	Offset time.Duration `json:"offset"`
	// Set reports whether the system clock was corrected (Method says
	// how).
	Set bool `json:"set"`
	// Method is MethodSlew or MethodStep when Set.
	Method string `json:"method,omitempty"`
	// Measured reports that Offset was chosen and deliberately not
	// applied (Syncer.Measure).
	Measured bool `json:"measured,omitempty"`
	// Err says what went wrong ("" on success).
	Err string `json:"err,omitempty"`
	// Sources is every server asked and what it said, in the order given.
	Sources []Source `json:"sources,omitempty"`
}

// Source is one server's answer.
type Source struct {
	Server     string        `json:"server"`
	Configured bool          `json:"configured"` // netinit.ntp=, preferred
	Offset     time.Duration `json:"offset"`     // when Err is ""
	Err        string        `json:"err,omitempty"`
}

// Syncer queries NTP servers and corrects a clock. The zero value uses
// the system clock; tests replace Now, Set and Adjust so that the
// machine's real clock is never touched.
type Syncer struct {
	// Timeout bounds the whole Sync (DefaultTimeout when 0); ctx may
	// bound it further.
	Timeout time.Duration
	// Now is the local clock (time.Now when nil).
	Now func() time.Time
	// Set steps the clock to t (SetSystemClock when nil).
	Set func(t time.Time) error
	// Adjust slews the clock by d, replacing any slew still in progress
	// (adjtime(3) semantics; Adjust(0) cancels it). When nil it is
	// SlewSystemClock if Set is nil too; a Syncer with only Set replaced
	// steps every offset through Set, so it never touches the real clock.
	Adjust func(d time.Duration) error
	// SlewBound is the largest offset slewed (SlewBound when 0).
	SlewBound time.Duration
	// Port is the NTP port (123 when 0).
	Port int
	// Measure only: the offset is chosen as for a correction and
	// recorded (Result.Measured), and the clock is left alone. `netinit
	// up` runs in a namespace of a host that keeps its own clock.
	Measure bool
}

// Sync queries servers in parallel with DefaultTimeout and steps the
// system clock (see Syncer.Sync).
func Sync(ctx context.Context, configured, others []string, logf func(string, ...any)) Result {
	return (&Syncer{}).Sync(ctx, configured, others, logf)
}

type answer struct {
	i    int // index in the servers asked
	resp *ntp.Response
	err  error
}

// Sync queries all servers at once (configured: the farmer's netinit.ntp=,
// preferred; others: those learnt from DHCP) and keeps the answers that
// pass the sanity checks of RFC 5905 (ntp.Response.Validate: stratum,
// leap indicator, root distance, reference time freshness). It corrects
// the clock (slewed within SlewBound, stepped beyond) as soon as it can
// decide:
//   - by an offset within StepBound from one source: a configured one, or
//     another once no configured server is left to answer;
//   - by a larger offset only when two sources agree within AgreeWithin.
//
// When it cannot decide within the bound it says why in Result.Err and
// logs it; the clock is left alone.
func (s *Syncer) Sync(ctx context.Context, configured, others []string, logf func(string, ...any)) Result {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	set, adjust := s.Set, s.Adjust
	if set == nil {
		set = SetSystemClock
		if adjust == nil {
			adjust = SlewSystemClock
		}
	}
	slewBound := s.SlewBound
	if slewBound <= 0 {
		slewBound = SlewBound
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var srcs []Source
	for _, srv := range configured {
		srcs = append(srcs, Source{Server: srv, Configured: true})
	}
	for _, srv := range others {
		if !slices.Contains(configured, srv) {
			srcs = append(srcs, Source{Server: srv})
		}
	}
	if len(srcs) == 0 {
		logf("clock: NO NTP servers known (no DHCP option 42, none configured): the clock is NOT set")
		return Result{Err: "no NTP servers"}
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	answers := make(chan answer, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.query(ctx, src.Server, time.Until(deadline), now)
			answers <- answer{i: i, resp: resp, err: err}
		}()
	}
	// Every query ends when ctx ends (its socket is closed then), so
	// cancelling and waiting is bounded.
	defer wg.Wait()
	defer cancel()

	var got []answer // valid answers, configured servers first
	pending := map[bool]int{}
	for _, src := range srcs {
		pending[src.Configured]++
	}
	var pick *answer
	var why string
	for range srcs {
		a := <-answers
		src := &srcs[a.i]
		pending[src.Configured]--
		if a.err != nil {
			logf("clock: ntp %s: %v", src.Server, a.err)
			src.Err = a.err.Error()
		} else {
			src.Offset = a.resp.ClockOffset
			got = append(got, a)
			slices.SortStableFunc(got, func(x, y answer) int { return x.i - y.i })
		}
		if pick, why = choose(srcs, got, pending[true] == 0, pending[true]+pending[false] == 0); pick != nil {
			break
		}
	}
	if pick == nil {
		r := Result{Err: why, Sources: srcs}
		logf("clock: the clock is NOT set: %s", why)
		return r
	}
	src := srcs[pick.i]
	r := Result{Server: src.Server, Offset: pick.resp.ClockOffset, Sources: srcs}
	if s.Measure {
		r.Measured = true
		logf("clock: %s off by %s from ntp %s (%s); left alone, measured only",
			now().UTC().Format(time.RFC3339), r.Offset.Round(time.Millisecond), src.Server, why)
		return r
	}
	r.Method = Method(r.Offset, slewBound)
	if adjust == nil {
		r.Method = MethodStep
	}
	if r.Method == MethodSlew {
		if err := adjust(r.Offset); err != nil {
			r.Err = fmt.Sprintf("slewing the clock by %s (from %s): %v", r.Offset, src.Server, err)
			logf("clock: %s", r.Err)
			return r
		}
		r.Set = true
		// The daemon's loop slews a few milliseconds every round: only
		// a correction worth noticing is an event for the console (the
		// state records every round).
		if r.Offset.Abs() >= slewBound/10 {
			logf("clock: slewing by %s from ntp %s (%s, stratum %d, rtt %s)",
				r.Offset.Round(time.Millisecond), src.Server, why, pick.resp.Stratum, pick.resp.RTT.Round(time.Millisecond))
		}
		return r
	}
	if adjust != nil {
		// A slew still in progress would move the stepped clock again.
		if err := adjust(0); err != nil {
			logf("clock: cancelling the slew in progress: %v", err)
		}
	}
	// The offset is relative, so applying it to the current local time a
	// moment later is still right (RFC 5905 §8: theta).
	target := now().Add(r.Offset)
	if err := set(target); err != nil {
		r.Err = fmt.Sprintf("setting the clock to %s (from %s): %v", target.UTC().Format(time.RFC3339), src.Server, err)
		logf("clock: %s", r.Err)
		return r
	}
	r.Set = true
	logf("clock: stepped by %s to %s from ntp %s (%s, stratum %d, rtt %s)",
		r.Offset.Round(time.Millisecond), target.UTC().Format(time.RFC3339), src.Server, why,
		pick.resp.Stratum, pick.resp.RTT.Round(time.Millisecond))
	return r
}

// choose picks the answer to step by among got (valid answers, in the
// order of srcs: configured first), or says why none can be picked yet.
// configuredDone: no configured server is still to answer; final: no
// server is.
func choose(srcs []Source, got []answer, configuredDone, final bool) (*answer, string) {
	for i := range got {
		a := &got[i]
		if a.resp.ClockOffset.Abs() > StepBound {
			continue
		}
		if srcs[a.i].Configured {
			return a, "configured"
		}
		if configuredDone {
			return a, "within " + StepBound.String() + " of the local clock"
		}
	}
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			if (got[i].resp.ClockOffset - got[j].resp.ClockOffset).Abs() <= AgreeWithin {
				return &got[i], "agrees with " + srcs[got[j].i].Server
			}
		}
	}
	if !final {
		return nil, ""
	}
	if len(got) == 0 {
		var errs []string
		for _, src := range srcs {
			errs = append(errs, fmt.Sprintf("%s: %s", src.Server, src.Err))
		}
		sort.Strings(errs)
		return nil, "no NTP server answered: " + strings.Join(errs, "; ")
	}
	var says []string
	for _, a := range got {
		says = append(says, fmt.Sprintf("%s says %s", srcs[a.i].Server, a.resp.ClockOffset.Round(time.Millisecond)))
	}
	return nil, fmt.Sprintf("a step over %s needs two sources agreeing within %s: %s", StepBound, AgreeWithin, strings.Join(says, ", "))
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
