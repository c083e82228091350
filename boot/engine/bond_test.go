package engine

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/l2"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// bondKernel is a fake kernel with the NICs eth0..ethN-1 (MAC
// 52:54:00:00:00:0i), carrier on those in carrier.
func bondKernel(n int, carrier ...string) *kerneltest.Kernel {
	k := kerneltest.New()
	for i := range n {
		name := fmt.Sprintf("eth%d", i)
		k.Set(name, kernel.Link{MTU: 1500, Carrier: slices.Contains(carrier, name)})
		k.SetInfo(kernel.LinkInfo{Name: name, MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}, Type: "device", Encap: "ether", Device: true})
	}
	return k
}

// has reports whether a line of log contains sub.
func has(log *lab.Logs, sub string) bool {
	return slices.ContainsFunc(log.Lines(), func(s string) bool { return strings.Contains(s, sub) })
}

func skipReasons(t *testing.T, k *kerneltest.Kernel) map[string]string {
	t.Helper()
	links, _ := k.Links()
	out := map[string]string{}
	for _, l := range links {
		out[l.Name] = l.SkipReason(nil, nil)
	}
	return out
}

// TestCreateBonds: a bond= with one port by name and one by MAC is made
// once, in the kernel's words; its ports are no longer managed, the bond
// is; a port not there yet is an error (retried by discovery).
func TestCreateBonds(t *testing.T) {
	k := bondKernel(3, "eth0", "eth1")
	e := New(Config{Spec: parseSpec(t, "bond=bond0:eth0,52:54:00:00:00:02:mode=4,miimon=100,lacp_rate=fast:9000 bond=bond1:eth7,eth1"), Kernel: k})
	links, _ := k.Links()
	err := e.createBonds(links)
	if err == nil || !strings.Contains(err.Error(), "bond=bond1: port eth7 not found") {
		t.Errorf("createBonds: %v, want bond1's missing port", err)
	}
	if ops := k.Ops(); !slices.Equal(ops, []string{"bond bond0 802.3ad [eth0 eth2]"}) {
		t.Fatalf("ops %q", ops)
	}
	links, _ = k.Links()
	_ = e.createBonds(links)
	if n := len(k.Ops()); n != 1 {
		t.Errorf("bond0 made again: %q", k.Ops())
	}
	want := map[string]string{"bond0": "", "eth0": "a bond's port", "eth1": "", "eth2": "a bond's port"}
	if got := skipReasons(t, k); !maps.Equal(got, want) {
		t.Errorf("skip reasons %q, want %q", got, want)
	}
}

// fakeHear answers heard at once, and records the links asked.
type fakeHear struct {
	mu    sync.Mutex
	heard map[string]l2.Partner
	asked []string // sorted
}

func (f *fakeHear) hear(_ context.Context, links []string, _ time.Duration, _ console.Logf) map[string]l2.Partner {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, links...)
	slices.Sort(f.asked)
	out := map[string]l2.Partner{}
	for _, l := range links {
		if p, ok := f.heard[l]; ok {
			out[l] = p
		}
	}
	return out
}

var (
	partnerA = l2.Partner{System: net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, 0x55}, Key: 7}
	partnerB = l2.Partner{System: net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, 0x66}, Key: 9}
)

// TestFormLACPBonds: with netinit.bond=auto the NICs with carrier are
// listened to; the ports one partner (system and key) answers on become
// one 802.3ad bond (fast rate, miimon), a port with a partner of its own
// or none stays a plain NIC, and the console says what was heard. The
// bonding module's empty bond0 does not take the name.
func TestFormLACPBonds(t *testing.T) {
	k := bondKernel(4, "eth0", "eth1", "eth2")
	// The bonding module's own empty bond0: its name is free.
	k.SetInfo(kernel.LinkInfo{Name: "bond0", Type: "bond", Encap: "ether"})
	k.LACP["eth0"] = kernel.LACPSync | kernel.LACPCollecting | kernel.LACPDistributing
	k.LACP["eth1"] = k.LACP["eth0"]
	h := &fakeHear{heard: map[string]l2.Partner{"eth0": partnerA, "eth1": partnerA, "eth2": partnerB}}
	var log lab.Logs
	e := New(Config{Spec: parseSpec(t, "netinit.bond=auto"), Kernel: k, HearLACP: h.hear, Logf: log.Logf})
	e.formLACPBonds(context.Background())
	if !slices.Equal(h.asked, []string{"eth0", "eth1", "eth2", "eth3"}) {
		t.Errorf("listened on %q, want the four NICs", h.asked)
	}
	if !slices.Contains(k.Ops(), "bond bond0 802.3ad [eth0 eth1]") || !slices.Contains(k.Ops(), "up bond0") {
		t.Errorf("ops %q, want bond0 of eth0 and eth1, set up", k.Ops())
	}
	if !has(&log, "eth0, eth1: LACP partner 00:11:22:33:44:55 key 7 → bond0 802.3ad") || !has(&log, "bond0: eth0, eth1 collecting and distributing after") {
		t.Errorf("console %q", log.Lines())
	}
	want := map[string]string{"bond0": "", "eth0": "a bond's port", "eth1": "a bond's port", "eth2": "", "eth3": ""}
	if got := skipReasons(t, k); !maps.Equal(got, want) {
		t.Errorf("skip reasons %q, want %q", got, want)
	}
}

// TestFormLACPBondsFallback: a bond no port of which reaches
// collecting/distributing in time is removed; its first port is used
// alone, the others are left out of discovery.
func TestFormLACPBondsFallback(t *testing.T) {
	defer func(d time.Duration) { lacpBundleWait = d }(lacpBundleWait)
	lacpBundleWait = 200 * time.Millisecond
	k := bondKernel(2, "eth0", "eth1")
	h := &fakeHear{heard: map[string]l2.Partner{"eth0": partnerA, "eth1": partnerA}}
	var log lab.Logs
	e := New(Config{Spec: parseSpec(t, "netinit.bond=auto"), Kernel: k, HearLACP: h.hear, Logf: log.Logf})
	e.formLACPBonds(context.Background())
	if !slices.Contains(k.Ops(), "bond del bond0") {
		t.Fatalf("ops %q, want bond0 removed", k.Ops())
	}
	if e.benchedBy("eth1") != "bond0" || e.benchedBy("eth0") != "" {
		t.Errorf("benched %v, want eth1 left out", e.benched)
	}
	if !has(&log, "bond0: no port reached collecting/distributing within 200ms: bond removed, eth0 used alone") {
		t.Errorf("console %q", log.Lines())
	}
	if got := skipReasons(t, k); got["eth0"] != "" || got["eth1"] != "" {
		t.Errorf("skip reasons %q: the ports are plain links again", got)
	}
}

// TestFormLACPBondsPartial: a bond of which one port with carrier never
// bundles is kept at the bound, with the port that did.
func TestFormLACPBondsPartial(t *testing.T) {
	defer func(d time.Duration) { lacpBundleWait = d }(lacpBundleWait)
	lacpBundleWait = 200 * time.Millisecond
	k := bondKernel(2, "eth0", "eth1")
	k.LACP["eth1"] = kernel.LACPSync | kernel.LACPCollecting | kernel.LACPDistributing
	h := &fakeHear{heard: map[string]l2.Partner{"eth0": partnerA, "eth1": partnerA}}
	var log lab.Logs
	e := New(Config{Spec: parseSpec(t, "netinit.bond=auto"), Kernel: k, HearLACP: h.hear, Logf: log.Logf})
	e.formLACPBonds(context.Background())
	if slices.Contains(k.Ops(), "bond del bond0") || !has(&log, "bond0: eth1 collecting and distributing after") || !has(&log, "(eth0 not)") {
		t.Errorf("ops %q, console %q: want bond0 kept with eth1", k.Ops(), log.Lines())
	}
}

// TestFormLACPBondsNot: nothing is listened to when auto is not on or
// with an explicit link list; no bond when fewer than two NICs have
// carrier; a bond='s ports are not listened on (one NIC left: nothing);
// partners on one port each form no bond.
func TestFormLACPBondsNot(t *testing.T) {
	defer func(d time.Duration) { lacpCarrierWait = d }(lacpCarrierWait)
	lacpCarrierWait = 100 * time.Millisecond
	for _, c := range []struct {
		name, line string
		links      []string
		carrier    []string
		asked      []string
	}{
		{"not asked", "", nil, []string{"eth0", "eth1"}, nil},
		{"off", "netinit.bond=off", nil, []string{"eth0", "eth1"}, nil},
		{"a link list", "netinit.bond=auto", []string{"eth0", "eth1"}, []string{"eth0", "eth1"}, nil},
		// Listened to while waiting for carrier.
		{"one carrier", "netinit.bond=auto", nil, []string{"eth0"}, []string{"eth0", "eth1", "eth2"}},
		{"bond= ports", "netinit.bond=auto bond=bond0:eth0,eth1", nil, []string{"eth0", "eth1", "eth2"}, nil},
		{"partners apart", "netinit.bond=auto", nil, []string{"eth0", "eth1", "eth2"}, []string{"eth0", "eth1", "eth2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := bondKernel(3, c.carrier...)
			h := &fakeHear{heard: map[string]l2.Partner{"eth0": partnerA, "eth1": partnerB}}
			e := New(Config{Spec: parseSpec(t, c.line), Links: c.links, Kernel: k, HearLACP: h.hear})
			e.formLACPBonds(context.Background())
			if asked := h.asked; !slices.Equal(asked, c.asked) {
				t.Errorf("listened on %q, want %q", asked, c.asked)
			}
			if slices.ContainsFunc(k.Ops(), func(op string) bool { return strings.HasPrefix(op, "bond ") }) {
				t.Errorf("ops %q: a bond", k.Ops())
			}
		})
	}
}

// TestRunBondZOS: a 0-OS boot with bond= over both NICs: the bond is
// made before the first scan, so it is the only link, the management
// bridge's port (zos over bond0), the lease is zos's, the ports are never
// managed, and the state has the bond.
func TestRunBondZOS(t *testing.T) {
	k := bondKernel(2, "eth0", "eth1")
	k.LACP["eth0"] = kernel.LACPSync | kernel.LACPCollecting | kernel.LACPDistributing
	s := bootSpec(t, "ip=dhcp netinit.timeout=20s bond=bond0:eth0,eth1:mode=802.3ad", "zos")
	e := New(Config{Spec: s, Oneshot: true, Kernel: k, Logf: t.Logf,
		Clients: fakeClients{k: k, leases: map[string]lease.Report{"zos": dhcp4Lease("zos")}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.Run(ctx)
	if err != nil || st.Phase != state.PhaseReady || st.Uplink != "zos" || st.UplinkNIC != "bond0" {
		t.Fatalf("phase %s uplink %q on %q (%v); want ready on zos over bond0", st.Phase, st.Uplink, st.UplinkNIC, err)
	}
	for _, op := range k.Ops() {
		if strings.HasSuffix(op, " eth0") || strings.HasSuffix(op, " eth1") {
			t.Errorf("a port was managed: %q", op)
		}
	}
	if len(st.Bonds) != 1 || st.Bonds[0].Name != "bond0" || st.Bonds[0].Origin != "bond=" || len(st.Bonds[0].Ports) != 2 || !st.Bonds[0].Ports[0].Bundled {
		t.Errorf("state bonds %+v", st.Bonds)
	}
}
