package kernel

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/addr"
)

// AddRoute adds r on the link index. An equal route (the kernel's key:
// table, destination, TOS, metric; for IPv6 the next hop too) that is
// somebody else's (another link, another protocol) is left alone and an
// error says so; one of r's protocol on this very link is replaced: it is
// netinit's own, from before a handoff or a restart.
func (Netlink) AddRoute(index int, r Route) error {
	err := routeRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, index, r)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	family := netlink.FAMILY_V4
	if r.Dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	existing, lerr := Dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(family, &netlink.Route{Dst: addr.Net(r.Dst)}, netlink.RT_FILTER_DST)
	})
	if lerr != nil {
		return err
	}
	for _, e := range existing {
		if e.LinkIndex == index && int(e.Protocol) == r.Proto && e.Priority == r.Metric {
			return routeRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK, index, r)
		}
	}
	return fmt.Errorf("an equal route that is not ours exists: %w", err)
}

// ReplaceRoute installs r on the link index, replacing an equal route in
// place (NLM_F_REPLACE: a renewal does not bounce it, and an IPv4 route
// moves from one link to another without a moment without it).
func (Netlink) ReplaceRoute(index int, r Route) error {
	return routeRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK, index, r)
}

// DelRoute removes r from the link index; one that is gone already is no
// error.
func (Netlink) DelRoute(index int, r Route) error {
	err := routeRequest(unix.RTM_DELROUTE, unix.NLM_F_ACK, index, r)
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// routeRequest sends one RTM_NEWROUTE or RTM_DELROUTE for r on the link
// index, in the main table. Raw, since netlink.Route cannot carry
// RTA_EXPIRES.
func routeRequest(op int, flags int, index int, r Route) error {
	req := nl.NewNetlinkRequest(op, flags)
	var msg *nl.RtMsg
	if op == unix.RTM_DELROUTE {
		msg = nl.NewRtDelMsg()
	} else {
		msg = nl.NewRtMsg()
		msg.Protocol = uint8(r.Proto)
		msg.Scope = unix.RT_SCOPE_UNIVERSE
		if !r.Via.IsValid() {
			msg.Scope = unix.RT_SCOPE_LINK
		}
	}
	msg.Family = unix.AF_INET
	if r.Dst.Addr().Is6() {
		msg.Family = unix.AF_INET6
	}
	msg.Dst_len = uint8(r.Dst.Bits())
	req.AddData(msg)
	if r.Dst.Bits() > 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_DST, r.Dst.Addr().AsSlice()))
	}
	if r.Via.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, r.Via.WithZone("").AsSlice()))
	}
	if r.Src.IsValid() && op != unix.RTM_DELROUTE {
		req.AddData(nl.NewRtAttr(unix.RTA_PREFSRC, r.Src.AsSlice()))
	}
	req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(index))))
	req.AddData(nl.NewRtAttr(unix.RTA_PRIORITY, nl.Uint32Attr(uint32(r.Metric))))
	if r.Expires > 0 && r.Dst.Addr().Is6() && op != unix.RTM_DELROUTE {
		req.AddData(nl.NewRtAttr(unix.RTA_EXPIRES, nl.Uint32Attr(uint32(addr.Seconds(r.Expires, 1)))))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}
