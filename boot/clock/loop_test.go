package clock

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/ntp"

	"github.com/threefoldtech/netinit/internal/lab"
)

// TestDecisionTable: what the answers of the servers asked make of the
// clock: slewed, stepped, or left alone (refused), by the slew bound, the
// step bound and who named each server (issue 29): a large step needs two
// independent sources agreeing, one of them configured or the pool; LAN
// sources alone never step far, and wait for the trusted ones.
func TestDecisionTable(t *testing.T) {
	type ans struct {
		srv    Server
		offset time.Duration
		addr   string // the address that answered ("" = unique)
	}
	conf := func(n string) Server { return Server{Name: n, Kind: KindConfigured} }
	pool := func(n string) Server { return Server{Name: n, Kind: KindPool} }
	dhcp := func(n, link string) Server { return Server{Name: n, Kind: KindDHCP4, Link: link} }
	dhcp6 := func(n, link string) Server { return Server{Name: n, Kind: KindDHCP6, Link: link} }
	for _, tc := range []struct {
		name    string
		answers []ans
		late    []Server // still to answer
		want    string   // MethodSlew, MethodStep, "refuse", "lan", "wait"
		from    int      // index of the answer used
	}{
		{"tiny offset slewed", []ans{{conf("a"), 3 * time.Millisecond, ""}}, []Server{conf("z")}, MethodSlew, 0},
		{"negative small slewed", []ans{{dhcp("a", "eth0"), -400 * time.Millisecond, ""}}, nil, MethodSlew, 0},
		{"at the slew bound slewed", []ans{{dhcp("a", "eth0"), SlewBound, ""}}, nil, MethodSlew, 0},
		{"over the slew bound stepped", []ans{{dhcp("a", "eth0"), SlewBound + time.Millisecond, ""}}, nil, MethodStep, 0},
		{"30 s stepped from one", []ans{{conf("a"), -30 * time.Second, ""}}, []Server{conf("z")}, MethodStep, 0},
		{"at the step bound from one", []ans{{pool("a"), StepBound, ""}}, nil, MethodStep, 0},
		{"over the step bound alone refused", []ans{{pool("a"), StepBound + time.Second, ""}}, nil, "refuse", 0},
		{"over the step bound configured alone refused", []ans{{conf("a"), 10 * year, ""}}, nil, "refuse", 0},
		{"two configured agree on ten years", []ans{{conf("a"), 10 * year, ""}, {conf("b"), 10*year + time.Second, ""}}, []Server{dhcp("z", "eth0")}, MethodStep, 0},
		{"a large step waits for every configured server", []ans{{conf("a"), 10 * year, ""}, {conf("b"), 10*year + time.Second, ""}}, []Server{conf("z")}, "wait", 0},
		{"a step back: two pool servers agree", []ans{{pool("a"), -3 * year, ""}, {pool("b"), -3 * year, ""}}, nil, MethodStep, 0},
		{"configured and a lease agree", []ans{{dhcp("a", "eth0"), 10 * year, ""}, {conf("b"), 10 * year, ""}}, nil, MethodStep, 1},
		{"two disagree on ten years", []ans{{conf("a"), 10 * year, ""}, {conf("b"), 10*year + 3*time.Second, ""}}, nil, "refuse", 0},
		{"two names of one server", []ans{{conf("a"), 10 * year, "192.0.2.1"}, {conf("b"), 10 * year, "192.0.2.1"}}, nil, "refuse", 0},
		{"two names of one lease", []ans{{dhcp("a", "eth0"), 3 * year, ""}, {dhcp("b", "eth0"), 3 * year, ""}}, nil, "lan", 0},
		{"two leases of the LAN", []ans{{dhcp("a", "eth0"), 3 * year, ""}, {dhcp6("b", "eth0"), 3 * year, ""}, {dhcp("c", "eth1"), 3 * year, ""}}, nil, "lan", 0},
		{"LAN liars wait for the configured", []ans{{dhcp("a", "eth0"), 3 * year, ""}, {dhcp("b", "eth0"), 3 * year, ""}}, []Server{conf("z")}, "wait", 0},
		{"LAN liars vs configured honest", []ans{{dhcp("a", "eth0"), 3 * year, ""}, {dhcp("b", "eth0"), 3 * year, ""}, {conf("c"), 20 * time.Millisecond, ""}}, nil, MethodSlew, 2},
		{"liar vs honest small on the LAN: honest wins", []ans{{dhcp("a", "eth0"), 10 * year, ""}, {dhcp("b", "eth0"), 20 * time.Millisecond, ""}}, nil, MethodSlew, 1},
		{"LAN waits for the pool", []ans{{dhcp("a", "eth0"), 10 * time.Millisecond, ""}}, []Server{pool("z")}, "wait", 0},
		{"LAN small not taken against a trusted answer", []ans{{pool("a"), 3 * year, ""}, {dhcp("b", "eth0"), 10 * time.Millisecond, ""}}, nil, "refuse", 0},
		{"configured preferred", []ans{{conf("a"), -2 * time.Second, ""}, {dhcp("b", "eth0"), 10 * time.Millisecond, ""}}, []Server{conf("z")}, MethodStep, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srcs []Source
			var got []answer
			var p pending
			for i, a := range tc.answers {
				src := Source{Server: a.srv.Name, srv: a.srv, Origin: a.srv.Origin()}
				if a.addr != "" {
					src.addr = netip.AddrPortFrom(netip.MustParseAddr(a.addr), 123)
				}
				srcs = append(srcs, src)
				got = append(got, answer{i: i, resp: &ntp.Response{ClockOffset: a.offset}})
			}
			for _, s := range tc.late {
				srcs = append(srcs, Source{Server: s.Name, srv: s, Origin: s.Origin()})
				p.add(s, 1)
			}
			pick, why := choose(srcs, got, p)
			switch tc.want {
			case "wait":
				if pick != nil || why != "" {
					t.Fatalf("decided before the trusted server answered: %+v %q", pick, why)
				}
			case "refuse":
				if pick != nil || !strings.Contains(why, "needs two independent sources agreeing") {
					t.Fatalf("choose = %+v %q, want refusal", pick, why)
				}
			case "lan":
				if pick != nil || !strings.Contains(why, "on LAN-learned servers alone is never taken") {
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

// TestServers: configured first, else the pool, then what the leases
// named, each name once.
func TestServers(t *testing.T) {
	pool := []string{"0.pool.ntp.org", "1.pool.ntp.org"}
	for _, tc := range []struct {
		name       string
		configured []string
		learned    []Server
		want       []Server
		wantPool   bool
	}{
		{"nothing known: the pool", nil, nil, Named(KindPool, "", pool...), true},
		{"dhcp only: the pool too", nil, lan("192.0.2.1"), append(Named(KindPool, "", pool...), lan("192.0.2.1")...), true},
		{"configured only", []string{"ntp.example"}, nil, Named(KindConfigured, "", "ntp.example"), false},
		{"both", []string{"ntp.example"}, lan("192.0.2.1"), append(Named(KindConfigured, "", "ntp.example"), lan("192.0.2.1")...), false},
		{"a lease names a configured one", []string{"192.0.2.1"}, lan("192.0.2.1", "192.0.2.2"), append(Named(KindConfigured, "", "192.0.2.1"), lan("192.0.2.2")...), false},
	} {
		got, p := Servers(tc.configured, tc.learned, pool)
		if !slices.Equal(got, tc.want) || p != tc.wantPool {
			t.Errorf("%s: Servers = %v %v", tc.name, got, p)
		}
	}
	if _, p := Servers(nil, nil, nil); p {
		t.Error("an empty pool reported as the pool")
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
			r := s.Sync(context.Background(), Named(KindConfigured, "", addr), t.Logf)
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
	l.SetServers(nil, lan("127.0.0.1"))
	r, ok := runFirst(t, l)
	if !ok || r.Set || !strings.Contains(r.Err, "no NTP server answered") {
		t.Fatalf("first round: %+v ok %v", r, ok)
	}
	l.SetServers(nil, lan("127.0.0.1")) // unchanged: no round
	l.SetServers(nil, lan("127.0.0.2")) // changed: a round now
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
	l.SetServers(nil, lan(addr))
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

// TestLoopSavesFloor: a round that a configured or pool server confirmed
// saves the time for the next boot's floor; one on a LAN server alone
// does not.
func TestLoopSavesFloor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured []string
		learned    []Server
		want       bool
	}{
		{"configured", []string{fakeServer(t, 2, 0, 0)}, nil, true},
		{"LAN alone", nil, lan(fakeServer(t, 2, 0, 0)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "clock")
			c := &fakeClock{}
			l := NewLoop(LoopConfig{Syncer: c.syncer(300 * time.Millisecond), Interval: time.Hour, FloorFile: path, Logf: t.Logf})
			l.SetServers(tc.configured, tc.learned)
			if r, ok := runFirst(t, l); !ok || !r.Set {
				t.Fatalf("first round: %+v", r)
			}
			got, err := readFloor(path)
			if tc.want != (err == nil) || tc.want && time.Since(got).Abs() > 2*time.Second {
				t.Errorf("floor saved %v (%v), want saved: %v", got, err, tc.want)
			}
		})
	}
}
