package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/route"
)

// requested is our parameter request list (option 55, RFC 2132 section
// 9.8). The library's default asks only for 1, 3, 6 and 15.
var requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,           // 1
	dhcpv4.OptionClasslessStaticRoute, // 121 (RFC 3442)
	dhcpv4.OptionRouter,               // 3
	dhcpv4.OptionDomainNameServer,     // 6
	dhcpv4.OptionHostName,             // 12
	dhcpv4.OptionDomainName,           // 15
	dhcpv4.OptionInterfaceMTU,         // 26
	dhcpv4.OptionBroadcastAddress,     // 28
	dhcpv4.OptionNTPServers,           // 42
	dhcpv4.OptionIPAddressLeaseTime,   // 51
	dhcpv4.OptionServerIdentifier,     // 54
	dhcpv4.OptionRenewTimeValue,       // 58
	dhcpv4.OptionRebindingTimeValue,   // 59
	dhcpv4.OptionDNSDomainSearchList,  // 119
}

// errNoAnswer: all transmissions of an exchange went unanswered.
var errNoAnswer = errors.New("no answer")

// client is the state of one Run.
type client struct {
	o   Options
	idx int
	hw  net.HardwareAddr
	cid []byte // option 61

	cur    *binding  // what is applied; nil when nothing
	t0     time.Time // when the REQUEST that got cur was first sent
	inst   installed // what we put in the kernel (apply_linux.go)
	status string

	lastRefusal string
	dropped     map[string]bool
	v6only      time.Duration // the server's V6ONLY_WAIT while honouring it
}

// v6OnlyError: the server prefers the link IPv6-only (RFC 8925).
type v6OnlyError struct {
	server net.IP
	wait   time.Duration
}

func (e *v6OnlyError) Error() string {
	return fmt.Sprintf("%v prefers IPv6-only for %s (option 108)", e.server, e.wait)
}

// Run acquires a DHCPv4 lease on o.Link, applies and reports it and, unless
// o.Oneshot, keeps it until ctx ends. It leaves the configuration in place
// when it returns. It returns an error only when the link can't be used at
// all (not found, no Ethernet address); everything else is retried until
// ctx ends, and then Run returns nil.
func Run(ctx context.Context, o Options) error {
	o.defaults()
	l, err := netlink.LinkByName(o.Link)
	if err != nil {
		return fmt.Errorf("dhcp4 on %s: %w", o.Link, err)
	}
	hw := l.Attrs().HardwareAddr
	if len(hw) != 6 {
		return fmt.Errorf("dhcp4 on %s: no Ethernet hardware address (%q)", o.Link, hw)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("dhcp4 on %s: setting link up: %w", o.Link, err)
		}
	}
	c := &client{
		o:   o,
		idx: l.Attrs().Index,
		hw:  hw,
		// RFC 2132 section 9.14 / RFC 1700: type 1 (Ethernet) and
		// the MAC. Stable across reboots, so the server hands the
		// same address back.
		cid:     append([]byte{1}, hw...),
		dropped: map[string]bool{},
	}
	c.run(ctx)
	switch {
	case o.ReleaseOnStop != nil && o.ReleaseOnStop():
		c.release()
	case o.Handover != nil && c.cur != nil:
		o.Handover(&Held{b: c.cur, t0: c.t0, link: o.Link})
	}
	return nil
}

func (c *client) logf(format string, args ...any) {
	c.o.Logf(c.o.Link+": dhcp4 "+format, args...)
}

// logDrop logs a dropped informational item once per Run (the same server
// sends the same garbage at every renewal).
func (c *client) logDrop(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if len(c.dropped) > 256 { // a server inventing new garbage each time
		clear(c.dropped)
	}
	if !c.dropped[s] {
		c.dropped[s] = true
		c.logf("%s", s)
	}
}

// refuse logs why a message was refused, once per run of identical
// refusals.
func (c *client) refuse(what string, m *dhcpv4.DHCPv4, err error) {
	s := fmt.Sprintf("refused %s from %v: %v", what, m.ServerIdentifier(), err)
	if s != c.lastRefusal {
		c.lastRefusal = s
		c.logf("%s", s)
	}
}

func (c *client) run(ctx context.Context) {
	if c.o.From != nil && !c.o.Oneshot && !c.carried(ctx) {
		return
	}
	for ctx.Err() == nil {
		c.setStatus("selecting")
		b, t0, err := c.acquire(ctx)
		var v6 *v6OnlyError
		if errors.As(err, &v6) {
			// RFC 8925 section 3.2: no REQUEST, no address; ask again
			// after V6ONLY_WAIT (or when told to renew).
			c.logf("server %v prefers IPv6-only (RFC 8925): no IPv4 address taken, asking again in %s", v6.server, v6.wait)
			c.v6only = v6.wait
			c.setStatus("ipv6-only")
			if c.o.Oneshot || !c.waitRenew(ctx, time.Now().Add(v6.wait)) {
				return
			}
			c.v6only = 0
			continue
		}
		if err != nil {
			return // ctx ended
		}
		if err := c.bind(b, t0, false); err != nil {
			c.logf("applying lease %s: %v", b.Addr, err)
			c.withdraw("failed")
			pause.For(ctx, c.o.Retransmit)
			continue
		}
		if c.o.Oneshot {
			return
		}
		if !c.maintain(ctx) {
			return
		}
	}
}

// carriedTries is how many renewing REQUESTs confirm a carried lease
// (Options.From), each awaited Options.Retransmit.
const carriedTries = 3

// carried takes the lease of Options.From as bound on this link and
// confirms it at once with the server (RENEWING, RFC 2131 section
// 4.4.5): an ACK renews it (another address in it replaces the carried
// one), a NAK removes it and the client starts over; unanswered, it is
// kept until its T1 like any bound lease. It returns false when ctx
// ended.
func (c *client) carried(ctx context.Context) bool {
	h := c.o.From
	c.logf("lease %s carried over from %s: confirming it with %s", h.b.Addr, h.link, h.b.Server)
	if err := c.bind(h.b, h.t0, false); err != nil {
		c.logf("applying the lease carried over from %s: %v", h.link, err)
		c.withdraw("failed")
		return ctx.Err() == nil
	}
	c.setStatus("renewing")
	res := extendNone
	for i := 0; i < carriedTries && res == extendNone && ctx.Err() == nil; i++ {
		res = c.extend(ctx, false, time.Now().Add(c.o.Retransmit))
	}
	switch res {
	case extendCtx:
		return false
	case extendNak:
		c.withdraw("nak")
		return true
	case extendNone:
		if ctx.Err() != nil {
			return false
		}
		c.logf("no answer from %s for the carried lease %s: keeping it until it is due for renewal", h.b.Server, h.b.Addr)
		c.setStatus("bound")
	}
	return c.maintain(ctx)
}

// acquire runs DISCOVER/OFFER/REQUEST/ACK (RFC 2131 section 3.1) until it
// has a valid ACK or ctx ends.
func (c *client) acquire(ctx context.Context) (*binding, time.Time, error) {
	for {
		b, t0, err := c.dora(ctx)
		if err == nil {
			c.lastRefusal = ""
			return b, t0, nil
		}
		if ctx.Err() != nil {
			return nil, time.Time{}, ctx.Err()
		}
		var v6 *v6OnlyError
		if errors.As(err, &v6) {
			return nil, time.Time{}, err
		}
		if s := err.Error(); s != c.lastRefusal {
			c.lastRefusal = s
			c.logf("%s", s)
		}
		// Don't spin against a server that NAKs or sends garbage.
		if pause.For(ctx, c.o.Retransmit) != nil {
			return nil, time.Time{}, ctx.Err()
		}
		c.setStatus("selecting")
	}
}

func (c *client) dora(ctx context.Context) (*binding, time.Time, error) {
	conn, err := nclient4.NewRawUDPConn(c.o.Link, nclient4.ClientPort)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("opening raw socket: %w", err)
	}
	// Retransmission is ours (exchange): one try per SendAndRead,
	// bounded by a per-try context.
	cl, err := nclient4.NewWithConn(conn, c.hw, nclient4.WithTimeout(24*time.Hour), nclient4.WithRetry(1))
	if err != nil {
		conn.Close()
		return nil, time.Time{}, fmt.Errorf("starting client: %w", err)
	}
	defer cl.Close()

	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, time.Time{}, err
	}
	backoff := func(n int) time.Duration { return retransmit(n, c.o.Retransmit, c.o.RetransmitMax, nil) }
	offer, _, err := c.exchange(ctx, cl, nclient4.DefaultServers, 0, backoff, "DISCOVER",
		func(secs uint16) (*dhcpv4.DHCPv4, error) {
			return dhcpv4.NewDiscovery(c.hw, c.modifiers(xid, secs)...)
		},
		func(m *dhcpv4.DHCPv4) bool {
			if m.MessageType() != dhcpv4.MessageTypeOffer {
				return false
			}
			if _, err := parseLease(m, console.Discard); err != nil {
				c.refuse("offer", m, err)
				return false
			}
			return true
		})
	if err != nil {
		return nil, time.Time{}, err
	}
	srv := offer.ServerIdentifier()
	if c.o.IPv6OnlyPreferred {
		if w, ok := v6OnlyWait(offer, c.logDrop); ok {
			return nil, time.Time{}, &v6OnlyError{server: srv, wait: w}
		}
	}
	// REQUESTING: broadcast, same xid, with the server identifier and
	// the requested address (RFC 2131 section 4.3.2).
	ack, t0, err := c.exchange(ctx, cl, nclient4.DefaultServers, c.o.Requests, backoff, "REQUEST",
		func(secs uint16) (*dhcpv4.DHCPv4, error) {
			return dhcpv4.NewRequestFromOffer(offer, c.modifiers(xid, secs)...)
		},
		nclient4.IsAll(nclient4.IsCorrectServer(srv),
			nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)))
	if errors.Is(err, errNoAnswer) {
		return nil, time.Time{}, fmt.Errorf("no answer to REQUEST for %v from %v, starting over", offer.YourIPAddr, srv)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		c.setStatus("nak")
		return nil, time.Time{}, fmt.Errorf("NAK from %v for %v (%q), starting over", srv, offer.YourIPAddr, ack.Message())
	}
	b, err := parseLease(ack, c.logDrop)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("refused ACK from %v: %w", srv, err)
	}
	return b, t0, nil
}

// modifiers are what every message we send carries.
func (c *client) modifiers(xid dhcpv4.TransactionID, secs uint16) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(c.hw),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(c.cid)),
		dhcpv4.WithRequestedOptions(requested...),
		func(d *dhcpv4.DHCPv4) {
			if c.o.IPv6OnlyPreferred {
				d.UpdateOption(dhcpv4.OptParameterRequestList(slices.Concat(requested, []dhcpv4.OptionCode{dhcpv4.OptionIPv6OnlyPreferred})...))
			}
		},
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
		func(d *dhcpv4.DHCPv4) { d.NumSeconds = secs },
	}
}

// exchange sends what build makes and waits for a reply that match
// accepts, retransmitting after wait(n) for at most tries transmissions
// (0: until ctx ends). It returns the reply and when the first
// transmission was sent (the lease starts then, RFC 2131 section 4.4.1).
func (c *client) exchange(ctx context.Context, cl *nclient4.Client, dest *net.UDPAddr, tries int,
	wait func(n int) time.Duration, what string,
	build func(secs uint16) (*dhcpv4.DHCPv4, error), match nclient4.Matcher) (*dhcpv4.DHCPv4, time.Time, error) {
	start := time.Now()
	nextNote := 30 * time.Second
	for n := 0; tries <= 0 || n < tries; n++ {
		// RFC 2131 section 2: secs is the time since the client began
		// acquisition.
		secs := min(time.Since(start)/time.Second, 0xffff)
		msg, err := build(uint16(secs))
		if err != nil {
			return nil, start, fmt.Errorf("building %s: %w", what, err)
		}
		tctx, cancel := context.WithTimeout(ctx, wait(n))
		// A kick (Options.Kick: the control socket's "renew", or the
		// engine when a spanning-tree port starts forwarding) ends the
		// wait: the next transmission goes now.
		kickDone := make(chan struct{})
		go func() {
			defer close(kickDone)
			select {
			case <-c.o.Kick:
				cancel()
			case <-tctx.Done():
			}
		}()
		resp, err := cl.SendAndRead(tctx, dest, msg, match)
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			// Sending failed (no carrier yet, ...): wait out the
			// interval instead of spinning.
			c.logDrop("sending %s: %v", what, err)
			<-tctx.Done()
		}
		cancel()
		<-kickDone
		if err == nil {
			return resp, start, nil
		}
		if ctx.Err() != nil {
			return nil, start, ctx.Err()
		}
		if d := time.Since(start); d >= nextNote {
			c.logf("no answer to %s after %v, still trying", what, d.Round(time.Second))
			nextNote *= 2
		}
	}
	return nil, start, errNoAnswer
}

// maintain keeps the applied lease: RENEWING from T1, REBINDING from T2,
// withdrawal at expiry or on a NAK (RFC 2131 section 4.4.5). It returns
// true when the client must start over, false when ctx ended.
func (c *client) maintain(ctx context.Context) bool {
	for {
		b := c.cur
		if b.Lease == 0 { // infinite: renew only when asked to
			if !c.waitRenew(ctx, time.Now().Add(100*365*24*time.Hour)) {
				return false
			}
			c.logf("renewing %s now, as asked", b.Addr)
			c.setStatus("renewing")
			if c.extend(ctx, false, time.Now().Add(10*time.Second)) == extendNak {
				c.withdraw("nak")
				return true
			}
			c.setStatus("bound")
			continue
		}
		t1, t2, end := c.t0.Add(b.T1), c.t0.Add(b.T2), c.t0.Add(b.Lease)
		if !c.waitRenew(ctx, t1) {
			return false
		}
		if time.Now().Before(t1) {
			c.logf("renewing %s now, as asked", b.Addr)
		}
		c.setStatus("renewing")
		res := c.extend(ctx, false, t2)
		if res == extendNone {
			c.setStatus("rebinding")
			res = c.extend(ctx, true, end)
		}
		switch res {
		case extendDone:
			continue
		case extendNak:
			c.withdraw("nak")
			return true
		case extendNone:
			if ctx.Err() != nil {
				return false
			}
			c.logf("lease %s expired, removed it", b.Addr)
			c.withdraw("expired")
			return true
		default: // ctx ended
			return false
		}
	}
}

type extendResult int

const (
	extendNone extendResult = iota // no valid answer before the deadline
	extendDone                     // renewed (or rebound), cur updated
	extendNak
	extendCtx
)

// extend sends REQUESTs with ciaddr set (RENEWING: unicast to the server;
// REBINDING: broadcast, RFC 2131 section 4.4.5) until an ACK or a NAK, or
// until deadline.
func (c *client) extend(ctx context.Context, rebinding bool, deadline time.Time) extendResult {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := listenUDP(dctx, c.o.Link)
	if err != nil {
		c.logf("opening UDP socket: %v", err)
		<-dctx.Done()
		return c.ctxResult(ctx)
	}
	cl, err := nclient4.NewWithConn(conn, c.hw, nclient4.WithTimeout(24*time.Hour), nclient4.WithRetry(1))
	if err != nil {
		conn.Close()
		c.logf("starting client: %v", err)
		<-dctx.Done()
		return c.ctxResult(ctx)
	}
	defer cl.Close()

	cur := c.cur
	dest := &net.UDPAddr{IP: cur.Server.AsSlice(), Port: nclient4.ServerPort}
	what := "renewing REQUEST to " + cur.Server.String()
	match := nclient4.IsAll(nclient4.IsCorrectServer(cur.Server.AsSlice()),
		nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if rebinding {
		dest = nclient4.DefaultServers
		what = "rebinding REQUEST"
		match = nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	}
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return c.ctxResult(ctx)
		}
		xid, err := dhcpv4.GenerateTransactionID()
		if err != nil {
			c.logf("%v", err)
			return c.ctxResult(ctx)
		}
		wait := renewWait(left, c.o.RenewMin)
		// RFC 2131 section 4.3.2 table 4 / 4.4.5: ciaddr is our
		// address, no requested address and no server identifier.
		resp, sent, err := c.exchange(dctx, cl, dest, 1, func(int) time.Duration { return wait }, what,
			func(secs uint16) (*dhcpv4.DHCPv4, error) {
				return dhcpv4.New(append(c.modifiers(xid, secs),
					dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
					dhcpv4.WithClientIP(cur.Addr.Addr().AsSlice()),
					dhcpv4.WithBroadcast(false))...)
			}, match)
		if err != nil {
			if errors.Is(err, errNoAnswer) {
				continue
			}
			return c.ctxResult(ctx)
		}
		if resp.MessageType() == dhcpv4.MessageTypeNak {
			c.logf("NAK from %v for %s (%q), starting over", resp.ServerIdentifier(), cur.Addr, resp.Message())
			return extendNak
		}
		b, err := parseLease(resp, c.logDrop)
		if err != nil {
			c.refuse("ACK", resp, err)
			pause.For(dctx, time.Until(sent.Add(wait)))
			continue
		}
		if err := c.bind(b, sent, true); err != nil {
			c.logf("applying renewed lease %s: %v", b.Addr, err)
			pause.For(dctx, time.Until(sent.Add(wait)))
			continue
		}
		return extendDone
	}
}

func (c *client) ctxResult(ctx context.Context) extendResult {
	if ctx.Err() != nil {
		return extendCtx
	}
	return extendNone
}

// bind applies b and reports it.
func (c *client) bind(b *binding, t0 time.Time, renewal bool) error {
	if err := c.apply(b, t0); err != nil {
		return err
	}
	c.cur, c.t0 = b, t0
	c.status = "bound"
	l := c.snapshot()
	c.o.Report(l)
	life := "forever"
	if b.Lease > 0 {
		life = "for " + b.Lease.String()
	}
	verb := "lease"
	if renewal {
		verb = "renewed lease"
	}
	var extra []string
	for _, r := range l.Routes {
		extra = append(extra, "route "+route.Route{Dst: r.Dst, Via: r.Via}.String())
	}
	if len(b.DNS) > 0 {
		extra = append(extra, fmt.Sprintf("dns %v", b.DNS))
	}
	if l.MTU > 0 {
		extra = append(extra, fmt.Sprintf("mtu %d", l.MTU))
	}
	tail := ""
	if len(extra) > 0 {
		tail = " (" + strings.Join(extra, ", ") + ")"
	}
	c.logf("%s %s from %s %s%s", verb, b.Addr, b.Server, life, tail)
	return nil
}

// setStatus records and reports a state change.
func (c *client) setStatus(s string) {
	if s == c.status {
		return
	}
	c.status = s
	c.o.Report(c.snapshot())
}

// withdraw removes everything we installed and reports it with status s.
func (c *client) withdraw(s string) {
	c.unapply()
	c.cur = nil
	c.status = ""
	c.setStatus(s)
}

// snapshot is the lease.Report for what is applied now.
func (c *client) snapshot() lease.Report {
	now := time.Now()
	l := lease.Report{
		Link:    c.o.Link,
		Source:  lease.SourceDHCP4,
		Status:  c.status,
		Updated: now,
	}
	l.V6OnlyWait = c.v6only
	b := c.cur
	if b == nil {
		return l
	}
	var left time.Duration
	if b.Lease > 0 {
		left = max(c.t0.Add(b.Lease).Sub(now), time.Second)
	}
	l.Addresses = []lease.Addr{{Prefix: b.Addr, Valid: left, Preferred: left}}
	for _, r := range c.inst.routes {
		l.Routes = append(l.Routes, lease.Route{Dst: r.Dst, Via: r.Via, Lifetime: left})
	}
	l.DNS, l.NTP, l.Search, l.Hostname = b.DNS, b.NTP, b.Search, b.Hostname
	l.MTU = c.inst.applied
	l.Server = b.Server
	l.Routers = b.Routers
	return l
}

// listenUDP opens the socket used while RENEWING and REBINDING, when we
// have an address: 0.0.0.0:68 bound to the link, so that unicast ACKs to
// our address and broadcast NAKs both arrive, and so that a client on
// another link can bind the same port (SO_BINDTODEVICE on both).
func listenUDP(ctx context.Context, link string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o, 1); serr != nil {
					return
				}
			}
			serr = unix.BindToDevice(int(fd), link)
		})
		return errors.Join(err, serr)
	}}
	return lc.ListenPacket(ctx, "udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), nclient4.ClientPort).String())
}

// waitRenew sleeps until t, or until Options.Kick asks for a renewal
// now. It returns false when ctx ended.
func (c *client) waitRenew(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tm.C:
			return true
		case <-c.o.Kick:
			return true
		case <-c.o.Reapply:
			if c.cur == nil {
				continue
			}
			if err := c.apply(c.cur, c.t0); err != nil {
				c.logf("applying lease %s again: %v", c.cur.Addr, err)
			}
			c.o.Report(c.snapshot())
		}
	}
}
