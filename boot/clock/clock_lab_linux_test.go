package clock

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

type syncOutcome struct {
	Res     Result
	SetTo   time.Time
	SetN    int
	Elapsed time.Duration
	Real    time.Time // the real time just after Sync returned
}

// runSync runs Sync with a local clock skewed by skew and a recording
// setter, so the machine's clock is never changed.
func runSync(configured, others []string, skew, timeout time.Duration) syncOutcome {
	return runSyncOf(append(Named(KindConfigured, "", configured...), lan(others...)...), skew, timeout)
}

// runSyncOf is runSync for servers named by anyone.
func runSyncOf(servers []Server, skew, timeout time.Duration) syncOutcome {
	var mu sync.Mutex
	var o syncOutcome
	s := &Syncer{
		Timeout: timeout,
		Now:     func() time.Time { return time.Now().Add(skew) },
		Set: func(t time.Time) error {
			mu.Lock()
			defer mu.Unlock()
			o.SetTo, o.SetN = t, o.SetN+1
			return nil
		},
	}
	start := time.Now()
	o.Res = s.Sync(context.Background(), servers, func(f string, a ...any) {})
	o.Elapsed = time.Since(start)
	o.Real = time.Now()
	return o
}

const year = 365 * 24 * time.Hour

// TestSyncChrony runs two real NTP servers (chronyd) in a namespace and the
// client in a child inside another namespace whose local clock is ten
// years behind: the time it would set is the real time when both agree,
// although a silent server and a name that does not resolve are queried
// at the same time, and nothing answers when only bad servers are given.
// A lying server (a Go responder ten years ahead, the only part that is
// not chrony) cannot step the clock alone, nor against an honest server,
// and an honest configured server wins a small step over it.
func TestSyncChrony(t *testing.T) {
	if lab.Child() {
		liar := fakeServer(t, 2, 0, 10*year)
		res := map[string]syncOutcome{
			"good":             runSync([]string{"192.0.2.1"}, []string{"198.51.100.7", "no-such-ntp.invalid", "192.0.2.3"}, -10*year, 3*time.Second),
			"bad":              runSync(nil, []string{"198.51.100.7", "no-such-ntp.invalid", "203.0.113.9"}, 0, time.Second),
			"liar alone":       runSync(nil, []string{liar}, 0, time.Second),
			"liar vs one":      runSync([]string{"192.0.2.1"}, []string{liar}, -10*year, time.Second),
			"liar small":       runSync([]string{"192.0.2.1"}, []string{liar}, -30*time.Second, time.Second),
			"preferred silent": runSync([]string{"198.51.100.7"}, []string{"192.0.2.3"}, -30*time.Second, time.Second),
		}
		lab.ChildResult(t, res)
		return
	}
	cli := chronyLab(t)

	var res map[string]syncOutcome
	lab.RunChild(t, cli, 60*time.Second, nil, &res)
	near := func(a, b time.Duration) bool { return (a - b).Abs() <= time.Second }

	good := res["good"]
	t.Logf("good: %+v", good)
	if !good.Res.Set || good.SetN != 1 || good.Res.Server != "192.0.2.1" || good.Res.Err != "" {
		t.Fatalf("sync with two good servers: %+v", good)
	}
	if d := good.Real.Sub(good.SetTo); d < -time.Second || d > time.Second {
		t.Errorf("would have set the clock to %s, real time %s (diff %s)", good.SetTo, good.Real, d)
	}
	if !near(good.Res.Offset, 10*year) {
		t.Errorf("offset = %s, want about 10 years", good.Res.Offset)
	}
	if len(good.Res.Sources) != 4 || !good.Res.Sources[0].Configured || good.Res.Sources[3].Server != "192.0.2.3" || !near(good.Res.Sources[3].Offset, 10*year) {
		t.Errorf("sources: %+v", good.Res.Sources)
	}
	if good.Elapsed > 2*time.Second {
		t.Errorf("sync took %s although two servers answered at once", good.Elapsed)
	}

	bad := res["bad"]
	t.Logf("bad: %+v", bad)
	if bad.Res.Set || bad.SetN != 0 || bad.Res.Server != "" || !strings.Contains(bad.Res.Err, "no NTP server answered") {
		t.Fatalf("sync with no usable server: %+v", bad)
	}
	for _, s := range []string{"198.51.100.7", "no-such-ntp.invalid", "203.0.113.9"} {
		if !strings.Contains(bad.Res.Err, s) {
			t.Errorf("error %q does not name server %s", bad.Res.Err, s)
		}
	}
	if bad.Elapsed > 1500*time.Millisecond {
		t.Errorf("sync with no usable server took %s, bound is 1s", bad.Elapsed)
	}

	for _, name := range []string{"liar alone", "liar vs one"} {
		o := res[name]
		t.Logf("%s: %+v", name, o)
		if o.Res.Set || o.SetN != 0 || !strings.Contains(o.Res.Err, "is never taken") && !strings.Contains(o.Res.Err, "needs two independent sources agreeing") {
			t.Errorf("%s: the clock was stepped: %+v", name, o)
		}
	}
	for _, c := range []struct{ name, server string }{{"liar small", "192.0.2.1"}, {"preferred silent", "192.0.2.3"}} {
		o := res[c.name]
		t.Logf("%s: %+v", c.name, o)
		if !o.Res.Set || o.SetN != 1 || o.Res.Server != c.server || !near(o.Res.Offset, 30*time.Second) {
			t.Errorf("%s: want a 30s step from %s: %+v", c.name, c.server, o)
		}
	}
}

// chronyLab runs two chronyd servers (192.0.2.1 and 192.0.2.3) in a
// namespace and returns the client namespace (192.0.2.2), where
// 198.51.100.0/24 is a black hole.
func chronyLab(t *testing.T) *lab.NS {
	lab.Require(t, "ip", "chronyd")
	lab.GuardResolvConf(t)
	srv, cli := lab.NewNS(t, "ntps"), lab.NewNS(t, "ntpc")
	lab.Link(t, srv, "s0", []string{"192.0.2.1/24", "192.0.2.3/24"}, cli, "c0", []string{"192.0.2.2/24"})
	// A black hole: 198.51.100.7 is routed to the server namespace, which
	// does not forward, so that query can only time out.
	cli.MustExec("ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.1")

	for _, addr := range []string{"192.0.2.1", "192.0.2.3"} {
		lab.Chrony(t, srv, addr, 0)
	}
	return cli
}

// fakeClock is a local clock off by skew that Set and Adjust correct (a
// slew takes effect at once), recording each call; the machine's clock is
// never touched.
type fakeClock struct {
	mu     sync.Mutex
	skew   time.Duration
	Steps  []time.Duration // what each Set moved the clock by
	Slews  []time.Duration // each Adjust
	Finale time.Duration   // the skew at the end
}

func (c *fakeClock) syncer(timeout time.Duration) *Syncer {
	return &Syncer{
		Timeout: timeout,
		Now: func() time.Time {
			c.mu.Lock()
			defer c.mu.Unlock()
			return time.Now().Add(c.skew)
		},
		Set: func(t time.Time) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			d := time.Until(t) - c.skew
			c.skew += d
			c.Steps = append(c.Steps, d)
			return nil
		},
		Adjust: func(d time.Duration) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.skew += d
			c.Slews = append(c.Slews, d)
			return nil
		},
	}
}

type loopOutcome struct {
	State *state.Clock
	Clock *fakeClock
	Mid   *state.Clock // before the change of servers
}

// runLoop runs a loop on a fake clock until done says so (bounded).
func runLoop(cfg LoopConfig, skew time.Duration, servers []string, done func(*state.Clock) bool, change []string) loopOutcome {
	c := &fakeClock{skew: skew}
	cfg.Syncer = c.syncer(500 * time.Millisecond)
	l := NewLoop(cfg)
	l.SetServers(servers[:1], lan(servers...))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); l.Run(ctx) }()
	var o loopOutcome
	if change != nil {
		lab.Eventually(10*time.Second, func() bool { st := l.State(); return st != nil && st.Rounds == 1 })
		o.Mid = l.State()
		l.SetServers(nil, lan(change...))
	}
	lab.Eventually(10*time.Second, func() bool { st := l.State(); return st != nil && done(st) })
	cancel()
	<-stopped
	c.Finale = c.skew
	o.State, o.Clock = l.State(), c
	return o
}

// TestLoopChrony runs the clock loop against two real NTP servers
// (chronyd) with a local clock 30 s behind: the first round steps it,
// the next rounds (every 300 ms here) only slew the few milliseconds
// left, and the state records it; a black-holed server is retried after
// Retry although the interval is an hour; a new server set starts a round
// at once, asking the new server.
func TestLoopChrony(t *testing.T) {
	if lab.Child() {
		res := map[string]loopOutcome{
			"periodic": runLoop(LoopConfig{Interval: 300 * time.Millisecond}, -30*time.Second,
				[]string{"192.0.2.1", "192.0.2.3"}, func(c *state.Clock) bool { return c.Rounds >= 4 }, nil),
			"retry": runLoop(LoopConfig{Interval: time.Hour, Retry: 100 * time.Millisecond}, 0,
				[]string{"198.51.100.7"}, func(c *state.Clock) bool { return c.Rounds >= 3 }, nil),
			"change": runLoop(LoopConfig{Interval: time.Hour, Retry: time.Hour}, 0,
				[]string{"192.0.2.1"}, func(c *state.Clock) bool { return c.Rounds >= 2 }, []string{"192.0.2.3"}),
		}
		lab.ChildResult(t, res)
		return
	}
	cli := chronyLab(t)
	var res map[string]loopOutcome
	lab.RunChild(t, cli, 60*time.Second, nil, &res)

	p := res["periodic"]
	t.Logf("periodic: state %+v clock %+v", p.State, p.Clock)
	if p.State == nil || p.State.Rounds < 4 || !p.State.Set || p.State.Method != MethodSlew || p.State.LastSync == nil || p.State.NextSync == nil {
		t.Fatalf("periodic: state %+v", p.State)
	}
	if !slices.Equal(p.State.Servers, []string{"192.0.2.1", "192.0.2.3"}) || p.State.Pool {
		t.Errorf("periodic: servers %q pool %v", p.State.Servers, p.State.Pool)
	}
	if len(p.Clock.Steps) != 1 || (p.Clock.Steps[0]-30*time.Second).Abs() > time.Second {
		t.Errorf("periodic: steps %v, want one of about 30s", p.Clock.Steps)
	}
	var slews int
	for _, d := range p.Clock.Slews {
		if d.Abs() > SlewBound {
			t.Errorf("periodic: slewed by %s, over the slew bound", d)
		}
		if d != 0 {
			slews++
		}
	}
	if slews < 3 || p.Clock.Finale.Abs() > 100*time.Millisecond {
		t.Errorf("periodic: %d slews, final error %s", slews, p.Clock.Finale)
	}

	r := res["retry"]
	t.Logf("retry: %+v", r.State)
	if r.State == nil || r.State.Rounds < 3 || r.State.Set || r.State.LastSync != nil || !strings.Contains(r.State.Error, "no NTP server answered") {
		t.Errorf("retry: state %+v", r.State)
	}

	c := res["change"]
	t.Logf("change: before %+v after %+v", c.Mid, c.State)
	if c.Mid == nil || c.Mid.Server != "192.0.2.1" || !c.Mid.Set || c.State == nil || c.State.Rounds != 2 || c.State.Server != "192.0.2.3" || !c.State.Set {
		t.Errorf("change: before %+v after %+v", c.Mid, c.State)
	}
}
