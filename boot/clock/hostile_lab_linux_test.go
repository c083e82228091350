package clock

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/dhcp4"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// The hostile LAN of issue 29, all on s0 in the server namespace:
// honest chronyd servers at 192.0.2.1 and 192.0.2.3, lying ones (chronyd
// 3 years ahead) at 192.0.2.5 and 192.0.2.6 that dnsmasq names in DHCP
// option 42, and 192.0.2.9, a hop that hands each query to 192.0.2.1
// 100 ms late (the host kernel has no sch_netem to delay with).
const (
	honestA, honestB = "192.0.2.1", "192.0.2.3"
	liarA, liarB     = "192.0.2.5", "192.0.2.6"
	slowHonest       = "192.0.2.9"
	threeYears       = 3 * year
)

type hostileOutcome struct {
	Lease   lease.Report
	LeaseOK bool
	Liars   loopOutcome // the liars from DHCP, the slow honest one configured
	Undo    loopOutcome // two honest configured, the clock 3 years ahead
	Log     []string
}

// TestLANCannotMoveClock (issue 29, "Done when"): dnsmasq names two NTP
// servers (option 42) that both say the time is 3 years ahead, and
// netinit.ntp= names an honest server that answers 100 ms later: the
// liars answer first and agree, but they come from one lease and from the
// LAN alone, so the clock is not stepped; the honest configured server's
// small correction is the one taken. With the liars gone and two honest
// configured servers, a clock 3 years ahead is stepped back. The clock is
// a fake (the machine's is never touched); the servers are real: chronyd,
// the liars too (chronyd -x serves a clock set by `chronyc settime`).
func TestLANCannotMoveClock(t *testing.T) {
	if lab.Child() {
		var out hostileOutcome
		var mu sync.Mutex
		logf := func(f string, a ...any) { mu.Lock(); out.Log = append(out.Log, fmt.Sprintf(f, a...)); mu.Unlock() }
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := dhcp4.Run(ctx, dhcp4.Options{Link: "c0", Oneshot: true, Logf: logf,
			Report: func(l lease.Report) { mu.Lock(); out.Lease = l; mu.Unlock() }})
		out.LeaseOK = err == nil
		learned := Named(KindDHCP4, "c0", addrStrings(out.Lease.NTP)...)
		out.Liars = runLoopOf(LoopConfig{Logf: logf}, 0, []string{slowHonest}, learned)
		out.Undo = runLoopOf(LoopConfig{Logf: logf}, threeYears, []string{honestA, honestB}, nil)
		mu.Lock()
		defer mu.Unlock()
		lab.ChildResult(t, out)
		return
	}
	lab.Require(t, "ip", "chronyd", "chronyc", "dnsmasq")
	lab.GuardResolvConf(t)
	srv, cli := lab.NewNS(t, "ntls"), lab.NewNS(t, "ntlc")
	lab.Link(t, srv, "s0", []string{honestA + "/24", honestB + "/24", liarA + "/24", liarB + "/24", slowHonest + "/24"}, cli, "c0", nil)
	for _, a := range []string{honestA, honestB} {
		lab.Chrony(t, srv, a, 0)
	}
	for _, a := range []string{liarA, liarB} {
		lab.Chrony(t, srv, a, threeYears)
	}
	delayHop(t, srv, slowHonest, honestA, 100*time.Millisecond)
	lab.Dnsmasq(t, srv, "s0", "--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h", "--no-ping",
		"--dhcp-option=option:ntp-server,"+liarA+","+liarB)

	var out hostileOutcome
	lab.RunChild(t, cli, 90*time.Second, nil, &out)
	t.Logf("client log:\n%s", strings.Join(out.Log, "\n"))
	if !out.LeaseOK || len(out.Lease.NTP) != 2 {
		t.Fatalf("the DHCP lease does not name the two liars: %+v", out.Lease)
	}

	l := out.Liars
	t.Logf("liars: state %+v clock %+v", l.State, l.Clock)
	if l.State == nil || l.Clock == nil {
		t.Fatal("no round with the liars")
	}
	if len(l.Clock.Steps) != 0 || l.Clock.Finale.Abs() > SlewBound {
		t.Errorf("the liars moved the clock: steps %v, off by %s at the end", l.Clock.Steps, l.Clock.Finale)
	}
	if l.State.Server != slowHonest || !l.State.Set || l.State.Method != MethodSlew {
		t.Errorf("the honest configured server's correction was not the one taken: %+v", l.State)
	}
	liars := 0
	for _, s := range l.State.Sources {
		if s.Origin == "dhcp4 on c0" && (time.Duration(s.OffsetMS)*time.Millisecond-threeYears).Abs() < time.Minute {
			liars++
		}
	}
	if liars != 2 {
		t.Errorf("the liars were not asked, or did not lie (3 years ahead), as the lab means them to: %+v", l.State.Sources)
	}

	u := out.Undo
	t.Logf("undo: state %+v clock %+v", u.State, u.Clock)
	if u.State == nil || u.Clock == nil || len(u.Clock.Steps) != 1 || (u.Clock.Steps[0]+threeYears).Abs() > 2*time.Second || u.Clock.Finale.Abs() > time.Second {
		t.Fatalf("a clock 3 years ahead was not stepped back by two honest servers: %+v %+v", u.State, u.Clock)
	}
	if !strings.HasPrefix(u.State.Server, "192.0.2.") || u.State.Method != MethodStep {
		t.Errorf("undo: %+v", u.State)
	}
}

// runLoopOf runs a loop's first round on a fake clock off by skew.
func runLoopOf(cfg LoopConfig, skew time.Duration, configured []string, learned []Server) loopOutcome {
	c := &fakeClock{skew: skew}
	cfg.Syncer = c.syncer(3 * time.Second)
	cfg.Interval = time.Hour
	l := NewLoop(cfg)
	l.SetServers(configured, learned)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); l.Run(ctx) }()
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	l.First(fctx)
	fcancel()
	cancel()
	<-stopped
	c.Finale = c.skew
	return loopOutcome{State: l.State(), Clock: c}
}

func addrStrings[T fmt.Stringer](as []T) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// delayHop listens on from:123 in ns and hands each NTP query to to:123
// after delay, then the answer back: a server that answers delay later.
func delayHop(t *testing.T, ns *lab.NS, from, to string, delay time.Duration) {
	t.Helper()
	var in, up net.PacketConn
	var upAddr net.Addr
	err := lab.In(ns.Name, func() error {
		var err error
		if in, err = net.ListenPacket("udp", from+":123"); err != nil {
			return err
		}
		if up, err = net.ListenPacket("udp", from+":0"); err != nil {
			in.Close()
			return err
		}
		upAddr, err = net.ResolveUDPAddr("udp", to+":123")
		return err
	})
	if err != nil {
		t.Fatalf("delay hop: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { in.Close(); up.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, client, err := in.ReadFrom(buf)
			if err != nil {
				return
			}
			time.Sleep(delay)
			if _, err := up.WriteTo(buf[:n], upAddr); err != nil {
				continue
			}
			_ = up.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err = up.ReadFrom(buf)
			if err != nil {
				continue
			}
			_, _ = in.WriteTo(buf[:n], client)
		}
	}()
}

type ownerOutcome struct {
	Before, During, After *state.Clock
	Clock                 *fakeClock
	// The corrections made before ntpd started, and before it was gone.
	StepsBefore, SlewsBefore int
	StepsDuring, SlewsDuring int
	Log                      []string
	Err                      string
}

// TestNTPDOwnsClock (issue 26): once 0-OS's ntpd runs, netinit sets the
// clock no more: the loop's rounds only measure (a drift of 20 s that
// netinit would step is left alone), and the state says who keeps the
// clock. When ntpd is gone, netinit keeps the clock again. The stand-in
// is a real NTP client named ntpd (chronyd copied under that name, a
// client of the lab's servers that never touches the clock: -x); Debian's
// busybox has no ntpd applet. The child runs in a PID namespace of its
// own, so no other test sees this ntpd.
func TestNTPDOwnsClock(t *testing.T) {
	if lab.Child() {
		lab.ChildResult(t, ntpdChild(t))
		return
	}
	cli := chronyLab(t)
	var out ownerOutcome
	lab.RunChildPID(t, cli, 90*time.Second, nil, &out)
	t.Logf("child log:\n%s", strings.Join(out.Log, "\n"))
	if out.Err != "" {
		t.Fatal(out.Err)
	}
	t.Logf("before %+v\nduring %+v\nafter %+v\nclock %+v", out.Before, out.During, out.After, out.Clock)
	if out.StepsBefore != 1 || out.Before == nil || !out.Before.Set || out.Before.Owner != "" {
		t.Fatalf("before ntpd: netinit did not keep the clock (steps %d, state %+v)", out.StepsBefore, out.Before)
	}
	d := out.During
	if d == nil || !strings.HasPrefix(d.Owner, "0-OS's ntpd (pid ") || d.Set || !d.Measured || (time.Duration(d.OffsetMS)*time.Millisecond+20*time.Second).Abs() > time.Second {
		t.Errorf("while ntpd runs: state %+v, want the 20 s measured, left to ntpd", d)
	}
	if len(out.Clock.Steps) < out.StepsBefore+1 {
		t.Fatalf("no step after ntpd was gone: %v", out.Clock.Steps)
	}
	// Between ntpd's start and its end: no step, no slew but the cancel
	// of netinit's own (0).
	if out.StepsDuring != out.StepsBefore {
		t.Errorf("netinit stepped the clock while ntpd ran: %v", out.Clock.Steps[out.StepsBefore:out.StepsDuring])
	}
	for _, s := range out.Clock.Slews[out.SlewsBefore:out.SlewsDuring] {
		if s != 0 {
			t.Errorf("netinit slewed the clock by %s while ntpd ran", s)
		}
	}
	if a := out.After; a == nil || a.Owner != "" || !a.Set {
		t.Errorf("after ntpd: state %+v, want netinit keeping the clock again", a)
	}
	if s := out.Clock.Steps[out.StepsBefore]; (s + 20*time.Second).Abs() > time.Second {
		t.Errorf("the step after ntpd was gone: %s, want the 20 s drift corrected", s)
	}
}

// ntpdChild is TestNTPDOwnsClock's in-namespace half.
func ntpdChild(t *testing.T) (out ownerOutcome) {
	var mu sync.Mutex
	logf := func(f string, a ...any) { mu.Lock(); out.Log = append(out.Log, fmt.Sprintf(f, a...)); mu.Unlock() }
	defer func() { mu.Lock(); defer mu.Unlock(); out.Log = slices.Clone(out.Log) }()
	c := &fakeClock{skew: -30 * time.Second}
	s := c.syncer(500 * time.Millisecond)
	s.Owner = NTPD
	l := NewLoop(LoopConfig{Syncer: s, Interval: 200 * time.Millisecond, Logf: logf})
	l.SetServers([]string{"192.0.2.1", "192.0.2.3"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); l.Run(ctx) }()
	defer func() { cancel(); <-stopped; out.Clock = c }()
	rounds := func(n int, cond func(*state.Clock) bool) *state.Clock {
		var st *state.Clock
		lab.Eventually(15*time.Second, func() bool { st = l.State(); return st != nil && st.Rounds >= n && cond(st) })
		return st
	}
	out.Before = rounds(2, func(*state.Clock) bool { return true })
	c.mu.Lock()
	out.StepsBefore, out.SlewsBefore = len(c.Steps), len(c.Slews)
	c.mu.Unlock()

	// 0-OS's ntpd starts: a real NTP client, named ntpd.
	dir := t.TempDir()
	chronyd, err := exec.LookPath("chronyd")
	if err != nil {
		out.Err = err.Error()
		return out
	}
	b, err := os.ReadFile(chronyd)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "ntpd"), b, 0o755)
	}
	conf := filepath.Join(dir, "ntp.conf")
	if err == nil {
		err = os.WriteFile(conf, []byte("server 192.0.2.1 iburst\nport 0\ncmdport 0\nbindcmdaddress /\npidfile "+filepath.Join(dir, "pid")+"\n"), 0o644)
	}
	if err != nil {
		out.Err = err.Error()
		return out
	}
	ntpd := exec.Command(filepath.Join(dir, "ntpd"), "-d", "-x", "-u", "root", "-f", conf, "-L", "0")
	var ntpdOut lab.Buffer
	ntpd.Stdout, ntpd.Stderr = &ntpdOut, &ntpdOut
	if err := ntpd.Start(); err != nil {
		out.Err = fmt.Sprintf("starting the stand-in ntpd: %v", err)
		return out
	}
	seen := rounds(0, func(st *state.Clock) bool { return st.Owner != "" })
	if seen == nil || seen.Owner == "" {
		out.Err = fmt.Sprintf("ntpd (pid %d) was not seen:\n%s", ntpd.Process.Pid, ntpdOut.String())
		_ = ntpd.Process.Kill()
		_ = ntpd.Wait()
		return out
	}
	c.mu.Lock()
	c.skew += 20 * time.Second // the clock drifts while ntpd keeps it
	c.mu.Unlock()
	out.During = rounds(seen.Rounds+3, func(st *state.Clock) bool { return st.Owner != "" })
	c.mu.Lock()
	out.StepsDuring, out.SlewsDuring = len(c.Steps), len(c.Slews)
	c.mu.Unlock()

	// ntpd is gone: netinit keeps the clock again.
	_ = ntpd.Process.Kill()
	_ = ntpd.Wait()
	out.After = rounds(out.During.Rounds+1, func(st *state.Clock) bool { return st.Owner == "" && st.Set })
	return out
}
