package static

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestRun runs the client on a veth in a namespace and reads back what the
// kernel holds: the address (permanent, and for IPv6 without DAD), the
// gateway's on-link host route and the default route while the link is
// the uplink, both withdrawn at the Reapply after it stopped being it, and
// the reports saying the same.
func TestRun(t *testing.T) {
	lab.Require(t, "ip")
	for _, tc := range []struct {
		name        string
		address, gw string
		def, host   string // the default route and the gateway's host route
	}{
		{"v4 gateway in subnet", "192.0.2.10/24", "192.0.2.1", "0.0.0.0/0", ""},
		{"v4 gateway outside", "192.0.2.10/32", "198.51.100.1", "0.0.0.0/0", "198.51.100.1/32"},
		{"v6", "2001:db8:1::10/64", "2001:db8:1::1", "::/0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := lab.NewNS(t, "static")
			ns.MustExec("ip", "link", "add", "s0", "type", "veth", "peer", "name", "s1")
			ns.MustExec("ip", "link", "set", "s0", "up")
			ns.MustExec("ip", "link", "set", "s1", "up")
			h := ns.Handle()
			var def atomic.Bool
			def.Store(true)
			reapply := make(chan struct{})
			reports := make(chan lease.Report, 4)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			o := Options{Link: "s0", Address: netip.MustParsePrefix(tc.address), Gateway: netip.MustParseAddr(tc.gw),
				DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, Hostname: "node1",
				Routes: route.New(route.Config{Uplink: func(string, bool) bool { return def.Load() }}), Reapply: reapply, Report: func(r lease.Report) { reports <- r }, Logf: t.Logf}
			go func() { done <- lab.In(ns.Name, func() error { return Run(ctx, o) }) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			next := func() lease.Report {
				t.Helper()
				select {
				case r := <-reports:
					return r
				case err := <-done:
					t.Fatalf("Run ended: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no report")
				}
				return lease.Report{}
			}
			routes := func() map[string]string {
				t.Helper()
				l, err := h.LinkByName("s0")
				if err != nil {
					t.Fatal(err)
				}
				rs, err := h.RouteList(l, netlink.FAMILY_ALL)
				if err != nil {
					t.Fatal(err)
				}
				m := map[string]string{}
				for _, r := range rs {
					dst := "0.0.0.0/0"
					if r.Dst != nil {
						dst = r.Dst.String()
					} else if r.Family == netlink.FAMILY_V6 {
						dst = "::/0"
					}
					m[dst] = r.Gw.String()
				}
				return m
			}

			r := next()
			if r.Source != "static" || r.Status != "bound" || len(r.Addresses) != 1 || r.Addresses[0].Prefix.String() != tc.address ||
				r.Hostname != "node1" || len(r.DNS) != 1 || !r.HasDefault() || len(r.Routers) != 1 {
				t.Errorf("report %+v", r)
			}
			var found bool
			for _, a := range lab.Addrs(t, h, "s0", netlink.FAMILY_ALL) {
				if a.IPNet.String() == tc.address {
					found = true
					if a.Flags&unix.IFA_F_PERMANENT == 0 || o.Address.Addr().Is6() && a.Flags&unix.IFA_F_NODAD == 0 {
						t.Errorf("address flags %#x: want permanent (and nodad for IPv6)", a.Flags)
					}
				}
			}
			if !found {
				t.Fatalf("address %s not in the kernel", tc.address)
			}
			rs := routes()
			if gw, ok := rs[tc.def]; !ok || gw != tc.gw {
				t.Errorf("routes %v: want %s via %s", rs, tc.def, tc.gw)
			}
			if _, ok := rs[tc.host]; tc.host != "" && !ok {
				t.Errorf("routes %v: no on-link route %s to the gateway", rs, tc.host)
			}

			// Not the uplink any more: the routes go, the address stays.
			def.Store(false)
			reapply <- struct{}{}
			if r := next(); r.HasDefault() || len(r.Routes) != 0 || len(r.Routers) != 0 || len(r.Addresses) != 1 {
				t.Errorf("report after withdrawal %+v", r)
			}
			rs = routes()
			if _, ok := rs[tc.def]; ok {
				t.Errorf("routes %v: default route kept after the link stopped being the uplink", rs)
			}
			if _, ok := rs[tc.host]; tc.host != "" && ok {
				t.Errorf("routes %v: host route %s kept", rs, tc.host)
			}
		})
	}
}
