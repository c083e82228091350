package static

import (
	"context"
	"fmt"
	"time"

	"github.com/threefoldtech/netinit/boot/addr"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/vishvananda/netlink"
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
		o.Logf = console.Discard
	}
	if o.Routes == nil {
		o.Routes = route.New(route.Config{Logf: o.Logf})
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

// client is one Run.
type client struct {
	o     Options
	index int
}

// apply has Routes install the routes the link may have now and withdraw
// those it may no longer have, and reports.
func (c *client) apply() error {
	rs, err := c.o.Routes.Apply(c.o.Link, c.index, lease.SourceStatic, c.o.routes())
	c.o.Report(c.o.report(rs, time.Now()))
	return err
}
