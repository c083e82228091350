// Package clients starts the protocol clients on a link as the engine asks
// (engine.Clients): a static ip= (boot/static), DHCPv4 (boot/dhcp4),
// router discovery and SLAAC (boot/ra) and DHCPv6 (boot/dhcp6). The
// engine decides which run and with what; this package only maps its
// engine.Client onto each client's Options.
package clients

import (
	"context"

	"github.com/threefoldtech/netinit/boot/dhcp4"
	"github.com/threefoldtech/netinit/boot/dhcp6"
	"github.com/threefoldtech/netinit/boot/engine"
	"github.com/threefoldtech/netinit/boot/ra"
	"github.com/threefoldtech/netinit/boot/static"
)

// Linux are the clients on Linux.
type Linux struct{}

var _ engine.Clients = Linux{}

// Static configures a static ip= (c.IP).
func (Linux) Static(ctx context.Context, c engine.Client) error {
	return static.Run(ctx, static.Options{
		Link: c.Link, Address: c.IP.Address, Gateway: c.IP.Gateway,
		DNS: c.IP.DNS, Hostname: c.IP.Hostname, MTU: c.IP.MTU,
		Routes: c.Routes, Reapply: c.Reapply, Report: c.Report, Logf: c.Logf,
	})
}

// DHCP4 runs the DHCPv4 client.
func (Linux) DHCP4(ctx context.Context, c engine.Client) error {
	return dhcp4.Run(ctx, dhcp4.Options{
		Link: c.Link, Routes: c.Routes, MTU: c.MTU, IPv6: c.IPv6,
		Kick: c.Kick, Reapply: c.Reapply, IPv6OnlyPreferred: c.IPv6OnlyPreferred,
		ReleaseOnStop: c.ReleaseOnStop, Handover: c.Handover, From: c.From,
		Report: c.Report, Logf: c.Logf,
	})
}

// RA runs router discovery and SLAAC.
func (Linux) RA(ctx context.Context, c engine.Client) error {
	return ra.Run(ctx, ra.Options{
		Link: c.Link, Routes: c.Routes, Protected: c.Protected, MTU: c.MTU,
		Kick: c.Kick, Reapply: c.Reapply, Report: c.Report, Logf: c.Logf,
	})
}

// DHCP6 runs the DHCPv6 client, stateful (c.Managed) or stateless.
func (Linux) DHCP6(ctx context.Context, c engine.Client) error {
	return dhcp6.Run(ctx, dhcp6.Options{
		Link: c.Link, Managed: c.Managed, Other: c.Other, Protected: c.Protected, Kick: c.Kick,
		Report: c.Report, Logf: c.Logf,
	})
}
