// Package dhcp4 is netinit's DHCPv4 client (RFC 2131): it acquires a lease
// on one link, applies it to the kernel (address with the lease's lifetime,
// routes, MTU), reports it to the engine as a lease.Report, and keeps it:
// renewing at T1, rebinding at T2, withdrawing at expiry or on a NAK and
// starting over. Each link runs its own Run; a link without a server never
// holds up another.
//
// Run leaves the configuration in place when its context ends (no
// DHCPRELEASE, unless Options.ReleaseOnStop says so): the network must
// survive the handoff to the next stage, and the kernel expires the
// address by itself if nobody renews it.
package dhcp4

import (
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
)

// Options configure Run. Only Link is required.
type Options struct {
	Link string // interface name

	// Routes installs the lease's routes (at every application: a
	// renewal, Reapply) by its rules: only the uplink installs the
	// default route and routes that compete with it — a second NIC that
	// also gets a lease must not win the default route at random. nil: an
	// installer of its own, for which no link is the uplink.
	Routes *route.Installer

	// MTU overrides DHCP option 26 when non-zero (cmdline/config >
	// option 26 > the kernel's default).
	MTU int

	// IPv6 says the link also runs IPv6 (RA or DHCPv6): an option 26
	// below IPv6's minimum link MTU of 1280 is then ignored.
	IPv6 bool

	// Report is called after every change of what is applied or of the
	// client's state (selecting, bound, renewing, rebinding, expired,
	// nak). It must not block for long.
	Report lease.Reporter

	// Logf gets one readable event per line, already prefixed with the
	// link name.
	Logf console.Logf

	// Kick, when it receives, makes the client act now instead of at its
	// next timer (the control socket's "renew"): a bound client renews its
	// lease now instead of waiting for T1, a selecting one sends its next
	// DISCOVER now (the engine kicks it when a spanning-tree port starts
	// forwarding). Same name and meaning in ra and dhcp6.
	Kick <-chan struct{}

	// Reapply, when it receives, applies the bound lease again (Routes
	// judges its routes again): the engine's uplink changed.
	Reapply <-chan struct{}

	// IPv6OnlyPreferred requests DHCP option 108 (RFC 8925): set it when
	// the link runs IPv6 too. A server that answers with it gets no
	// REQUEST: the client takes no address, reports status "ipv6-only"
	// with Lease.V6OnlyWait, and asks again after that wait.
	IPv6OnlyPreferred bool

	// ReleaseOnStop is asked when ctx ends: if it returns true, the bound
	// lease is given back (DHCPRELEASE) and what was applied removed — a
	// link the engine hands over to the next stage (it is not the uplink)
	// must not keep netinit's probe lease. nil means false.
	ReleaseOnStop func() bool

	// Handover, if set, is given the bound lease when ctx ends and the
	// lease is kept (not released): the engine hands it to the client
	// that takes the link's address over (From).
	Handover func(*Held)

	// From is a lease another client held (Handover) whose address and
	// routes the engine carried onto this link: the client takes it as
	// bound, applies and reports it at once, and renews it right away
	// (RENEWING, RFC 2131 section 4.4.5: unicast to its server, with
	// ciaddr) — the same chaddr and client identifier get it confirmed;
	// a NAK or another address removes it.
	From *Held

	// Oneshot acquires and applies a lease once, then returns (no renew
	// loop; the kernel expires the address at the end of the lease).
	Oneshot bool

	// Retransmit is the first wait for an answer in SELECTING and
	// REQUESTING (default 2 s); it doubles per retransmission up to
	// RetransmitMax (default 8 s). See retransmit for why the cap is low.
	Retransmit, RetransmitMax time.Duration

	// RenewMin is the minimum wait between REQUESTs while renewing or
	// rebinding (RFC 2131 section 4.4.5 says 60 s, the default).
	RenewMin time.Duration

	// Requests is how many times a REQUEST is sent in the REQUESTING
	// state before starting over with a DISCOVER (default 4).
	Requests int
}

func (o *Options) defaults() {
	if o.Retransmit <= 0 {
		o.Retransmit = 2 * time.Second
	}
	if o.RetransmitMax < o.Retransmit {
		o.RetransmitMax = 8 * time.Second
		if o.RetransmitMax < o.Retransmit {
			o.RetransmitMax = o.Retransmit
		}
	}
	if o.RenewMin <= 0 {
		o.RenewMin = 60 * time.Second
	}
	if o.Requests <= 0 {
		o.Requests = 4
	}
	if o.Report == nil {
		o.Report = func(lease.Report) {}
	}
	if o.Logf == nil {
		o.Logf = console.Discard
	}
	if o.Routes == nil {
		o.Routes = route.New(route.Config{Logf: o.Logf})
	}
}

// Held is a bound lease as a client held it when it stopped (Handover),
// for the client that takes it over (From).
type Held struct {
	b    *binding
	t0   time.Time
	link string
}
