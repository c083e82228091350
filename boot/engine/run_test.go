package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/boot/state"
)

// fakeClients are protocol clients that report the leases they are given
// (a DHCPv4 server on that link) and install its routes through the
// engine's installer, at the start and at every Reapply, as the real ones
// do; a link without a lease has a silent server.
type fakeClients struct {
	k      *kerneltest.Kernel
	leases map[string]lease.Report
}

func (f fakeClients) DHCP4(ctx context.Context, c Client) error {
	ls, ok := f.leases[c.Link]
	apply := func() {
		kl, _ := f.k.Link(c.Link)
		var want []route.Route
		for _, r := range ls.Routes {
			want = append(want, route.Route{Dst: r.Dst, Via: r.Via})
		}
		applied, _ := c.Routes.Apply(c.Link, kl.Index, lease.SourceDHCP4, want)
		l := ls
		l.Routes = nil
		for _, r := range applied {
			l.Routes = append(l.Routes, lease.Route{Dst: r.Dst, Via: r.Via})
		}
		c.Report(l)
	}
	if ok {
		apply()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Reapply:
			if ok {
				apply()
			}
		}
	}
}

func (fakeClients) Static(ctx context.Context, c Client) error { <-ctx.Done(); return nil }
func (fakeClients) RA(ctx context.Context, c Client) error     { <-ctx.Done(); return nil }
func (fakeClients) DHCP6(ctx context.Context, c Client) error  { <-ctx.Done(); return nil }

// TestRunTwoLinks (was the namespace test TestUpTwoLinks): eth0 has a
// DHCP server, eth1 has carrier but no server, eth2 has no carrier. The
// node is ready on eth0, once the election has waited for the others,
// only eth0 gets the default route, and all three are in the state.
func TestRunTwoLinks(t *testing.T) {
	k := kerneltest.New()
	for _, n := range []string{"eth0", "eth1", "eth2"} {
		k.Set(n, kernel.Link{MTU: 1500, Carrier: n != "eth2"})
	}
	e := New(Config{Spec: parseSpec(t, "ip=dhcp netinit.timeout=20s"), Links: []string{"eth0", "eth1", "eth2"}, Oneshot: true,
		Kernel: k, Clients: fakeClients{k: k, leases: map[string]lease.Report{"eth0": dhcp4Lease("eth0")}}, Logf: t.Logf})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.Run(ctx)
	if err != nil || st.Phase != state.PhaseReady || st.Uplink != "eth0" {
		t.Fatalf("phase %s uplink %q (%v); want ready on eth0", st.Phase, st.Uplink, err)
	}
	if len(st.Links) != 3 || slices.ContainsFunc(st.Links, func(l state.LinkStatus) bool { return l.Name == "eth2" && l.Carrier }) {
		t.Errorf("links %+v, want eth0, eth1, eth2 (without carrier)", st.Links)
	}
	eth0, _ := k.Link("eth0")
	for _, n := range []string{"eth0", "eth1", "eth2"} {
		kl, _ := k.Link(n)
		rs := k.Routes(kl.Index)
		if want := n == "eth0"; slices.ContainsFunc(rs, func(r kernel.Route) bool { return r.Dst.Bits() == 0 }) != want {
			t.Errorf("%s: routes %+v; a default route only on eth0 (%d)", n, rs, eth0.Index)
		}
	}
}

// TestRunNoCarrier (was the namespace test TestFaultNoCarrier): the only
// link never gets carrier; the phase is offline at the deadline and the
// state says why (the engine names the missing carrier 5 s after it
// started waiting for it).
func TestRunNoCarrier(t *testing.T) {
	k := kerneltest.New()
	k.Set("eth0", kernel.Link{MTU: 1500})
	e := New(Config{Spec: parseSpec(t, "ip=dhcp netinit.timeout=7s"), Links: []string{"eth0"}, Oneshot: true,
		Kernel: k, Clients: fakeClients{k: k}, Logf: t.Logf})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.Run(ctx)
	if err != nil || st.Phase != state.PhaseOffline {
		t.Fatalf("phase %s (%v), want offline", st.Phase, err)
	}
	if len(st.Links) != 1 || st.Links[0].Name != "eth0" || st.Links[0].Carrier {
		t.Errorf("links %+v, want eth0 without carrier", st.Links)
	}
	if !slices.ContainsFunc(st.Problems, func(s string) bool { return strings.Contains(s, "no carrier") }) {
		t.Errorf("problems %q do not mention the missing carrier", st.Problems)
	}
}

// TestRunCarrierLost: after the verdict, a link that loses carrier is in
// the published status as soon as the kernel reports it (LinkChanges),
// well before the periodic watch (watchEvery) would have shown it.
func TestRunCarrierLost(t *testing.T) {
	k := kerneltest.New()
	k.Set("eth0", kernel.Link{MTU: 1500, Carrier: true})
	e := New(Config{Spec: parseSpec(t, "ip=dhcp netinit.timeout=20s"), Links: []string{"eth0"},
		Kernel: k, Clients: fakeClients{k: k, leases: map[string]lease.Report{"eth0": dhcp4Lease("eth0")}}, Logf: t.Logf})
	sub := e.Subscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _, _ = e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	await := func(what string, within time.Duration, ok func(*state.NetworkStatus) bool) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case st := <-sub.Updates():
				if ok(st) {
					return
				}
			case <-deadline:
				t.Fatalf("no status with %s within %v", what, within)
			}
		}
	}
	await("ready on eth0", 20*time.Second, func(st *state.NetworkStatus) bool { return st.Phase == state.PhaseReady })
	time.Sleep(200 * time.Millisecond) // the keep loop's watch is on
	kl, _ := k.Link("eth0")
	kl.Carrier = false
	k.Set("eth0", kl)
	await("eth0 without carrier", watchEvery/4, func(st *state.NetworkStatus) bool {
		return slices.ContainsFunc(st.Links, func(l state.LinkStatus) bool { return l.Name == "eth0" && !l.Carrier })
	})
}
