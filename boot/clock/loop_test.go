package clock

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/ntp"

	"github.com/threefoldtech/netinit/internal/lab"
)

// TestDecisionTable: what the answers of the servers asked make of the
// clock: slewed, stepped, or left alone (refused), by the slew bound, the
// step bound and the two-source rule.
func TestDecisionTable(t *testing.T) {
	type ans struct {
		configured bool
		offset     time.Duration
	}
	for _, tc := range []struct {
		name    string
		answers []ans
		final   bool   // every server has answered
		want    string // MethodSlew, MethodStep, "refuse", "wait"
		from    int    // index of the answer used
	}{
		{"tiny offset slewed", []ans{{true, 3 * time.Millisecond}}, false, MethodSlew, 0},
		{"negative small slewed", []ans{{false, -400 * time.Millisecond}}, true, MethodSlew, 0},
		{"at the slew bound slewed", []ans{{false, SlewBound}}, true, MethodSlew, 0},
		{"over the slew bound stepped", []ans{{false, SlewBound + time.Millisecond}}, true, MethodStep, 0},
		{"30 s stepped from one", []ans{{true, -30 * time.Second}}, false, MethodStep, 0},
		{"at the step bound from one", []ans{{false, StepBound}}, true, MethodStep, 0},
		{"over the step bound alone refused", []ans{{false, StepBound + time.Second}}, true, "refuse", 0},
		{"over the step bound configured alone refused", []ans{{true, 10 * year}}, true, "refuse", 0},
		{"two agree on ten years", []ans{{false, 10 * year}, {false, 10*year + time.Second}}, false, MethodStep, 0},
		{"two disagree on ten years", []ans{{false, 10 * year}, {false, 10*year + 3*time.Second}}, true, "refuse", 0},
		{"liar vs honest small: honest wins", []ans{{false, 10 * year}, {false, 20 * time.Millisecond}}, true, MethodSlew, 1},
		{"unconfigured waits for the configured", []ans{{false, 10 * time.Millisecond}}, false, "wait", 0},
		{"configured preferred", []ans{{true, -2 * time.Second}, {false, 10 * time.Millisecond}}, false, MethodStep, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srcs []Source
			var got []answer
			pendingConfigured := false
			for i, a := range tc.answers {
				srcs = append(srcs, Source{Server: string(rune('a' + i)), Configured: a.configured})
				got = append(got, answer{i: i, resp: &ntp.Response{ClockOffset: a.offset}})
			}
			if !tc.final {
				// One configured server has not answered yet.
				srcs = append(srcs, Source{Server: "late", Configured: true})
				pendingConfigured = true
			}
			pick, why := choose(srcs, got, !pendingConfigured, tc.final)
			switch {
			case tc.want == "wait":
				if pick != nil || why != "" {
					t.Fatalf("decided before the configured server answered: %+v %q", pick, why)
				}
			case tc.want == "refuse":
				if pick != nil || !strings.Contains(why, "needs two sources agreeing") {
					t.Fatalf("choose = %+v %q, want refusal", pick, why)
				}
			default:
				if pick == nil {
					t.Fatalf("nothing chosen: %q", why)
				}
				if pick.i != tc.from {
					t.Errorf("answer %d used, want %d (%s)", pick.i, tc.from, why)
				}
				if m := Method(pick.resp.ClockOffset, SlewBound); m != tc.want {
					t.Errorf("Method(%s) = %s, want %s", pick.resp.ClockOffset, m, tc.want)
				}
			}
		})
	}
}

// TestBackoff: the wait before the next round.
func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 11 * time.Minute},
		{1, time.Minute},
		{2, 2 * time.Minute},
		{3, 4 * time.Minute},
		{4, 8 * time.Minute},
		{5, 11 * time.Minute},
		{100, 11 * time.Minute},
	} {
		if got := Backoff(tc.failures, DefaultRetry, DefaultInterval); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
	if got := Backoff(1, time.Hour, time.Minute); got != time.Minute {
		t.Errorf("a retry longer than the interval: %s", got)
	}
}

// TestServers: the pool only when nothing else is known.
func TestServers(t *testing.T) {
	pool := []string{"0.pool.ntp.org", "1.pool.ntp.org"}
	for _, tc := range []struct {
		name             string
		configured, dhcp []string
		wantConf, wantOt []string
		wantPool         bool
	}{
		{"nothing known: the pool", nil, nil, nil, pool, true},
		{"dhcp only", nil, []string{"192.0.2.1"}, nil, []string{"192.0.2.1"}, false},
		{"configured only", []string{"ntp.example"}, nil, []string{"ntp.example"}, nil, false},
		{"both", []string{"ntp.example"}, []string{"192.0.2.1"}, []string{"ntp.example"}, []string{"192.0.2.1"}, false},
		{"state list holds the configured", []string{"ntp.example"}, []string{"192.0.2.1", "ntp.example", "192.0.2.1"}, []string{"ntp.example"}, []string{"192.0.2.1"}, false},
	} {
		c, o, p := Servers(tc.configured, tc.dhcp, pool)
		if !slices.Equal(c, tc.wantConf) || !slices.Equal(o, tc.wantOt) || p != tc.wantPool {
			t.Errorf("%s: Servers = %q %q %v", tc.name, c, o, p)
		}
	}
	if _, _, p := Servers(nil, nil, nil); p {
		t.Error("an empty fallback reported as the pool")
	}
}

// TestSlewOrStep: Sync slews small offsets through Adjust, steps larger
// ones through Set after cancelling a slew in progress, and a Syncer with
// only Set replaced steps everything (it never reaches the real clock).
func TestSlewOrStep(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lie        time.Duration // the server's time minus the real time
		withAdjust bool
		adjustErr  error
		wantMethod string
		wantAdj    []time.Duration // approximately
		wantSets   int
		wantErr    string
	}{
		{"small slewed", 0, true, nil, MethodSlew, []time.Duration{0}, 0, ""},
		{"large stepped, slew cancelled", 5 * time.Second, true, nil, MethodStep, []time.Duration{0}, 1, ""},
		{"small stepped without Adjust", 0, false, nil, MethodStep, nil, 1, ""},
		{"slew fails", 0, true, errors.New("EPERM"), MethodSlew, []time.Duration{0}, 0, "EPERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, 2, 0, tc.lie)
			var adj []time.Duration
			sets := 0
			s := &Syncer{
				Timeout: 500 * time.Millisecond,
				Set:     func(time.Time) error { sets++; return nil },
			}
			if tc.withAdjust {
				s.Adjust = func(d time.Duration) error { adj = append(adj, d); return tc.adjustErr }
			}
			r := s.Sync(context.Background(), []string{addr}, nil, t.Logf)
			if r.Method != tc.wantMethod || sets != tc.wantSets || len(adj) != len(tc.wantAdj) || !strings.Contains(r.Err, tc.wantErr) {
				t.Fatalf("Sync = %+v; sets %d, adjusts %v", r, sets, adj)
			}
			for i, d := range adj {
				if (d - tc.wantAdj[i]).Abs() > 100*time.Millisecond {
					t.Errorf("adjust %d by %s, want about %s", i, d, tc.wantAdj[i])
				}
			}
			if r.Set != (tc.wantErr == "") {
				t.Errorf("Set = %v with error %q", r.Set, r.Err)
			}
		})
	}
}

// runFirst runs l until the test ends and waits (5 s at most) for its
// first round.
func runFirst(t *testing.T, l *Loop) (Result, bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	defer fcancel()
	return l.First(fctx)
}

// TestLoopServersChange: a changed server set starts a round at once, an
// unchanged one does not; a failed round is retried after Retry; the
// state records the rounds. The Syncer's clock is a fake (no server
// answers on the port used), so nothing real is touched.
func TestLoopServersChange(t *testing.T) {
	var logs lab.Logs
	l := NewLoop(LoopConfig{
		Syncer:   &Syncer{Port: 1, Timeout: 200 * time.Millisecond, Set: func(time.Time) error { return errors.New("fake") }, Adjust: func(time.Duration) error { return errors.New("fake") }},
		Interval: time.Hour,
		Retry:    time.Hour,
		Logf:     logs.Logf,
	})
	if l.State() != nil {
		t.Fatal("a state before the first round")
	}
	l.SetServers(nil, []string{"127.0.0.1"})
	r, ok := runFirst(t, l)
	if !ok || r.Set || !strings.Contains(r.Err, "no NTP server answered") {
		t.Fatalf("first round: %+v ok %v", r, ok)
	}
	l.SetServers(nil, []string{"127.0.0.1"}) // unchanged: no round
	l.SetServers(nil, []string{"127.0.0.2"}) // changed: a round now
	if !lab.Eventually(5*time.Second, func() bool { st := l.State(); return st.Rounds == 2 }) {
		t.Fatalf("no round after the servers changed: %+v", l.State())
	}
	st := l.State()
	if !slices.Equal(st.Servers, []string{"127.0.0.2"}) || st.LastSync != nil || st.NextSync == nil || st.Set {
		t.Errorf("state after the change: %+v", st)
	}
	if d := time.Until(*st.NextSync); d < 50*time.Minute {
		t.Errorf("next round in %s, want the retry (1h here)", d)
	}
	if !strings.Contains(logs.String(), "NTP servers changed") {
		t.Errorf("the change is not logged: %s", logs.String())
	}
}

// TestLoopMeasured: a measure-only round (netinit up) is a success for
// the loop: the next round comes after Interval, not Retry, and the state
// says measured, with no correction recorded.
func TestLoopMeasured(t *testing.T) {
	addr := fakeServer(t, 2, 0, 0)
	l := NewLoop(LoopConfig{
		Syncer:   &Syncer{Timeout: 300 * time.Millisecond, Measure: true},
		Interval: time.Hour,
		Retry:    time.Minute,
		Logf:     t.Logf,
	})
	l.SetServers(nil, []string{addr})
	r, ok := runFirst(t, l)
	if !ok || !r.Measured || r.Set || r.Err != "" {
		t.Fatalf("first round: %+v ok %v", r, ok)
	}
	st := l.State()
	if !st.Measured || st.Set || st.LastSync != nil || st.NextSync == nil || st.Server != addr {
		t.Fatalf("state: %+v", st)
	}
	if d := time.Until(*st.NextSync); d < 50*time.Minute {
		t.Errorf("next round in %s, want the interval (1h here), not the retry", d)
	}
}
