package ra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// linkLocalWait bounds the wait for the kernel's link-local address.
const linkLocalWait = 3 * time.Second

// Run does router discovery and SLAAC on o.Link until ctx ends (or, with
// o.Oneshot, until the first RA is applied or the solicitations are
// exhausted). Whatever is configured is left in place when it returns.
//
// Each turn of the loop is four steps: solicit (RFC 4861 section 6.3.7),
// act on the engine's asks (Reapply, Kick), expire lifetimes (RFC 4862
// section 5.5.4), and receive one RA (validate, update the Table, apply).
func Run(ctx context.Context, o Options) error {
	r, err := open(ctx, o)
	if err != nil {
		return fmt.Errorf("ra on %s: %w", o.Link, err)
	}
	defer r.conn.Close()
	// End a blocked read as soon as ctx ends (the loop's read deadline is
	// otherwise up to 200 ms away): a oneshot run exits right after its
	// verdict.
	stop := context.AfterFunc(ctx, func() { _ = r.conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		if err := ctx.Err(); err != nil {
			if o.Oneshot && !r.t.seenRA {
				return fmt.Errorf("ra on %s: %w", o.Link, err)
			}
			return nil
		}
		now := time.Now()
		if err := r.solicit(now); err != nil {
			return fmt.Errorf("ra on %s: %w", o.Link, err)
		}
		r.asked(now)
		r.expire(now)
		got, err := r.receive(ctx, now)
		if err != nil {
			return fmt.Errorf("ra on %s: %w", o.Link, err)
		}
		if got && o.Oneshot {
			return nil
		}
	}
}

// client is one Run's state: the link, its ICMPv6 socket, the Table that
// decides and the kernel side that applies.
type client struct {
	o          Options
	logf       console.Logf
	report     lease.Reporter
	ifi        *net.Interface
	ll         netip.Addr // the link-local source of the solicitations
	optimistic bool       // ll is still an Optimistic Address (RFC 4429)
	conn       *ndp.Conn
	k          *applier
	t          *Table

	sent      int       // Router Solicitations sent
	nextRS    time.Time // when the next one is due
	exhausted bool      // all sent, none answered
	buf       []byte
	lim       limiter
}

// open waits for a usable link-local address and opens the ICMPv6 socket
// on it, filtered to Router Advertisements.
func open(ctx context.Context, o Options) (*client, error) {
	r := &client{o: o, logf: o.Logf, report: o.Report, buf: make([]byte, 1<<16)}
	if r.logf == nil {
		r.logf = console.Discard
	}
	if r.report == nil {
		r.report = func(lease.Report) {}
	}
	ifi, err := net.InterfaceByName(o.Link)
	if err != nil {
		return nil, err
	}
	r.ifi = ifi
	id, err := InterfaceID(ifi.HardwareAddr)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	r.ll, r.optimistic, err = waitLinkLocal(ctx, ifi.Index, 50*time.Millisecond)
	if err != nil {
		// The kernel makes the link-local address only once the link's
		// operational state is UP, which linkwatch may report up to a
		// second after carrier (seen with virtio-net): add the same
		// EUI-64 address ourselves, optimistic, and go on at once.
		if aerr := addLinkLocal(ifi.Index, id); aerr != nil {
			r.logf("%s: ra: adding the link-local address: %v", o.Link, aerr)
		}
		r.ll, r.optimistic, err = waitLinkLocal(ctx, ifi.Index, linkLocalWait)
	}
	if err != nil {
		return nil, err
	}
	if waited := time.Since(t0); waited > 100*time.Millisecond {
		r.logf("%s: ra: waited %dms for a usable link-local address (optimistic DAD %v)", o.Link, waited.Milliseconds(), r.optimistic)
	}
	conn, _, err := ndp.Listen(ifi, ndp.Addr(r.ll.String()))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", r.ll, err)
	}
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv6.ICMPTypeRouterAdvertisement)
	if err := conn.SetICMPFilter(&filter); err != nil {
		conn.Close()
		return nil, fmt.Errorf("icmp filter: %w", err)
	}
	// The hop limit of each received packet, for RFC 4861 section 6.1.2.
	if err := conn.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hop limit control message: %w", err)
	}
	r.conn = conn
	if o.Routes == nil {
		o.Routes = route.New(route.Config{Logf: r.logf})
	}
	r.k = &applier{link: o.Link, index: ifi.Index, mtuOverride: o.MTU, addrs: map[netip.Prefix]bool{}, logf: r.logf,
		al: &addr.Link{Index: ifi.Index, Name: o.Link, Logf: r.logf}, routes: o.Routes}
	r.t = NewTable(id, ifi.MTU)
	r.t.Protect(o.Protected...)
	r.nextRS = time.Now() // RFC 4861 section 6.3.7, see sendRS
	return r, nil
}

// solicit sends the next Router Solicitation when one is due and no RA has
// come yet (at most maxRtrSolicitations, rtrSolicitationInterval apart).
// When they are exhausted it reports status "none"; in Oneshot mode that
// ends Run with ErrNoRouter.
func (r *client) solicit(now time.Time) error {
	if r.t.seenRA || r.exhausted || now.Before(r.nextRS) {
		return nil
	}
	if r.sent == maxRtrSolicitations {
		r.exhausted = true
		r.logf("%s: ra: no router advertisement after %d solicitations", r.o.Link, r.sent)
		l := r.t.View(now).Report(r.o.Link, nil, now)
		l.Status = "none"
		r.report(l)
		if r.o.Oneshot {
			return ErrNoRouter
		}
		return nil
	}
	if r.optimistic {
		r.optimistic = stillOptimistic(r.ifi.Index, r.ll)
	}
	if err := sendRS(r.conn, r.ifi.HardwareAddr, r.optimistic); err != nil {
		r.logf("%s: ra: router solicitation: %v", r.o.Link, err)
	} else {
		r.logf("%s: ra: router solicitation %d/%d from %s", r.o.Link, r.sent+1, maxRtrSolicitations, r.ll)
	}
	r.sent++
	r.nextRS = now.Add(rtrSolicitationInterval)
	return nil
}

// asked acts on what the engine asked, without waiting: Reapply (the
// uplink changed: install or withdraw the defaults; nothing to do before
// the first RA) or Kick (the control socket's "renew": ask the routers
// now).
func (r *client) asked(now time.Time) {
	select {
	case <-r.o.Reapply:
		if r.t.seenRA {
			r.apply(now)
		}
	case <-r.o.Kick:
		if err := sendRS(r.conn, r.ifi.HardwareAddr, false); err != nil {
			r.logf("%s: ra: router solicitation: %v", r.o.Link, err)
		} else {
			r.logf("%s: ra: router solicitation from %s, as asked", r.o.Link, r.ll)
		}
	default:
	}
}

// expire drops what has outlived its lifetime and applies the rest.
func (r *client) expire(now time.Time) {
	if r.t.Expire(now) {
		r.logf("%s: ra: lifetimes expired", r.o.Link)
		r.apply(now)
	}
}

// receive waits for one RA, at most until the next timer (or a short poll
// of ctx, so that Run ends promptly without a goroutine of its own),
// validates it (RFC 4861 section 6.1.2), updates the Table and applies a
// change. It reports whether a valid RA came in; an error is a broken
// socket.
func (r *client) receive(ctx context.Context, now time.Time) (bool, error) {
	wait := now.Add(200 * time.Millisecond)
	if next := r.t.Next(now); !next.IsZero() && next.Before(wait) {
		wait = next
	}
	if !r.t.seenRA && !r.exhausted && r.nextRS.Before(wait) {
		wait = r.nextRS
	}
	if ctx.Err() != nil {
		return false, nil // Run's loop returns
	}
	if err := r.conn.SetReadDeadline(wait); err != nil {
		return false, err
	}
	n, cm, src, err := r.conn.ReadRaw(r.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, nil
		}
		return false, fmt.Errorf("read: %w", err)
	}
	hop := -1
	if cm != nil {
		hop = cm.HopLimit
	}
	now = time.Now()
	ra, err := Validate(r.buf[:n], src, hop)
	if err != nil {
		r.logLimited(now, "%s: ra: ignored: %v", r.o.Link, err)
		return false, nil
	}
	changed, summary := r.t.Update(now, src, ra)
	r.logLimited(now, "%s: %s", r.o.Link, summary)
	if changed {
		r.apply(now)
	}
	return true, nil
}

// logLimited logs a line about a received RA through the limiter: a flood
// of RAs must not flood the console.
func (r *client) logLimited(now time.Time, format string, args ...any) {
	ok, dropped := r.lim.allow(now)
	if !ok {
		return
	}
	if dropped > 0 {
		r.logf("%s: ra: %d log lines about RAs suppressed", r.o.Link, dropped)
	}
	r.logf(format, args...)
}

// apply installs the Table's current view in the kernel and reports it.
// Options.Routes judges the routes: the default routes and RFC 4191
// routes go in only on the uplink.
func (r *client) apply(now time.Time) {
	v := r.t.View(now)
	applied, err := r.k.sync(v)
	if err != nil {
		r.logf("%s: ra: %v", r.o.Link, err)
	}
	r.report(v.Report(r.o.Link, applied, now))
}

// sendRS sends one Router Solicitation to all-routers (ff02::2).
//
// The first goes out at once: RFC 4861 section 6.3.7 asks for a random
// delay of up to MAX_RTR_SOLICITATION_DELAY (1 s) only as a SHOULD, to
// spread the load of many hosts starting together; a booting 0-OS node
// wants its address as early as possible, and optimistic DAD (RFC 4429)
// makes the link-local source usable right away.
//
// While the source is still an Optimistic Address, the Source Link-Layer
// Address option is left out: RFC 4429 section 3.2 forbids it, since a
// router would otherwise overwrite a possibly valid neighbour cache entry.
func sendRS(conn *ndp.Conn, mac net.HardwareAddr, optimistic bool) error {
	rs := &ndp.RouterSolicitation{}
	if !optimistic {
		rs.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}
	}
	return conn.WriteTo(rs, nil, netip.MustParseAddr("ff02::2"))
}

// waitLinkLocal waits (bounded) for a usable link-local address: one that
// is not tentative, or that is optimistic.
func waitLinkLocal(ctx context.Context, index int, bound time.Duration) (netip.Addr, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		addrs, err := linkAddrs6(index)
		// A dump the kernel kept interrupting (NLM_F_DUMP_INTR: the
		// link's addresses changed meanwhile, as they do while a bridge
		// comes up) even through kernel.Dump's reads is looked at again
		// at the next tick, not the end of the client.
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return netip.Addr{}, false, fmt.Errorf("list addresses: %w", err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if err != nil || !ok || !ip.IsLinkLocalUnicast() || a.Flags&unix.IFA_F_DADFAILED != 0 {
				continue
			}
			if a.Flags&unix.IFA_F_OPTIMISTIC != 0 {
				return ip, true, nil
			}
			if a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return ip, false, nil
			}
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, false, fmt.Errorf("no usable link-local address within %s (link down, or IPv6 disabled?)", bound)
		case <-tick.C:
		}
	}
}

// addLinkLocal adds fe80::<interface id>/64 to the link, optimistic
// (RFC 4429), or without DAD where the kernel refuses that flag from user
// space. It is the address the kernel itself would make (addr_gen_mode 0),
// so when the kernel gets to it, it finds it there.
func addLinkLocal(index int, id [8]byte) error {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	copy(b[8:], id[:])
	l := &addr.Link{Index: index}
	return l.Add(addr.Addr{Prefix: netip.PrefixFrom(netip.AddrFrom16(b), 64), Valid: addr.Forever, Preferred: addr.Forever})
}

func stillOptimistic(index int, ll netip.Addr) bool {
	addrs, err := linkAddrs6(index)
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip == ll {
			return a.Flags&unix.IFA_F_OPTIMISTIC != 0
		}
	}
	return true
}

// applier applies Views to one link and remembers what it applied, so that
// what a View no longer holds is removed.
type applier struct {
	link        string
	index       int
	mtuOverride int
	addrs       map[netip.Prefix]bool
	mtu         int
	al          *addr.Link       // installs and removes the SLAAC addresses
	routes      *route.Installer // installs and withdraws the routes
	logf        console.Logf
}

// sync makes the kernel match v and returns the routes that are in place.
func (k *applier) sync(v View) ([]route.Route, error) {
	var errs []error
	want := map[netip.Prefix]bool{}
	for _, a := range v.Addrs {
		want[a.Prefix] = true
		// Optimistic (RFC 4429) and without a prefix route: on-link-ness
		// comes from the L flag alone (RFC 4861 section 6.3.4 / RFC
		// 5942), not from the A flag.
		err := k.al.Replace(addr.Addr{Prefix: a.Prefix, Valid: a.Valid, Preferred: a.Preferred, NoPrefixRoute: true})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !k.addrs[a.Prefix] {
			k.logf("%s: ra: address %s (valid %s, preferred %s)", k.link, a.Prefix, lifetime(a.Valid), lifetime(a.Preferred))
		}
		k.addrs[a.Prefix] = true
	}
	for p := range k.addrs {
		if want[p] {
			continue
		}
		if err := k.al.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		k.logf("%s: ra: address %s removed", k.link, p)
		delete(k.addrs, p)
	}

	applied, err := k.routes.Apply(k.link, k.index, lease.SourceSLAAC, v.want())
	if err != nil {
		errs = append(errs, err)
	}

	// The MTU option sets the link's IPv6 MTU (RFC 4861 section 6.3.4),
	// not the link MTU: IPv4 on the same link is not the router's to say.
	mtu := v.MTU
	if k.mtuOverride > 0 {
		mtu = k.mtuOverride
	}
	if mtu > 0 && mtu != k.mtu {
		if err := kernel.SetIPv6Conf(k.link, "mtu", strconv.Itoa(mtu)); err != nil {
			errs = append(errs, fmt.Errorf("ipv6 mtu %d: %w", mtu, err))
		} else {
			k.mtu = mtu
		}
	}
	slices.SortStableFunc(applied, func(a, b route.Route) int { return a.Metric - b.Metric })
	return applied, errors.Join(errs...)
}

// linkAddrs6 lists the link's IPv6 addresses, a dump the kernel
// interrupted read again (kernel.Dump).
func linkAddrs6(index int) ([]netlink.Addr, error) {
	return kernel.Dump(func() ([]netlink.Addr, error) {
		return netlink.AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.FAMILY_V6)
	})
}
