package l2

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/threefoldtech/netinit/internal/lab"
)

// sendLACP sends frames on links of ns every 100 ms (ten times LACP's
// fast rate, so that a test does not wait for a periodic LACPDU), from
// packet sockets opened in ns, until the test ends: the lab's switch.
// The late frames are sent too from lateFrom on.
func sendLACP(t *testing.T, ns *lab.NS, frames, late map[string][][]byte) {
	t.Helper()
	type port struct {
		name string
		c    *packet.Conn
	}
	var ports []port
	err := lab.In(ns.Name, func() error {
		for name := range frames {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			c, err := packet.Listen(ifi, packet.Raw, SlowProtocolsEtherType, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ports = append(ports, port{name, c})
		}
		return nil
	})
	if err != nil {
		for _, p := range ports {
			p.c.Close()
		}
		t.Fatalf("sockets in %s: %v", ns.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.c.Close()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			start := time.Now()
			for {
				fs := frames[p.name]
				if time.Since(start) >= lateFrom {
					fs = append(slices.Clone(fs), late[p.name]...)
				}
				for _, f := range fs {
					// An error is the port without carrier (its
					// peer down: ENOBUFS on a veth), as a switch's
					// port is; the next tick tries again.
					_, _ = p.c.WriteTo(f, &packet.Addr{HardwareAddr: LACPAddr})
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// lateFrom is when sendLACP's late frames start: after HearLACP has
// opened its sockets (a few milliseconds after sendLACP returns), well
// before its window ends.
const lateFrom = 700 * time.Millisecond

// hear runs HearLACP in ns on links and returns what it returned, how
// long it took and its console lines.
func hear(t *testing.T, ns *lab.NS, links []string, window time.Duration) (map[string]Partner, time.Duration, []string) {
	t.Helper()
	var l logs
	var got map[string]Partner
	start := time.Now()
	if err := lab.In(ns.Name, func() error {
		got = HearLACP(context.Background(), links, window, l.logf)
		return nil
	}); err != nil {
		t.Fatalf("in %s: %v", ns.Name, err)
	}
	return got, time.Since(start), l.all()
}

// lacpLab is a switch namespace with ports p0..p(n-1), joined by veth to
// a node namespace's eth0..eth(n-1).
func lacpLab(t *testing.T, n int) (sw, node *lab.NS) {
	lab.Require(t, "ip")
	sw, node = lab.NewNS(t, "lacs"), lab.NewNS(t, "lacn")
	for i := range n {
		lab.Veth(t, sw, fmt.Sprintf("p%d", i), node, fmt.Sprintf("eth%d", i))
	}
	return sw, node
}

var (
	swA    = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a} // the aggregation's switch
	swB    = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b} // another switch
	portOf = func(i byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, i} }
)

// switchPDU is what a switch port in an aggregation sends before it has
// heard the node: active, short timeout, aggregatable, defaulted.
func switchPDU(sys net.HardwareAddr, key, port uint16) LACPDU {
	return LACPDU{Version: 1, ActorSystemPriority: 0x8000, ActorSystem: sys, ActorKey: key, ActorPortPriority: 128,
		ActorPort: port, ActorState: StateActivity | StateTimeout | StateAggregation | StateDefaulted,
		PartnerSystem: make(net.HardwareAddr, 6)}
}

// TestHearLACP: a switch sends LACPDUs of one aggregation (system A key
// 7) on two ports, of another switch on a third, hostile frames before
// its good ones (from lateFrom on) on that third, an Individual port's on a fourth, and
// nothing on a fifth, where the node itself sends an LACPDU (its own
// frames are not heard). HearLACP returns exactly the three partners,
// after the whole window (the fifth link never hears one), says each
// once and the hostile frames once; Groups makes one bond of the first
// two.
func TestHearLACP(t *testing.T) {
	sw, node := lacpLab(t, 5)
	zero := switchPDU(make(net.HardwareAddr, 6), 7, 9)
	mcast := switchPDU(LACPAddr, 7, 9)
	individual := switchPDU(swA, 8, 4)
	individual.ActorState &^= StateAggregation
	sendLACP(t, sw, map[string][][]byte{
		"p0": {lacpFrame(portOf(1), switchPDU(swA, 7, 1))},
		"p1": {lacpFrame(portOf(2), switchPDU(swA, 7, 2))},
		"p2": {lacpFrame(portOf(3), zero), lacpFrame(portOf(3), mcast)},
		"p3": {lacpFrame(portOf(4), individual)},
	}, map[string][][]byte{
		"p2": {lacpFrame(portOf(3), switchPDU(swB, 7, 3))},
	})
	// The node's own LACPDU on eth4: not heard (a socket bound to the
	// Slow Protocols EtherType is not given outgoing frames, and the
	// filter drops PACKET_OUTGOING ones besides).
	sendLACP(t, node, map[string][][]byte{"eth4": {lacpFrame(portOf(5), switchPDU(portOf(5), 1, 1))}}, nil)

	const window = 2 * time.Second
	links := []string{"eth0", "eth1", "eth2", "eth3", "eth4"}
	got, took, log := hear(t, node, links, window)
	want := map[string]Partner{
		"eth0": {swA, 7},
		"eth1": {swA, 7},
		"eth2": {swB, 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("heard %v, want %v; log %q", got, want, log)
	}
	if took < window-50*time.Millisecond || took > window+2*time.Second {
		t.Errorf("took %v with a silent link, want the window %v", took, window)
	}
	wantLog := []string{
		"eth0: LACP partner 02:00:5e:00:00:0a key 7 (its port 1)",
		"eth1: LACP partner 02:00:5e:00:00:0a key 7 (its port 2)",
		"eth2: LACP frame from 02:00:5e:00:01:03 ignored: LACPDU: actor system ID is all zeros (said once)",
		"eth2: LACP partner 02:00:5e:00:00:0b key 7 (its port 3)",
		"eth3: LACP partner 02:00:5e:00:00:0a key 8 says its port 4 is Individual: not aggregated",
	}
	// The links' lines interleave; each link's come in order. Of eth2's
	// hostile frames only the first is said (one line for a link's
	// malformed frames, whatever they are): the all-zeros one, or the
	// multicast one when the listener came in between.
	sorted := slices.Clone(log)
	const mcastLine = "eth2: LACP frame from 02:00:5e:00:01:03 ignored: LACPDU: actor system ID 01:80:c2:00:00:02 is a multicast address (said once)"
	if i := slices.Index(sorted, mcastLine); i >= 0 {
		sorted[i] = wantLog[2]
	}
	slices.SortStableFunc(sorted, func(a, b string) int { return strings.Compare(a[:4], b[:4]) })
	if !reflect.DeepEqual(sorted, wantLog) {
		t.Errorf("console:\n%s\nwant:\n%s", strings.Join(sorted, "\n"), strings.Join(wantLog, "\n"))
	}
	gs := Groups(got)
	if len(gs) != 1 || !slices.Equal(gs[0].Links, []string{"eth0", "eth1"}) || gs[0].Partner.String() != "02:00:5e:00:00:0a key 7" {
		t.Errorf("groups %+v", gs)
	}
}

// TestHearLACPEarly: once every link has heard its partner HearLACP
// returns, long before its window.
func TestHearLACPEarly(t *testing.T) {
	sw, node := lacpLab(t, 2)
	sendLACP(t, sw, map[string][][]byte{
		"p0": {lacpFrame(portOf(1), switchPDU(swA, 7, 1))},
		"p1": {lacpFrame(portOf(2), switchPDU(swA, 7, 2))},
	}, nil)
	got, took, log := hear(t, node, []string{"eth0", "eth1"}, 30*time.Second)
	if len(got) != 2 || got["eth0"].String() != "02:00:5e:00:00:0a key 7" || got["eth1"].String() != "02:00:5e:00:00:0a key 7" {
		t.Errorf("heard %v; log %q", got, log)
	}
	if took > 3*time.Second {
		t.Errorf("took %v: did not return once both links heard", took)
	}
}

// TestHearLACPSilence: no LACPDU (the switch port is no aggregation, or
// a plain switch) is an empty result after the window; a link that is
// not there is said and not waited for; a cancelled context ends the
// wait.
func TestHearLACPSilence(t *testing.T) {
	_, node := lacpLab(t, 1)
	const window = time.Second
	got, took, log := hear(t, node, []string{"eth0"}, window)
	if len(got) != 0 || len(log) != 0 {
		t.Errorf("heard %v; log %q", got, log)
	}
	if took < window-50*time.Millisecond || took > window+2*time.Second {
		t.Errorf("took %v, want the window %v", took, window)
	}

	got, took, log = hear(t, node, []string{"nosuch0"}, 30*time.Second)
	if len(got) != 0 || took > 2*time.Second || len(log) != 1 || !strings.HasPrefix(log[0], "nosuch0: not listening for LACP: ") {
		t.Errorf("a missing link: heard %v in %v; log %q", got, took, log)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := lab.In(node.Name, func() error {
		got = HearLACP(ctx, []string{"eth0"}, 30*time.Second, nil)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); len(got) != 0 || took > 2*time.Second {
		t.Errorf("a cancelled context: heard %v in %v", got, took)
	}
}

// TestHearLACPLinkComesUp: listening starts while the link is down (the
// engine listens from the moment it sets a link up; the switch sends when
// its port comes up): the socket's "network is down" is not the end of
// it, the LACPDU after the link comes up is heard.
func TestHearLACPLinkComesUp(t *testing.T) {
	sw, node := lacpLab(t, 1)
	node.MustExec("ip", "link", "set", "eth0", "down")
	sendLACP(t, sw, map[string][][]byte{"p0": {lacpFrame(portOf(1), switchPDU(swA, 7, 1))}}, nil)
	upErr := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		_, err := node.Exec(context.Background(), "ip", "link", "set", "eth0", "up")
		upErr <- err
	}()
	got, took, log := hear(t, node, []string{"eth0"}, 10*time.Second)
	if err := <-upErr; err != nil {
		t.Fatalf("eth0 up: %v", err)
	}
	if got["eth0"].String() != "02:00:5e:00:00:0a key 7" || took > 5*time.Second {
		t.Errorf("heard %v in %v; log %q", got, took, log)
	}
}

// TestHearLACPIndividual: a link whose partner says its port is
// Individual is done (it will not aggregate): HearLACP does not wait for
// it.
func TestHearLACPIndividual(t *testing.T) {
	sw, node := lacpLab(t, 2)
	individual := switchPDU(swA, 8, 2)
	individual.ActorState &^= StateAggregation
	sendLACP(t, sw, map[string][][]byte{
		"p0": {lacpFrame(portOf(1), switchPDU(swA, 7, 1))},
		"p1": {lacpFrame(portOf(2), individual)},
	}, nil)
	got, took, log := hear(t, node, []string{"eth0", "eth1"}, 30*time.Second)
	if len(got) != 1 || got["eth0"].String() != "02:00:5e:00:00:0a key 7" || took > 3*time.Second {
		t.Errorf("heard %v in %v; log %q", got, took, log)
	}
}
