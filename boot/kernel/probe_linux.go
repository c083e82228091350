package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// probeBase is where the per-candidate routing tables, firewall marks and
// policy rule priority of the election live: table and mark
// probeBase+ifindex, rule "fwmark M lookup M" at priority probeRulePrio
// (before the main table's 32766). They exist only while a probe runs.
const (
	probeBase     = 0x4e490000 // "NI"
	probeRulePrio = 1000
)

// Probe checks whether the link of c reaches one of the targets
// (host:port, TCP) through its own gateways, without touching the main
// routing table: the candidate's default routes go into a table of its
// own, selected by a policy rule on a firewall mark that only the probe's
// sockets carry, and those sockets are bound to the link (SO_BINDTODEVICE).
// Host names are resolved through the candidate's own DNS servers, by the
// same path. It returns whether a TCP connection was made, with the
// evidence in words. ctx bounds the whole probe.
func (Netlink) Probe(ctx context.Context, c Candidate, targets []string) (bool, []string) {
	if len(targets) == 0 {
		return false, []string{"no probe targets"}
	}
	nl, err := netlink.LinkByName(c.Link)
	if err != nil {
		return false, []string{fmt.Sprintf("link: %v", err)}
	}
	idx := nl.Attrs().Index
	mark := uint32(probeBase + idx)
	var families []int
	for _, gw := range []netip.Addr{c.GW4, c.GW6} {
		if !gw.IsValid() {
			continue
		}
		fam, def := netlink.FAMILY_V4, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if gw.Is6() {
			fam, def = netlink.FAMILY_V6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		r := &netlink.Route{LinkIndex: idx, Dst: def, Gw: gw.WithZone("").AsSlice(), Table: int(mark)}
		if err := netlink.RouteReplace(r); err != nil {
			return false, []string{fmt.Sprintf("probe route via %s: %v", gw, err)}
		}
		defer netlink.RouteDel(r)
		rule := netlink.NewRule()
		rule.Family, rule.Mark, rule.Table, rule.Priority = fam, mark, int(mark), probeRulePrio
		if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
			return false, []string{fmt.Sprintf("probe rule: %v", err)}
		}
		defer netlink.RuleDel(rule)
		families = append(families, fam)
	}
	if len(families) == 0 {
		return false, []string{"no gateway"}
	}
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)); serr == nil {
				serr = unix.BindToDevice(int(fd), c.Link)
			}
		})
		return errors.Join(err, serr)
	}}
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var errs []error
		for _, s := range c.DNS {
			conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(s, 53).String())
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("no DNS server through %s: %w", c.Link, errors.Join(errs...))
	}}
	var evidence []string
	for _, t := range targets {
		host, port, err := net.SplitHostPort(t)
		if err != nil {
			evidence = append(evidence, fmt.Sprintf("%s: %v", t, err))
			continue
		}
		addrs, err := res.LookupNetIP(ctx, "ip", host)
		if err != nil {
			evidence = append(evidence, fmt.Sprintf("%s: resolving through %s: %v", t, c.Link, err))
			continue
		}
		for _, a := range addrs {
			a = a.Unmap()
			if (a.Is4() && !c.GW4.IsValid()) || (a.Is6() && !c.GW6.IsValid()) {
				continue
			}
			gw := c.GW4
			if a.Is6() {
				gw = c.GW6
			}
			start := time.Now()
			conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), port))
			if err != nil {
				evidence = append(evidence, fmt.Sprintf("tcp %s (%s) via %s: %v", t, a, gw, unwrapOp(err)))
				continue
			}
			conn.Close()
			evidence = append(evidence, fmt.Sprintf("tcp %s (%s) via %s: connected in %s", t, a, gw,
				strconv.FormatInt(time.Since(start).Milliseconds(), 10)+"ms"))
			return true, evidence
		}
	}
	return false, evidence
}

// unwrapOp drops the net.OpError wrapping (addresses said already).
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
