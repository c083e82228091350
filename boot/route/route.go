// Package route installs and withdraws the routes that the protocol
// clients (dhcp4, ra, static ip=), the move onto the management bridge
// and the WireGuard overlay want, as boot/addr does for addresses: each
// describes its routes, this package alone applies the rules of what may
// go into the kernel (issue 29 item 2; docs/design.md "Routes"):
//
//   - Only the uplink installs default routes and routes that compete with
//     them: on any other link no route into public address space shorter
//     than /48 (IPv6) or /16 (IPv4), on-link prefix or not. Private
//     destinations (RFC 1918, CGNAT 100.64.0.0/10, ULA fc00::/7,
//     link-local) may go through any link at any length: a farm routes
//     10.0.0.0/8 through its management LAN so. A route held back because
//     its link is not the uplink goes in when the link becomes it, and out
//     again when it stops being it (the engine has the clients apply
//     again).
//   - Nothing from the wire goes into the overlays: Yggdrasil's 200::/7
//     and 300::/8 and the WireGuard subnets (Config.Protected), IPv4 and
//     IPv6 alike.
//   - A DHCPv4 lease installs at most 16 routes (option 121 has no bound,
//     RFC 3442); the host routes to its own routers are not counted.
//   - An on-link host route to a router goes in only with a route through
//     that router.
//
// The overlays' own routes (WireGuard's, on its own link) are configured,
// not learnt: the rules do not apply to them. Every refusal is logged once,
// quoted, with the link and the source, and those a farmer should know of
// go to Config.Problem.
package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/lease"
)

// Route is one route a client wants on its link.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr // the zero Addr: on-link
	// Src is the preferred source address (a DHCPv4 lease's): the kernel
	// removes the route with the address.
	Src    netip.Addr
	Metric int
	// Lifetime has the kernel remove an IPv6 route after this long (an
	// RA's); 0 or addr.Forever and more: never.
	Lifetime time.Duration
	// Uplink: installed on the uplink alone, whatever its destination
	// (an RA's Route Information, RFC 4191: it speaks for the node).
	Uplink bool
}

func (r Route) String() string {
	if r.Via.IsValid() {
		return r.Dst.String() + " via " + r.Via.String()
	}
	return r.Dst.String() + " on-link"
}

// key identifies a route of one set in the kernel.
type key struct {
	dst    netip.Prefix
	via    netip.Addr
	metric int
}

func (r Route) key() key { return key{r.Dst, r.Via, r.Metric} }

// Kernel is where routes go: kernel.Netlink, or a fake (kerneltest).
type Kernel interface {
	AddRoute(index int, r kernel.Route) error
	ReplaceRoute(index int, r kernel.Route) error
	DelRoute(index int, r kernel.Route) error
}

// Config configures an Installer. The zero Config installs on the kernel
// and treats no link as the uplink.
type Config struct {
	// Uplink reports whether link is the uplink now. candidate says that
	// the routes asked for include a default route (or one less specific
	// than /8): the engine makes such a link a candidate for the uplink.
	// nil: no link is the uplink (as a client that is never told so
	// installs no default route).
	Uplink func(link string, candidate bool) bool
	// Protected are the WireGuard tunnel subnets (IPv4 and IPv6): no route
	// from the wire into them, nor into Yggdrasil's (lease.InOverlay).
	Protected []netip.Prefix
	// Logf gets one line per event.
	Logf console.Logf
	// Problem is told, once each, of the refusals a farmer should know
	// of (nil: logged only).
	Problem func(msg string)
	// Kernel is where the routes go (nil: kernel.Netlink).
	Kernel Kernel
}

// Installer puts the routes of every client into the kernel and takes
// them out, applying the rules once for all. It is safe for concurrent
// use; it never calls Config.Uplink with its own lock held.
type Installer struct {
	cfg Config

	mu     sync.Mutex
	sets   map[setKey]*set
	said   map[string]bool // refusals logged: link, source, route, why
	raised map[string]bool // problems raised: link, source, rule
	// lines and problems wait for unlock: nothing is logged or told
	// under mu.
	lines, problems []string
}

// setKey is one client's routes: one source on one link.
type setKey struct {
	link   string
	source lease.Source
}

type set struct {
	index   int
	applied []Route // in the kernel now, in installation order
}

// New returns an installer.
func New(cfg Config) *Installer {
	if cfg.Logf == nil {
		cfg.Logf = console.Discard
	}
	if cfg.Kernel == nil {
		cfg.Kernel = kernel.Netlink{}
	}
	return &Installer{cfg: cfg, sets: map[setKey]*set{}, said: map[string]bool{}, raised: map[string]bool{}}
}

// Apply makes source src's routes on link (index) what want allows now:
// the allowed ones are installed (those installed before replaced in
// place, a renewal bounces nothing), those it had and no longer may have
// or want are withdrawn, last first (a host route outlives the route
// through it). It returns the routes in place, in want's order. An error
// names the routes the kernel refused; the others are in place.
func (in *Installer) Apply(link string, index int, src lease.Source, want []Route) ([]Route, error) {
	uplink := false
	if in.cfg.Uplink != nil && slices.ContainsFunc(want, func(r Route) bool { return competes(r) }) {
		uplink = in.cfg.Uplink(link, slices.ContainsFunc(want, func(r Route) bool { return wide(r.Dst) }))
	}
	in.mu.Lock()
	defer in.unlock()
	k := setKey{link, src}
	s := in.sets[k]
	if s == nil {
		s = &set{index: index}
		in.sets[k] = s
	}
	s.index = index
	allowed := in.judge(link, src, want, uplink)
	var errs []string
	var done []Route
	for _, r := range allowed {
		if err := in.install(s, src, r); err != nil {
			errs = append(errs, fmt.Sprintf("route %s: %v", r, err))
			continue
		}
		done = append(done, r)
	}
	for i := len(s.applied) - 1; i >= 0; i-- {
		r := s.applied[i]
		if slices.ContainsFunc(done, func(d Route) bool { return d.key() == r.key() }) {
			continue
		}
		if err := in.cfg.Kernel.DelRoute(s.index, in.kernelRoute(src, r)); err != nil {
			errs = append(errs, fmt.Sprintf("removing route %s: %v", r, err))
		}
	}
	s.applied = done
	if len(done) == 0 {
		delete(in.sets, k)
	}
	if len(errs) > 0 {
		return slices.Clone(done), fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return slices.Clone(done), nil
}

// unlock lets go of in.mu, then logs and tells what was said under it.
func (in *Installer) unlock() {
	lines, problems := in.lines, in.problems
	in.lines, in.problems = nil, nil
	in.mu.Unlock()
	for _, l := range lines {
		in.cfg.Logf("%s", l)
	}
	for _, p := range problems {
		in.cfg.Problem(p)
	}
}

// Withdraw removes every route src installed on link, last first.
func (in *Installer) Withdraw(link string, src lease.Source) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	k := setKey{link, src}
	s := in.sets[k]
	if s == nil {
		return nil
	}
	delete(in.sets, k)
	var errs []string
	for i := len(s.applied) - 1; i >= 0; i-- {
		if err := in.cfg.Kernel.DelRoute(s.index, in.kernelRoute(src, s.applied[i])); err != nil {
			errs = append(errs, fmt.Sprintf("removing route %s: %v", s.applied[i], err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Move carries the IPv4 routes installed on the link from onto the link
// to (index), replaced in place: the kernel's key for an IPv4 route is
// table, destination, TOS and metric, so the default route moves from the
// management bridge's port to the bridge without a moment without one.
// On-link routes go first: a router outside the subnet is reached through
// its host route. from's IPv6 routes are forgotten: IPv6 goes off on the
// port, and the kernel drops them with it.
func (in *Installer) Move(from, to string, index int) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var errs []string
	for k, s := range in.sets {
		if k.link != from {
			continue
		}
		delete(in.sets, k)
		var moved []Route
		for _, r := range s.applied {
			if r.Dst.Addr().Is4() {
				moved = append(moved, r)
			}
		}
		slices.SortStableFunc(moved, func(a, b Route) int { return a.Via.BitLen() - b.Via.BitLen() })
		var done []Route
		for _, r := range moved {
			if err := in.cfg.Kernel.ReplaceRoute(index, in.kernelRoute(k.source, r)); err != nil {
				errs = append(errs, fmt.Sprintf("route %s: %v", r, err))
				continue
			}
			done = append(done, r)
		}
		if len(done) > 0 {
			in.sets[setKey{to, k.source}] = &set{index: index, applied: done}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("moving %s's routes onto %s: %s", from, to, strings.Join(errs, "; "))
	}
	return nil
}

// Forget drops what is known of link's routes without touching the
// kernel: the link is gone, or left to the next stage.
func (in *Installer) Forget(link string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k := range in.sets {
		if k.link == link {
			delete(in.sets, k)
		}
	}
}

// install puts r into the kernel: replaced in place when s has it
// already, else added. A new IPv4 route is added so that an equal route
// of another link is not taken over (AddRoute); IPv6 routes are replaced,
// as the kernel's own RA processing does.
func (in *Installer) install(s *set, src lease.Source, r Route) error {
	kr := in.kernelRoute(src, r)
	if r.Dst.Addr().Is6() || slices.ContainsFunc(s.applied, func(a Route) bool { return a.key() == r.key() }) {
		return in.cfg.Kernel.ReplaceRoute(s.index, kr)
	}
	return in.cfg.Kernel.AddRoute(s.index, kr)
}

// kernelRoute is r as the kernel has it, with the protocol of its source.
func (in *Installer) kernelRoute(src lease.Source, r Route) kernel.Route {
	kr := kernel.Route{Dst: r.Dst, Via: r.Via, Src: r.Src, Metric: r.Metric, Proto: proto(src)}
	if r.Lifetime > 0 && r.Lifetime < addr.Forever {
		kr.Expires = r.Lifetime
	}
	return kr
}

// proto is the kernel's protocol for the routes of a source.
func proto(src lease.Source) int {
	switch src {
	case lease.SourceDHCP4, lease.SourceDHCP6:
		return kernel.ProtoDHCP
	case lease.SourceSLAAC:
		return kernel.ProtoRA
	case lease.SourceStatic:
		return kernel.ProtoBoot
	default:
		return kernel.ProtoStatic
	}
}
