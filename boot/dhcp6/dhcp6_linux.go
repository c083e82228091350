package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/pause"
)

// bindWait bounds the wait for a link-local address to bind port 546 to.
const bindWait = 3 * time.Second

// Run is the DHCPv6 client on o.Link. Whatever it configured is left in
// place when ctx ends.
func Run(ctx context.Context, o Options) error {
	if !o.Managed && !o.Other {
		return nil
	}
	if o.Logf == nil {
		o.Logf = console.Discard
	}
	if o.Report == nil {
		o.Report = func(lease.Report) {}
	}
	ifi, err := net.InterfaceByName(o.Link)
	if err != nil {
		return fmt.Errorf("dhcp6 on %s: %w", o.Link, err)
	}
	if len(ifi.HardwareAddr) < 4 {
		return fmt.Errorf("dhcp6 on %s: no usable hardware address", o.Link)
	}
	conn, err := listen(ctx, o.Link)
	if err != nil {
		return fmt.Errorf("dhcp6 on %s: %w", o.Link, err)
	}
	pc := &peerConn{PacketConn: conn, peers: map[dhcpv6.TransactionID]netip.Addr{}}
	// One try per SendAndRead: retransmission is done by exchange.
	nc, err := nclient6.NewWithConn(pc, ifi.HardwareAddr, nclient6.WithRetry(1), nclient6.WithTimeout(time.Hour))
	if err != nil {
		conn.Close()
		return fmt.Errorf("dhcp6 on %s: %w", o.Link, err)
	}
	defer nc.Close()
	c := &client{o: o, duid: DUID(ifi.HardwareAddr), iaid: IAID(ifi.HardwareAddr), nc: nc, pc: pc,
		al: &addr.Link{Index: ifi.Index, Name: o.Link, Logf: o.Logf}}
	o.Logf("%s: dhcp6: client %s, iaid %x, %s", o.Link, c.duid, c.iaid, map[bool]string{true: "stateful (M)", false: "information only (O)"}[o.Managed])
	if o.Managed {
		err = c.managed(ctx)
	} else {
		err = c.information(ctx)
	}
	if err != nil && ctx.Err() != nil && !o.Oneshot {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dhcp6 on %s: %w", o.Link, err)
	}
	return nil
}

// listen binds [link-local%link]:546, waiting (bounded) for a link-local
// address that can be bound (not tentative, or optimistic).
func listen(ctx context.Context, link string) (net.PacketConn, error) {
	ctx, cancel := context.WithTimeout(ctx, bindWait)
	defer cancel()
	for {
		conn, err := nclient6.NewIPv6UDPConn(link, dhcpv6.DefaultClientPort)
		if err == nil {
			return conn, nil
		}
		if pause.For(ctx, 50*time.Millisecond) != nil {
			return nil, fmt.Errorf("bind port 546: %w", err)
		}
	}
}

// peerConn remembers the source address of the latest message of each
// transaction, so that the lease can name the server (nclient6 only
// returns the message).
type peerConn struct {
	net.PacketConn
	mu    sync.Mutex
	peers map[dhcpv6.TransactionID]netip.Addr
}

func (p *peerConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := p.PacketConn.ReadFrom(b)
	if err == nil && n >= 4 {
		if ua, ok := addr.(*net.UDPAddr); ok {
			if ip, ok := netip.AddrFromSlice(ua.IP); ok {
				var xid dhcpv6.TransactionID
				copy(xid[:], b[1:4])
				p.mu.Lock()
				if len(p.peers) > 16 {
					clear(p.peers)
				}
				p.peers[xid] = ip.WithZone("")
				p.mu.Unlock()
			}
		}
	}
	return n, addr, err
}

func (p *peerConn) peer(xid dhcpv6.TransactionID) netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peers[xid]
}

type client struct {
	o    Options
	duid dhcpv6.DUID
	iaid [4]byte
	nc   *nclient6.Client
	pc   *peerConn

	addr netip.Addr // applied IA_NA address
	al   *addr.Link // installs and removes it
}

var errNoReply = errors.New("no reply")

// exchange sends m and retransmits it per RFC 8415 section 15 until a
// reply of type want from a server, for our client id, comes in; until
// p.mrc transmissions or the deadline (MRD; zero for none) or ctx end.
func (c *client) exchange(ctx context.Context, m *dhcpv6.Message, want dhcpv6.MessageType, p params, deadline time.Time) (*dhcpv6.Message, netip.Addr, error) {
	match := func(r *dhcpv6.Message) bool {
		if r.MessageType != want {
			return false
		}
		// RFC 8415 sections 16.3 and 16.10: the client id must be ours
		// and a server id present.
		cid := r.Options.ClientID()
		return cid != nil && cid.Equal(c.duid) && r.Options.ServerID() != nil
	}
	start := time.Now()
	var rt time.Duration
	for n := 1; p.mrc == 0 || n <= p.mrc; n++ {
		rnd := rand01()
		if n == 1 && m.MessageType == dhcpv6.MessageTypeSolicit && rnd <= 0 {
			rnd = -rnd + 0.001 // section 18.2.1: the first RT of Solicit is above IRT
		}
		rt = nextRT(rt, p, rnd)
		wait := rt
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		// Elapsed time in hundredths of a second (section 21.9); it is
		// capped at 0xffff by the option's encoding.
		m.UpdateOption(dhcpv6.OptElapsedTime(time.Since(start)))
		actx, cancel := context.WithTimeout(ctx, wait)
		r, err := c.nc.SendAndRead(actx, nclient6.AllDHCPRelayAgentsAndServers, m, match)
		cancel()
		if err == nil {
			return r, c.pc.peer(r.TransactionID), nil
		}
		if ctx.Err() != nil {
			return nil, netip.Addr{}, ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return nil, netip.Addr{}, fmt.Errorf("%s: %w", p.name, err)
		}
		c.o.Logf("%s: dhcp6: no reply to %s #%d within %s", c.o.Link, p.name, n, wait.Round(time.Millisecond))
	}
	return nil, netip.Addr{}, fmt.Errorf("%s: %w", p.name, errNoReply)
}

// oro is the Option Request option of every message: DNS servers and
// search list (RFC 3646), NTP (RFC 5908), information refresh time.
func oro() dhcpv6.Modifier {
	return dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList,
		dhcpv6.OptionNTPServer, dhcpv6.OptionInformationRefreshTime)
}

// newMessage builds a client message of type t with our client id.
func (c *client) newMessage(t dhcpv6.MessageType, mods ...dhcpv6.Modifier) (*dhcpv6.Message, error) {
	m, err := dhcpv6.NewMessage(append([]dhcpv6.Modifier{dhcpv6.WithClientID(c.duid), oro()}, mods...)...)
	if err != nil {
		return nil, err
	}
	m.MessageType = t
	return m, nil
}

// iana is our IA_NA, with the address we hold (lifetimes 0, as a client
// sends them: RFC 8415 section 21.6).
func (c *client) iana() dhcpv6.Modifier {
	return func(d dhcpv6.DHCPv6) {
		ia := &dhcpv6.OptIANA{IaId: c.iaid}
		if c.addr.IsValid() {
			ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: c.addr.AsSlice()})
		}
		d.UpdateOption(ia)
	}
}

// managed is the stateful client: Solicit, Request, then Renew at T1,
// Rebind at T2, and again from Solicit when the address expires.
func (c *client) managed(ctx context.Context) error {
	for {
		b, server, err := c.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			c.o.Logf("%s: dhcp6: %v; soliciting again", c.o.Link, err)
			if err := pause.For(ctx, solicitParams.irt); err != nil {
				return err
			}
			continue
		}
		c.bind(b, server, "bound")
		if c.o.Oneshot {
			return nil
		}
		if err := c.keep(ctx, b, server); err != nil {
			return err
		}
	}
}

// acquire is Solicit/Advertise/Request/Reply (RFC 8415 section 18.2.1,
// 18.2.2). The first Advertise with an address is taken at once instead
// of collecting Advertises for the first RT: a booting node wants its
// address quickly, and on a 0-OS farm there is one DHCPv6 server.
func (c *client) acquire(ctx context.Context) (Binding, netip.Addr, error) {
	sol, err := c.newMessage(dhcpv6.MessageTypeSolicit, c.iana())
	if err != nil {
		return Binding{}, netip.Addr{}, err
	}
	var adv *dhcpv6.Message
	for {
		a, server, err := c.exchange(ctx, sol, dhcpv6.MessageTypeAdvertise, solicitParams, time.Time{})
		if err != nil {
			return Binding{}, netip.Addr{}, err
		}
		// Section 18.2.9: an Advertise without addresses is ignored.
		if _, err := c.parse(a, true); err != nil {
			c.o.Logf("%s: dhcp6: advertise from %s ignored: %v", c.o.Link, server, err)
			if err := pause.For(ctx, solicitParams.irt); err != nil {
				return Binding{}, netip.Addr{}, err
			}
			continue
		}
		adv = a
		break
	}
	req, err := dhcpv6.NewRequestFromAdvertise(adv, oro())
	if err != nil {
		return Binding{}, netip.Addr{}, err
	}
	reply, server, err := c.exchange(ctx, req, dhcpv6.MessageTypeReply, requestParams, time.Time{})
	if err != nil {
		return Binding{}, netip.Addr{}, err
	}
	b, err := c.parse(reply, true)
	return b, server, err
}

// keep renews the binding until it is lost; it returns nil when it
// expired (to solicit again) and an error only when ctx ends.
func (c *client) keep(ctx context.Context, b Binding, server netip.Addr) error {
	for {
		got := time.Now()
		t1, t2, end := got.Add(b.T1), got.Add(b.T2), got.Add(b.Valid)
		if b.T1 >= infinity {
			t1 = got.Add(100 * 365 * 24 * time.Hour) // renewed only when kicked
		}
		if err := c.waitKick(ctx, t1); err != nil {
			return err
		}
		// Renew (section 18.2.4) to the server that gave the binding,
		// until T2.
		c.report(b, server, "renewing")
		m, err := c.newMessage(dhcpv6.MessageTypeRenew, dhcpv6.WithServerID(b.ServerID), c.iana())
		if err != nil {
			return err
		}
		reply, from, err := c.exchange(ctx, m, dhcpv6.MessageTypeReply, renewParams, t2)
		if err == nil {
			if nb, perr := c.parse(reply, true); perr == nil {
				b, server = nb, from
				c.bind(b, server, "bound")
				continue
			} else {
				c.o.Logf("%s: dhcp6: renew: %v", c.o.Link, perr)
			}
		} else if ctx.Err() != nil {
			return err
		}
		// Rebind (section 18.2.5) to any server, until the valid lifetime
		// ends.
		if err := pause.For(ctx, time.Until(t2)); err != nil {
			return err
		}
		c.report(b, server, "rebinding")
		m, err = c.newMessage(dhcpv6.MessageTypeRebind, c.iana())
		if err != nil {
			return err
		}
		reply, from, err = c.exchange(ctx, m, dhcpv6.MessageTypeReply, rebindParams, end)
		if err == nil {
			if nb, perr := c.parse(reply, true); perr == nil {
				b, server = nb, from
				c.bind(b, server, "bound")
				continue
			}
		} else if ctx.Err() != nil {
			return err
		}
		if err := pause.For(ctx, time.Until(end)); err != nil {
			return err
		}
		c.o.Logf("%s: dhcp6: %s expired", c.o.Link, c.addr)
		c.unbind()
		c.o.Report(Binding{}.Report(c.o.Link, "expired", netip.Addr{}, time.Now()))
		return nil
	}
}

// information is the stateless client: Information-request (section
// 18.2.6), repeated at the information refresh time.
func (c *client) information(ctx context.Context) error {
	for {
		m, err := c.newMessage(dhcpv6.MessageTypeInformationRequest)
		if err != nil {
			return err
		}
		reply, server, err := c.exchange(ctx, m, dhcpv6.MessageTypeReply, infoParams, time.Time{})
		if err != nil {
			return err
		}
		b, err := c.parse(reply, false)
		if err != nil {
			c.o.Logf("%s: dhcp6: information-request: %v", c.o.Link, err)
			if err := pause.For(ctx, infoParams.irt); err != nil {
				return err
			}
			continue
		}
		c.logDropped(b, server)
		c.o.Logf("%s: dhcp6: information from %s: dns %v, search %v, refresh %s", c.o.Link, server, b.DNS, b.Search, b.Refresh)
		c.o.Report(b.Report(c.o.Link, "received", server, time.Now()))
		if c.o.Oneshot {
			return nil
		}
		if err := c.waitKick(ctx, time.Now().Add(b.Refresh)); err != nil {
			return err
		}
	}
}

// parse is ParseReply for this client's IA_NA and protected prefixes.
func (c *client) parse(m *dhcpv6.Message, managed bool) (Binding, error) {
	return ParseReply(m, c.iaid, managed, c.o.Protected)
}

// logDropped says what of a reply was not taken (names already quoted).
func (c *client) logDropped(b Binding, server netip.Addr) {
	for _, d := range b.Dropped {
		c.o.Logf("%s: dhcp6: ignoring %s from %s", c.o.Link, d, server)
	}
}

func (c *client) report(b Binding, server netip.Addr, status string) {
	c.o.Report(b.Report(c.o.Link, status, server, time.Now()))
}

// bind applies the binding's address (a /128: DHCPv6 says nothing of
// on-link prefixes, which come from the RA) and reports the lease.
func (c *client) bind(b Binding, server netip.Addr, status string) {
	if c.addr.IsValid() && c.addr != b.Addr {
		c.unbind()
	}
	// A /128, optimistic (RFC 4429; DAD runs, the address is usable
	// meanwhile), without a prefix route: on-link prefixes are the RA's.
	err := c.al.Replace(addr.Addr{Prefix: netip.PrefixFrom(b.Addr, 128), Valid: b.Valid, Preferred: b.Preferred, NoPrefixRoute: true})
	if err != nil {
		c.o.Logf("%s: dhcp6: %v", c.o.Link, err)
		c.o.Report(b.Report(c.o.Link, "failed", server, time.Now()))
		return
	}
	c.addr = b.Addr
	c.logDropped(b, server)
	c.o.Logf("%s: dhcp6: %s %s/128 from %s (valid %s, preferred %s, T1 %s, T2 %s), dns %v, search %v",
		c.o.Link, status, b.Addr, server, b.Valid, b.Preferred, b.T1, b.T2, b.DNS, b.Search)
	c.report(b, server, status)
}

func (c *client) unbind() {
	if !c.addr.IsValid() {
		return
	}
	if err := c.al.Remove(netip.PrefixFrom(c.addr, 128)); err != nil {
		c.o.Logf("%s: dhcp6: %v", c.o.Link, err)
	}
	c.addr = netip.Addr{}
}

// waitKick sleeps until at, or until Options.Kick asks to act now. It
// returns an error only when ctx ended.
func (c *client) waitKick(ctx context.Context, at time.Time) error {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-c.o.Kick:
		c.o.Logf("%s: dhcp6: asked to renew now", c.o.Link)
	}
	return nil
}
