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
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beevik/ntp"

	"github.com/threefoldtech/netinit/boot/console"
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

// Kind says who named an NTP server, which decides what its word is
// worth (issue 29): the farmer (netinit.ntp=) and the image (the run
// mode's pool) are trusted; a server learnt from a lease is only as good
// as whoever answered on the LAN, and one DHCP server can name several.
type Kind string

const (
	KindConfigured Kind = "configured" // netinit.ntp=
	KindPool       Kind = "pool"       // the run mode's public pool
	KindDHCP4      Kind = "dhcp4"      // DHCPv4 option 42 of a lease
	KindDHCP6      Kind = "dhcp6"      // DHCPv6 NTP option (RFC 5908) of a lease
)

// Server is an NTP server to ask and who named it.
type Server struct {
	Name string // a host name or an address
	Kind Kind
	Link string // the link of the lease that named it (dhcp4, dhcp6)
}

// Named is the servers names, all named by kind (on link, for a lease).
func Named(kind Kind, link string, names ...string) []Server {
	out := make([]Server, 0, len(names))
	for _, n := range names {
		out = append(out, Server{Name: n, Kind: kind, Link: link})
	}
	return out
}

// Trusted reports whether the server was named by the farmer or the image
// rather than learnt from the LAN.
func (s Server) Trusted() bool { return s.Kind == KindConfigured || s.Kind == KindPool }

// Origin says who named the server, in words ("dhcp4 on eth0").
func (s Server) Origin() string {
	if s.Link != "" {
		return string(s.Kind) + " on " + s.Link
	}
	return string(s.Kind)
}

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
	// applied (Syncer.Measure, or Owner says another program keeps the
	// clock).
	Measured bool `json:"measured,omitempty"`
	// Trusted: the answer used came from a configured or pool server
	// (alone, or agreeing with another).
	Trusted bool `json:"trusted,omitempty"`
	// Owner is the other program that keeps the clock (Syncer.Owner),
	// when one runs: the round only measured.
	Owner string `json:"owner,omitempty"`
	// Floor is the earliest time the clock may be set to (zero: none).
	Floor time.Time `json:"floor,omitempty"`
	// Err says what went wrong ("" on success).
	Err string `json:"err,omitempty"`
	// Sources is every server asked and what it said, in the order given.
	Sources []Source `json:"sources,omitempty"`
}

// Source is one server's answer.
type Source struct {
	Server     string        `json:"server"`
	Configured bool          `json:"configured"` // netinit.ntp=, preferred
	Origin     string        `json:"origin"`     // Server.Origin
	Address    string        `json:"address,omitempty"`
	Offset     time.Duration `json:"offset"` // when Err is ""
	Err        string        `json:"err,omitempty"`

	srv  Server
	addr netip.AddrPort // where the answer came from
}

// Syncer queries NTP servers and corrects a clock. The zero value uses
// the system clock; tests replace Now, Set and Adjust so that the
// machine's real clock is never touched.
type Syncer struct {
	// Timeout bounds the whole Sync (DefaultTimeout when 0); ctx may
	// bound it further. It is also how long the configured and pool
	// servers are waited for before a LAN-learned answer alone is used.
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
	// Floor is the earliest time the clock may be set to (Floor: the
	// image's build time, the last time saved on the cache disk); nil:
	// none. A clock before it is set to it first; an answer before it
	// is refused.
	Floor func() time.Time
	// Owner says whether another program keeps the clock (NTPD: 0-OS's
	// ntpd) and which; while one does, a Sync only measures. It is asked
	// when a Sync starts and again just before it would correct the
	// clock. nil: none ever does.
	Owner func() (who string, ok bool)
}

// Sync queries servers in parallel with DefaultTimeout and corrects the
// system clock (see Syncer.Sync).
func Sync(ctx context.Context, servers []Server, logf console.Logf) Result {
	return (&Syncer{}).Sync(ctx, servers, logf)
}

type answer struct {
	i    int // index in the servers asked
	resp *ntp.Response
	addr netip.AddrPort
	err  error
}

// Sync queries all servers at once (the first of equal names is kept)
// and keeps the answers that pass the sanity checks of RFC 5905
// (ntp.Response.Validate: stratum, leap indicator, root distance,
// reference time freshness) and the floor. It corrects the clock (slewed
// within SlewBound, stepped beyond) as soon as it can decide (choose):
//   - by an offset within StepBound from one source: a configured one at
//     once, the pool's once no configured server is left to answer, a
//     LAN-learned one only once no configured or pool server is left to
//     answer and none of them answered;
//   - by a larger offset (a step back too: a bad step can be undone) only
//     when two independent sources agree within AgreeWithin, one of them
//     configured or the pool, once every configured and pool server has
//     answered: never on LAN-learned sources alone.
//
// When it cannot decide within the bound it says why in Result.Err and
// logs it; the clock is left alone, the answers are in Result.Sources.
func (s *Syncer) Sync(ctx context.Context, servers []Server, logf console.Logf) Result {
	if logf == nil {
		logf = console.Discard
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
	for _, srv := range servers {
		if !slices.ContainsFunc(srcs, func(x Source) bool { return x.srv.Name == srv.Name }) {
			srcs = append(srcs, Source{Server: srv.Name, Configured: srv.Kind == KindConfigured, Origin: srv.Origin(), srv: srv})
		}
	}
	var r Result
	measure := s.Measure
	if who, ok := s.owner(); ok {
		measure, r.Owner = true, who
	}
	if s.Floor != nil {
		r.Floor = s.Floor()
	}
	if len(srcs) == 0 {
		logf("clock: NO NTP servers known (no DHCP option 42, none configured): the clock is NOT set")
		r.Err = "no NTP servers"
		return r
	}
	if !measure && !r.Floor.IsZero() && now().Before(r.Floor) {
		// The clock cannot be right (a dead RTC, 1970): the floor is
		// nearer the truth, and TLS and WireGuard timestamps need a
		// roughly right clock before any answer comes.
		was := now()
		if err := set(r.Floor); err != nil {
			logf("clock: %s is before the floor %s; setting it there: %v", was.UTC().Format(time.RFC3339), r.Floor.UTC().Format(time.RFC3339), err)
		} else {
			logf("clock: %s is before the floor %s (the image's build time or the last time saved): set to it", was.UTC().Format(time.RFC3339), r.Floor.UTC().Format(time.RFC3339))
		}
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
			resp, addr, err := s.query(ctx, src.Server, time.Until(deadline), now)
			answers <- answer{i: i, resp: resp, addr: addr, err: err}
		}()
	}
	// Every query ends when ctx ends (its socket is closed then), so
	// cancelling and waiting is bounded.
	defer wg.Wait()
	defer cancel()

	var got []answer // valid answers, in the order of srcs
	var pend pending
	for _, src := range srcs {
		pend.add(src.srv, 1)
	}
	var pick *answer
	var why string
	for range srcs {
		a := <-answers
		src := &srcs[a.i]
		pend.add(src.srv, -1)
		if a.addr.IsValid() {
			src.addr, src.Address = a.addr, a.addr.Addr().String()
		}
		if a.err == nil && !r.Floor.IsZero() && now().Add(a.resp.ClockOffset).Before(r.Floor) {
			a.err = fmt.Errorf("says %s, before the floor %s", now().Add(a.resp.ClockOffset).UTC().Format(time.RFC3339), r.Floor.UTC().Format(time.RFC3339))
		}
		if a.err != nil {
			logf("clock: ntp %s (%s): %v", src.Server, src.Origin, a.err)
			src.Err = a.err.Error()
		} else {
			src.Offset = a.resp.ClockOffset
			got = append(got, a)
			slices.SortStableFunc(got, func(x, y answer) int { return x.i - y.i })
		}
		if pick, why = choose(srcs, got, pend); pick != nil {
			break
		}
	}
	r.Sources = srcs
	if pick == nil {
		r.Err = why
		logf("clock: the clock is NOT set: %s", why)
		return r
	}
	src := srcs[pick.i]
	r.Server, r.Offset, r.Trusted = src.Server, pick.resp.ClockOffset, src.srv.Trusted()
	if who, ok := s.owner(); ok && !measure {
		measure, r.Owner = true, who
	}
	if measure {
		r.Measured = true
		left := "measured only"
		if r.Owner != "" {
			left = "left to " + r.Owner
		}
		logf("clock: %s off by %s from ntp %s (%s); %s",
			now().UTC().Format(time.RFC3339), r.Offset.Round(time.Millisecond), src.Server, why, left)
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

// cancelSlew cancels a slew of the Syncer's still in progress.
func (s *Syncer) cancelSlew() error {
	switch {
	case s.Adjust != nil:
		return s.Adjust(0)
	case s.Set == nil:
		return SlewSystemClock(0)
	}
	return nil
}

// owner asks Syncer.Owner.
func (s *Syncer) owner() (string, bool) {
	if s.Owner == nil {
		return "", false
	}
	return s.Owner()
}

// pending counts the servers still to answer, by who named them.
type pending struct{ configured, pool, lan int }

func (p *pending) add(s Server, n int) {
	switch s.Kind {
	case KindConfigured:
		p.configured += n
	case KindPool:
		p.pool += n
	default:
		p.lan += n
	}
}

// independent reports whether two sources' agreement counts: never two
// names of one server (the same address and port answered: NTP's port is
// one for all servers, so the address), never two servers
// named by one lease (one DHCP server can name any number).
func independent(a, b Source) bool {
	if a.addr.IsValid() && a.addr == b.addr {
		return false
	}
	if !a.srv.Trusted() && !b.srv.Trusted() && a.srv.Kind == b.srv.Kind && a.srv.Link == b.srv.Link {
		return false
	}
	return true
}

// choose picks the answer to correct the clock by among got (valid
// answers, in the order of srcs: configured first), or says why none can
// be picked yet ("" while servers that could decide are still to answer;
// p counts them).
func choose(srcs []Source, got []answer, p pending) (*answer, string) {
	trusted := func(a *answer) bool { return srcs[a.i].srv.Trusted() }
	small := func(a *answer) bool { return a.resp.ClockOffset.Abs() <= StepBound }
	trustedDone := p.configured+p.pool == 0
	anyTrusted := false
	for i := range got {
		a := &got[i]
		if !trusted(a) {
			continue
		}
		anyTrusted = true
		switch {
		case !small(a):
		case srcs[a.i].srv.Kind == KindConfigured:
			return a, "configured"
		case p.configured == 0:
			return a, "the run mode's pool, within " + StepBound.String() + " of the local clock"
		}
	}
	// A larger offset: two independent sources agreeing, one of them
	// trusted, once every trusted server has answered (or the round's
	// bound passed: a configured server that disagrees must be heard).
	// The trusted one is used (configured first).
	for i := range got {
		if !trustedDone {
			break
		}
		for j := range got {
			a, b := &got[i], &got[j]
			if i == j || !trusted(a) || (trusted(b) && j < i) {
				continue
			}
			if (a.resp.ClockOffset-b.resp.ClockOffset).Abs() <= AgreeWithin && independent(srcs[a.i], srcs[b.i]) {
				return a, fmt.Sprintf("agrees with %s (%s)", srcs[b.i].Server, srcs[b.i].Origin)
			}
		}
	}
	if trustedDone && !anyTrusted {
		for i := range got {
			if a := &got[i]; small(a) {
				return a, fmt.Sprintf("%s, within %s of the local clock; no configured or pool server answered", srcs[a.i].Origin, StepBound)
			}
		}
	}
	if p.configured+p.pool+p.lan > 0 {
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
		says = append(says, fmt.Sprintf("%s (%s) says %s", srcs[a.i].Server, srcs[a.i].Origin, a.resp.ClockOffset.Round(time.Millisecond)))
	}
	if !anyTrusted {
		// Measured and reported, never taken: whoever answers DHCP on
		// the LAN names these servers (issue 29).
		return nil, fmt.Sprintf("a step over %s on LAN-learned servers alone is never taken (it needs a configured or pool server agreeing): %s",
			StepBound, strings.Join(says, ", "))
	}
	if !slices.ContainsFunc(got, func(a answer) bool { return trusted(&a) && small(&a) }) {
		return nil, fmt.Sprintf("a step over %s needs two independent sources agreeing within %s, one of them configured or the pool: %s",
			StepBound, AgreeWithin, strings.Join(says, ", "))
	}
	return nil, "the configured and pool servers disagree: " + strings.Join(says, ", ")
}

// query asks one server, bounded by ctx (name resolution and the
// exchange), and says which address answered.
func (s *Syncer) query(ctx context.Context, server string, timeout time.Duration, now func() time.Time) (*ntp.Response, netip.AddrPort, error) {
	if timeout <= 0 {
		return nil, netip.AddrPort{}, context.DeadlineExceeded
	}
	var remote netip.AddrPort
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
			if ua, ok := c.RemoteAddr().(*net.UDPAddr); ok {
				remote = netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
			}
			// Close the socket when ctx ends so the library's read returns.
			stop := context.AfterFunc(ctx, func() { c.Close() })
			return &stopConn{Conn: c, stop: stop}, nil
		},
	}
	resp, err := ntp.QueryWithOptions(server, opt)
	if err != nil {
		if ctx.Err() != nil {
			return nil, remote, fmt.Errorf("no answer in time: %w", ctx.Err())
		}
		return nil, remote, fmt.Errorf("query: %w", err)
	}
	if err := resp.Validate(); err != nil {
		return nil, remote, fmt.Errorf("answer rejected (stratum %d, leap %d): %w", resp.Stratum, resp.Leap, err)
	}
	return resp, remote, nil
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
