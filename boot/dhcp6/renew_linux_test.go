package dhcp6

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The short-lease server: T1 1 s, T2 2 s, preferred 2 s, valid 4 s (T1 and
// T2 are then the client's own floors, 0.5 and 0.8 of preferred). dnsmasq
// cannot go below two minutes, so Renew/Rebind/expiry are tested against
// this small server (insomniacslk's server6) over a real veth.
var (
	shortAddr             = netip.MustParseAddr("2001:db8:1::42")
	shortT1, shortT2      = 1 * time.Second, 2 * time.Second
	shortPref, shortValid = 2 * time.Second, 4 * time.Second
	serverDUID            = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x47}}
)

// runShortServer answers Solicit/Request, Renew only in modes "renew" and
// "kick", Rebind in modes "renew" and "rebind"; mode "silent" answers
// nothing after the first Request; mode "kick" gives T1 100 s, so that
// only Options.Kick makes the client renew. It prints one line per message received.
func runShortServer(t *testing.T, mode string) {
	var (
		mu    sync.Mutex
		bound bool
	)
	handler := func(conn net.PacketConn, peer net.Addr, d dhcpv6.DHCPv6) {
		m, ok := d.(*dhcpv6.Message)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		sid := "no"
		if m.Options.ServerID() != nil {
			sid = "yes"
		}
		fmt.Printf("GOT %s client=%s server-id=%s\n", m.MessageType, m.Options.ClientID(), sid)
		ia := m.Options.OneIANA()
		if ia == nil {
			return
		}
		reply := &dhcpv6.OptIANA{IaId: ia.IaId, T1: shortT1, T2: shortT2}
		reply.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: shortAddr.AsSlice(), PreferredLifetime: shortPref, ValidLifetime: shortValid})
		mods := []dhcpv6.Modifier{dhcpv6.WithServerID(serverDUID), dhcpv6.WithOption(reply), dhcpv6.WithDNS(net.ParseIP("2001:db8:1::53"))}
		if mode == "deprecated" {
			// Issue 13: a deprecated address (preferred 0) with T1 = T2 =
			// 0, and DNS options that try to reach resolv.conf.
			reply = &dhcpv6.OptIANA{IaId: ia.IaId}
			reply.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: shortAddr.AsSlice(), ValidLifetime: 600 * time.Second})
			mods = []dhcpv6.Modifier{dhcpv6.WithServerID(serverDUID), dhcpv6.WithOption(reply),
				dhcpv6.WithDNS(net.ParseIP("::1"), net.ParseIP("::ffff:192.0.2.53"), net.ParseIP("2001:db8:1::53")),
				dhcpv6.WithDomainSearchList("x\nnameserver\t6.6.6.6", "lab.example")}
		}
		if mode == "kick" {
			reply = &dhcpv6.OptIANA{IaId: ia.IaId, T1: 100 * time.Second, T2: 200 * time.Second}
			reply.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: shortAddr.AsSlice(), PreferredLifetime: 300 * time.Second, ValidLifetime: 600 * time.Second})
			mods = []dhcpv6.Modifier{dhcpv6.WithServerID(serverDUID), dhcpv6.WithOption(reply)}
		}
		var resp *dhcpv6.Message
		var err error
		if bound && mode == "silent" {
			return // nothing after the first binding, not even Solicits
		}
		switch m.MessageType {
		case dhcpv6.MessageTypeSolicit:
			resp, err = dhcpv6.NewAdvertiseFromSolicit(m, mods...)
		case dhcpv6.MessageTypeRequest:
			resp, err = dhcpv6.NewReplyFromMessage(m, mods...)
			bound = true
		case dhcpv6.MessageTypeRenew:
			if mode != "renew" && mode != "kick" {
				return
			}
			resp, err = dhcpv6.NewReplyFromMessage(m, mods...)
		case dhcpv6.MessageTypeRebind:
			if mode == "silent" {
				return
			}
			resp, err = dhcpv6.NewReplyFromMessage(m, mods...)
		default:
			return
		}
		if err != nil {
			fmt.Printf("ERR %v\n", err)
			return
		}
		if _, err := conn.WriteTo(resp.ToBytes(), peer); err != nil {
			fmt.Printf("ERR %v\n", err)
		}
	}
	var (
		s   *server6.Server
		err error
	)
	// The router's link-local address may still be in DAD: retry.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, err = server6.NewServer("r0", nil, handler)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	// Replies go out from the link-local address: wait for its DAD.
	for deadline := time.Now().Add(5 * time.Second); !linkLocalReady(t, "r0"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("r0 has no usable link-local address")
		}
	}
	fmt.Println("SERVER-READY")
	// The server lives until the test stops it (lab.Proc.Stop once the
	// client is done); the bound only covers a test that died.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	select {
	case <-ctx.Done():
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	s.Close()
	<-done
}

// runShortClient runs the client for d; with kick, it kicks the client
// once, at its first binding.
func runShortClient(t *testing.T, d time.Duration, kick bool) {
	var (
		mu  sync.Mutex
		out childOut
	)
	kicks := make(chan struct{}, 1)
	prepareLink(t, "c0")
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := Run(ctx, Options{Link: "c0", Managed: true, Kick: kicks,
		Logf: func(f string, a ...any) {
			mu.Lock()
			out.Log = append(out.Log, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(f, a...))
			mu.Unlock()
		},
		Report: func(l lease.Report) {
			mu.Lock()
			defer mu.Unlock()
			if kick && len(out.Leases) == 0 && l.Status == "bound" {
				kicks <- struct{}{}
			}
			out.Leases = append(out.Leases, l)
		}})
	if err != nil {
		out.Err = err.Error()
	}
	lab.ChildResult(t, out)
}

// TestRenewRebindExpire: with T1 1 s and T2 2 s, the client renews with
// the server's id (mode renew), rebinds without it when Renew goes
// unanswered (mode rebind), and removes the address when nothing answers
// until the valid lifetime ends (mode silent), and renews long before T1
// when kicked (mode kick: Options.Kick, the control socket's "renew").
func TestRenewRebindExpire(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		statuses string // the sequence of lease statuses reported
		run      time.Duration
	}{
		{"renew", "bound renewing bound", 2500 * time.Millisecond},
		{"rebind", "bound renewing rebinding bound", 3500 * time.Millisecond},
		{"silent", "bound renewing rebinding expired", 6 * time.Second},
		{"deprecated", "bound", 4 * time.Second},
		{"kick", "bound renewing bound", 2 * time.Second},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			if m := os.Getenv("DHCP6_SERVER"); m != "" {
				runShortServer(t, m)
				return
			}
			if lab.Child() {
				runShortClient(t, tc.run, tc.mode == "kick")
				return
			}
			t.Parallel()
			lab.Require(t, "ip")
			lab.GuardResolvConf(t)
			r, c := lab.NewNS(t, "d6sr"), lab.NewNS(t, "d6sc")
			lab.Veth(t, r, "r0", c, "c0")
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			srv := r.Start("env", "DHCP6_SERVER="+tc.mode, exe,
				"-test.run=^TestRenewRebindExpire$/^"+tc.mode+"$", "-test.v", "-test.count=1")
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.Output(), "SERVER-READY"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("server did not start:\n%s", srv.Output())
				}
			}
			var out childOut
			lab.RunChild(t, c, 30*time.Second, nil, &out)
			srv.Stop()
			t.Logf("client log:\n%s\nserver:\n%s", strings.Join(out.Log, "\n"), srv.Output())
			if out.Err != "" {
				t.Fatalf("client: %s", out.Err)
			}
			var st []string
			for _, l := range out.Leases {
				st = append(st, l.Status)
			}
			if got := strings.Join(st, " "); !strings.HasPrefix(got, tc.statuses) {
				t.Fatalf("statuses %q, want %q...", got, tc.statuses)
			}
			so := srv.Output()
			cid := "client=DUID-LL{HWType=Ethernet HWAddr="
			switch tc.mode {
			case "renew", "kick":
				if !strings.Contains(so, "GOT RENEW "+cid) || !strings.Contains(so, "server-id=yes") {
					t.Fatalf("server saw no Renew with client and server id:\n%s", so)
				}
			case "deprecated":
				// T1 = T2 = 0 on a deprecated address: before the floor,
				// thousands of Rebinds in these 4 s (8322 in one run).
				if n := strings.Count(so, "GOT RENEW") + strings.Count(so, "GOT REBIND"); n != 0 {
					t.Fatalf("%d Renew/Rebind within 4 s of binding an address valid for 600 s", n)
				}
				l := out.Leases[len(out.Leases)-1]
				if fmt.Sprint(l.DNS) != "[2001:db8:1::53]" || fmt.Sprint(l.Search) != "[lab.example]" {
					t.Fatalf("lease dns %v search %q", l.DNS, l.Search)
				}
				if !strings.Contains(strings.Join(out.Log, "\n"), `ignoring search domain "x\nnameserver\t6.6.6.6"`) {
					t.Fatal("the hostile search domain was not logged, quoted")
				}
				return
			default:
				if !strings.Contains(so, "GOT REBIND "+cid) || strings.Contains(so, "GOT REBIND client=DUID-LL{HWType=Ethernet HWAddr=") && strings.Contains(lineOf(so, "GOT REBIND"), "server-id=yes") {
					t.Fatalf("server saw no Rebind without server id:\n%s", so)
				}
			}
			// The kernel: the address is there, or gone after expiry.
			addrs := lab.Addrs(t, c.Handle(), "c0", netlink.FAMILY_V6)
			found := false
			for _, a := range addrs {
				if ip, _ := netip.AddrFromSlice(a.IP); ip == shortAddr {
					found = true
					valid := shortValid
					if tc.mode == "kick" {
						valid = 600 * time.Second
					}
					if a.ValidLft > int(valid/time.Second) {
						t.Fatalf("valid lifetime %d", a.ValidLft)
					}
				}
			}
			if found != (tc.mode != "silent") {
				t.Fatalf("address %s in the kernel: %v (mode %s)", shortAddr, found, tc.mode)
			}
		})
	}
}

func linkLocalReady(t *testing.T, name string) bool {
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
			return true
		}
	}
	return false
}

func lineOf(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
