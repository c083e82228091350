package l2

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/internal/lab"
)

// logs collects a Watcher's console lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.lines...)
}

// watch runs w.Watch on link inside ns until the test ends.
func watch(t *testing.T, w *Watcher, ns *lab.NS, link string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := lab.In(ns.Name, func() error { w.Watch(ctx, link); return nil }); err != nil {
			t.Errorf("watching %s in %s: %v", link, ns.Name, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestLLDPFromLLDPD: a real lldpd on the switch side announces its system
// name, the port's ID and description, the port's VLAN (the IEEE 802.1
// Port VLAN ID TLV, sent as lldpd's custom TLV: the host kernel has no
// bridge VLAN filtering for lldpd to read a PVID from) and a management
// address; the listener records them and says one line.
func TestLLDPFromLLDPD(t *testing.T) {
	srv, cli := lab.NewLAN(t, "lldp")
	cli.MustExec("ip", "link", "set", "eth0", "up")
	var l logs
	w := New(Config{Mode: spec.LLDPListen, Logf: l.logf})
	watch(t, w, cli, "eth0")
	p := lab.LLDPD(t, srv, "s0", 1,
		"configure system hostname sw-rack3",
		"configure system ip management pattern 192.0.2.1",
		`configure ports s0 lldp portidsubtype local Gi1/0/12 description "rack3 node7"`,
		"configure lldp custom-tlv oui 00,80,c2 subtype 1 oui-info 00,64")
	var n Neighbour
	if !lab.Eventually(20*time.Second, func() bool {
		var ok bool
		n, ok = w.Neighbour("eth0", time.Now())
		return ok && n.PortVLAN != 0
	}) {
		t.Fatalf("no neighbour with its VLAN on eth0: %+v; lldpd:\n%s\nlog: %q", n, p.Output(), l.all())
	}
	if n.SystemName != "sw-rack3" || n.PortID != "Gi1/0/12" || n.PortDescription != "rack3 node7" || n.PortVLAN != 100 ||
		n.MgmtAddress.String() != "192.0.2.1" || !strings.HasPrefix(n.ChassisID, "mac ") || n.TTL <= 0 {
		t.Errorf("neighbour %+v", n)
	}
	want := `eth0: switch sw-rack3 port Gi1/0/12 "rack3 node7" (untagged VLAN 100), management 192.0.2.1`
	if got := l.all(); len(got) == 0 || got[len(got)-1] != want {
		t.Errorf("console %q, want last %q", got, want)
	}
	sl, _ := w.Status("eth0", time.Now())
	if sl == nil || sl.PortVLAN != 100 || sl.SystemName != "sw-rack3" || sl.TTLS == 0 {
		t.Errorf("status %+v", sl)
	}
}
