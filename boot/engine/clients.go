package engine

import (
	"context"
	"errors"
	"net/netip"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/dhcp4"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/boot/spec"
)

// Clients runs the protocol clients of a link: the engine decides which
// run where and with what; Config.Clients knows how (cmd/netinit passes
// boot/clients' Linux ones, the engine's tests fakes that report leases).
// Each runs until ctx ends, or until it fails, reporting through
// c.Report; its routes go through c.Routes.
type Clients interface {
	Static(ctx context.Context, c Client) error
	DHCP4(ctx context.Context, c Client) error
	RA(ctx context.Context, c Client) error
	DHCP6(ctx context.Context, c Client) error
}

// Client is what one protocol client of a link is started with. Each
// takes what is its own and leaves the rest.
type Client struct {
	Link string
	// IP is the link's ip= (a static one: address, gateway, DNS, hostname).
	IP spec.IPConfig
	// MTU is the link's MTU to keep (ip=, netinit.mtu=): it wins over
	// DHCP's and the RA's; 0 for none.
	MTU int
	// IPv6 (DHCPv4): the link runs IPv6 too; IPv6OnlyPreferred: it may be
	// told to go without IPv4 (RFC 8925).
	IPv6, IPv6OnlyPreferred bool
	// Managed and Other (DHCPv6): the RA's M and O flags.
	Managed, Other bool
	// Protected (RA, DHCPv6): the WireGuard subnets, in which no address
	// from the wire is taken (Yggdrasil's are always protected).
	Protected []netip.Prefix
	// Routes installs the client's routes (the engine's one installer).
	Routes *route.Installer
	// Kick: act now (the control socket's "renew"); Reapply: apply again
	// (the uplink changed).
	Kick, Reapply <-chan struct{}
	Report        lease.Reporter
	Logf          console.Logf
	// The DHCPv4 lease across the move onto the management bridge:
	// ReleaseOnStop is asked when the client stops (a link handed over
	// gives its lease back), Handover is given the lease it held then,
	// From is the lease the link starts with (carried over).
	ReleaseOnStop func() bool
	Handover      func(*dhcp4.Held)
	From          *dhcp4.Held
}

// noClients is Config.Clients when none is given: nothing runs.
type noClients struct{}

var errNoClients = errors.New("no protocol clients (engine.Config.Clients)")

func (noClients) Static(context.Context, Client) error { return errNoClients }
func (noClients) DHCP4(context.Context, Client) error  { return errNoClients }
func (noClients) RA(context.Context, Client) error     { return errNoClients }
func (noClients) DHCP6(context.Context, Client) error  { return errNoClients }
