package static

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Run configures o.Address (permanent, without DAD: a configured address
// is usable at once) and the gateway, reports them, then applies the
// gateway again at every Reapply until ctx ends. What it configured is
// left in place when it returns. An error is returned only when the first
// configuration fails.
func Run(ctx context.Context, o Options) error {
	if o.Report == nil {
		o.Report = func(lease.Report) {}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	nl, err := netlink.LinkByName(o.Link)
	if err != nil {
		return fmt.Errorf("static on %s: %w", o.Link, err)
	}
	al := addr.Link{Index: nl.Attrs().Index, Name: o.Link}
	if err := al.Replace(addr.Addr{Prefix: o.Address, Valid: addr.Forever, Preferred: addr.Forever, NoDAD: true}); err != nil {
		return fmt.Errorf("static on %s: %w", o.Link, err)
	}
	c := &client{o: o, index: nl.Attrs().Index}
	if err := c.apply(); err != nil {
		return fmt.Errorf("static on %s: %w", o.Link, err)
	}
	o.Logf("%s: static %s gateway %s", o.Link, o.Address, o.Gateway)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.Reapply:
			if err := c.apply(); err != nil {
				o.Logf("%s: static: %v", o.Link, err)
			}
		}
	}
}

// client is one Run: the routes it has in the kernel.
type client struct {
	o      Options
	index  int
	routes []lease.Route
}

// apply installs the routes the link may have now, withdraws those it may
// no longer have (last first: the host route outlives the route through
// it), and reports.
func (c *client) apply() error {
	want := c.o.routes(c.o.Gateway.IsValid() && c.o.DefaultRoute != nil && c.o.DefaultRoute())
	for _, r := range want {
		if err := netlink.RouteReplace(c.nlRoute(r)); err != nil {
			return fmt.Errorf("route %s via %s: %w", r.Dst, r.Via, err)
		}
	}
	for i := len(c.routes) - 1; i >= 0; i-- {
		if r := c.routes[i]; !slices.Contains(want, r) {
			if err := netlink.RouteDel(c.nlRoute(r)); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("removing route %s via %s: %w", r.Dst, r.Via, err)
			}
		}
	}
	c.routes = want
	c.o.Report(c.o.report(want, time.Now()))
	return nil
}

func (c *client) nlRoute(r lease.Route) *netlink.Route {
	nr := &netlink.Route{LinkIndex: c.index, Dst: addr.Net(r.Dst)}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr
}
