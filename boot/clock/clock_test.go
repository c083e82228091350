package clock

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyncNoServers(t *testing.T) {
	called := false
	s := &Syncer{Set: func(time.Time) error { called = true; return nil }}
	var logs []string
	r := s.Sync(context.Background(), nil, func(f string, a ...any) { logs = append(logs, f) })
	if r.Set || called || r.Err == "" {
		t.Fatalf("Sync(nil) = %+v, set called %v", r, called)
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "NOT set") {
		t.Fatalf("no loud log line: %q", logs)
	}
}

// lan is servers named by one DHCPv4 lease on eth0.
func lan(names ...string) []Server { return Named(KindDHCP4, "eth0", names...) }

// fakeServer answers NTP requests on loopback with a fixed stratum and the
// time shifted by lie; it is a stand-in for pure-logic tests and the liar
// of the lab test (whose honest servers are chronyd).
func fakeServer(t *testing.T, stratum byte, delay, lie time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			time.Sleep(delay)
			resp := make([]byte, 48)
			resp[0] = 0<<6 | 4<<3 | 4 // LI 0, VN 4, mode server
			resp[1] = stratum
			copy(resp[24:32], buf[40:48]) // origin = client's transmit
			ts := ntpTime(time.Now().Add(lie))
			copy(resp[16:24], ts) // reference
			copy(resp[32:40], ts) // receive
			copy(resp[40:48], ts) // transmit
			_, _ = pc.WriteTo(resp, addr)
		}
	}()
	return pc.LocalAddr().String()
}

func ntpTime(t time.Time) []byte {
	const epoch = 2208988800 // 1900 → 1970
	sec := uint64(t.Unix() + epoch)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	v := sec<<32 | frac
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// TestSyncMeasure: a measure-only Syncer (netinit up) chooses the offset
// by the same rules and never touches the clock, whatever it would take
// (here a step of 10 minutes).
func TestSyncMeasure(t *testing.T) {
	addr := fakeServer(t, 2, 0, 0)
	s := &Syncer{
		Timeout: 300 * time.Millisecond,
		Now:     func() time.Time { return time.Now().Add(-10 * time.Minute) },
		Set:     func(time.Time) error { t.Error("Set called"); return nil },
		Adjust:  func(time.Duration) error { t.Error("Adjust called"); return nil },
		Measure: true,
	}
	r := s.Sync(context.Background(), lan(addr), t.Logf)
	if !r.Measured || r.Set || r.Err != "" || r.Server != addr {
		t.Fatalf("Sync = %+v, want measured from %s, not set, no error", r, addr)
	}
	if d := r.Offset - 10*time.Minute; d < -time.Second || d > time.Second {
		t.Errorf("offset %s, want about 10m", r.Offset)
	}
	if c := r.State(); !c.Measured || c.Set || c.OffsetMS < 9*60*1000 {
		t.Errorf("state %+v", c)
	}
}

func TestSyncTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stratum byte
		delay   time.Duration
		setErr  error
		wantSet bool
		wantErr string
	}{
		{name: "good", stratum: 2, wantSet: true},
		{name: "kiss of death", stratum: 0, wantErr: "kiss of death"},
		{name: "too slow", stratum: 2, delay: 700 * time.Millisecond, wantErr: "no NTP server answered"},
		{name: "set fails", stratum: 2, setErr: errors.New("EPERM"), wantErr: "EPERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.stratum, tc.delay, 0)
			var setTo time.Time
			s := &Syncer{
				Timeout: 300 * time.Millisecond,
				Now:     func() time.Time { return time.Now().Add(-10 * time.Minute) },
				Set:     func(x time.Time) error { setTo = x; return tc.setErr },
			}
			start := time.Now()
			r := s.Sync(context.Background(), lan(addr), t.Logf)
			if el := time.Since(start); el > time.Second {
				t.Errorf("Sync took %s, bound 300ms", el)
			}
			if r.Set != tc.wantSet || !strings.Contains(r.Err, tc.wantErr) || (tc.wantErr == "" && r.Err != "") {
				t.Fatalf("Sync = %+v, want set=%v err~%q", r, tc.wantSet, tc.wantErr)
			}
			if tc.wantSet {
				if d := time.Since(setTo); d < -time.Second || d > time.Second {
					t.Errorf("set to %s, want about now", setTo)
				}
				if d := r.Offset - 10*time.Minute; d < -time.Second || d > time.Second {
					t.Errorf("offset %s, want about 10m", r.Offset)
				}
			}
		})
	}
}

// TestFloor: the floor is the image's build time (stamped by the
// Makefile) or the time saved on the cache disk, whichever is later; what
// does not parse is no floor.
func TestFloor(t *testing.T) {
	old := buildTime
	t.Cleanup(func() { buildTime = old })
	buildTime = ""
	path := filepath.Join(t.TempDir(), "netinit", "clock")
	if f := Floor(path)(); !f.IsZero() {
		t.Fatalf("floor %s with no build time and no file", f)
	}
	buildTime = "1767225600" // 2026-01-01
	if f := Floor(path)(); !f.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("floor %s, want the build time", f)
	}
	saved := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := SaveFloor(path, saved); err != nil {
		t.Fatal(err)
	}
	if f := Floor(path)(); !f.Equal(saved) {
		t.Fatalf("floor %s, want the saved %s", f, saved)
	}
	buildTime = "1798761600" // 2027-01-01, later than the saved time
	if f := Floor(path)(); f.Year() != 2027 {
		t.Fatalf("floor %s, want the later build time", f)
	}
	if err := os.WriteFile(path, []byte("yesterday\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f := Floor(path)(); f.Year() != 2027 {
		t.Fatalf("floor %s from a file that does not parse", f)
	}
}

// TestSyncFloor: a clock before the floor (a dead RTC) is set to it before
// any answer; answers that would put it before the floor are refused,
// however many agree; a step back that stays after the floor is taken.
func TestSyncFloor(t *testing.T) {
	floor := time.Now().Add(-24 * time.Hour)
	run := func(skew time.Duration, servers []Server) (*fakeClock, Result) {
		c := &fakeClock{skew: skew}
		s := c.syncer(time.Second)
		s.Floor = func() time.Time { return floor }
		return c, s.Sync(context.Background(), servers, t.Logf)
	}
	honest := Named(KindPool, "", fakeServer(t, 2, 0, 0), fakeServer(t, 2, 0, 0))
	c, r := run(-10*year, honest)
	if len(c.Steps) != 2 || (c.Steps[0]-(10*year-24*time.Hour)).Abs() > time.Second || !r.Set || c.skew.Abs() > time.Second {
		t.Errorf("a clock 10 years behind: steps %v (want to the floor, then to the time), result %+v", c.Steps, r)
	}
	// Two pool servers agree on a time two days back: before the floor.
	past := Named(KindPool, "", fakeServer(t, 2, 0, -48*time.Hour), fakeServer(t, 2, 0, -48*time.Hour))
	c, r = run(0, past)
	if len(c.Steps) != 0 || r.Set || !strings.Contains(r.Err, "before the floor") {
		t.Errorf("answers before the floor: steps %v, result %+v", c.Steps, r)
	}
	// A clock a year ahead is stepped back to now, after the floor.
	c, r = run(year, honest)
	if len(c.Steps) != 1 || (c.Steps[0]+year).Abs() > time.Second || !r.Set {
		t.Errorf("a step back after the floor: steps %v, result %+v", c.Steps, r)
	}
}
