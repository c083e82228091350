package main

// stockInternet stands in for 0-OS's own `internet` (github.com/
// threefoldtech/zos c556dc0, cmds/internet/main.go), which is zos Go code
// that cannot be built here. On the nodes the test boots it behaves as
// the real one: it looks for the NIC to build the zos bridge from with
// zosbase's filters (github.com/threefoldtech/zosbase v1.0.10 = 063d895,
// pkg/network/bootstrap/bootstrap.go), finds none because netinit already
// enslaved the uplink to zos, retries with the same exponential backoff,
// and exits 1 when the backoff gives up. It goes no further than the
// filters: a NIC that passes them would next be probed with udhcpc in a
// namespace (bootstrap.go:160-284), enslaved to zos and given dhcp-zos
// (main.go:163-233); the stand-in says so and exits 2 rather than pretend.
//
// standin.internet.max_elapsed= (kernel command line) shortens the
// backoff's 15 minutes for the test.

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// The backoff of cmds/internet/main.go:244, backoff.NewExponentialBackOff()
// of github.com/cenkalti/backoff v2.2.1 (zos go.mod): its defaults.
const (
	boInitial    = 500 * time.Millisecond
	boRandomize  = 0.5
	boMultiplier = 1.5
	boMax        = 60 * time.Second
	boMaxElapsed = 15 * time.Minute
)

var errNoGateway = errors.New("no route with default gateway found")

func stockInternet([]string) int {
	maxElapsed := boMaxElapsed
	if v := cmdlineValue("standin.internet.max_elapsed"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			maxElapsed = d
		}
	}
	// main.go:38: ifaceutil.SetLoUp.
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	// main.go:142-244: configureZOS retries f with RetryNotify.
	start, interval := time.Now(), boInitial
	for try := 1; ; try++ {
		say("internet", "Start network bootstrap")
		err := configureZOS()
		if err == nil {
			return 2 // not reached on the nodes the test boots; see above
		}
		say("internet", "error while trying to bootstrap network: %v", err)
		// NextBackOff: a randomized interval; Stop once MaxElapsedTime
		// passed (cenkalti/backoff v2 exponential.go).
		next := time.Duration(float64(interval) * (1 - boRandomize + 2*boRandomize*rand.Float64()))
		if interval = time.Duration(float64(interval) * boMultiplier); interval > boMax {
			interval = boMax
		}
		if time.Since(start)+next > maxElapsed {
			say("internet", "failed to bootstrap network: %v (try %d, after %s)", err, try, time.Since(start).Round(time.Millisecond))
			return 1 // main.go:42-45
		}
		time.Sleep(next)
	}
}

// configureZOS is main.go:142-162 up to SelectZOS: AnalyzeLinks with
// RequiresIPv4, PhysicalFilter and PluggedFilter, then SelectZOS.
func configureZOS() error {
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	var found []string
filter:
	for _, l := range links {
		name := l.Attrs().Name
		if name == "lo" { // bootstrap.go:114-116
			continue
		}
		for _, f := range []struct {
			name string
			ok   func(netlink.Link) (bool, error)
		}{{"PhysicalFilter", physical}, {"PluggedFilter", plugged}} {
			ok, err := f.ok(l)
			if err != nil { // bootstrap.go:119-122
				return fmt.Errorf("failed to filter link: %w", err)
			}
			if !ok {
				say("internet", "%s (%s): link didn't match filter criteria (%s), skip testing", name, l.Type(), f.name)
				continue filter
			}
		}
		// analyzeLink, bootstrap.go:163-167: a port of a bridge is left
		// alone ("this is to avoid breaking setups if a link is already
		// used") and the error only logged (bootstrap.go:150-153).
		if l.Attrs().MasterIndex != 0 {
			say("internet", "%s: error analyzing interface: link is attached to device", name)
			continue
		}
		found = append(found, name)
	}
	say("internet", "found interfaces with internet access: %d", len(found))
	if len(found) == 0 {
		// SelectZOS over no configuration (bootstrap.go:303-327).
		return errNoGateway
	}
	say("internet", "%s passes zosbase's filters: the real internet would probe it with udhcpc, enslave it to zos "+
		"and start dhcp-zos; the stand-in does not model that", strings.Join(found, ", "))
	os.Exit(2)
	return nil
}

// physical is PhysicalFilter (bootstrap.go:332-335): netlink's type
// "device", a link without a kind (not a bridge, veth, tun, ...).
func physical(l netlink.Link) (bool, error) { return l.Type() == "device", nil }

// plugged is PluggedFilter (bootstrap.go:341-348): set the link up, then
// a virtio NIC counts as plugged (ifaceutil.IsVirtEth: its device link
// names virtio), any other once its carrier is 1 within 10 s
// (ifaceutil.IsPluggedTimeout: read every second).
func plugged(l netlink.Link) (bool, error) {
	name := l.Attrs().Name
	if err := netlink.LinkSetUp(l); err != nil {
		return false, fmt.Errorf("failed to bring interface '%s' up: %w", name, err)
	}
	if dest, err := os.Readlink("/sys/class/net/" + name + "/device"); err == nil && strings.Contains(filepath.Base(dest), "virtio") {
		return true, nil
	}
	end := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile("/sys/class/net/" + name + "/carrier"); err == nil && strings.TrimSpace(string(b)) == "1" {
			return true, nil
		}
		if time.Now().After(end) {
			return false, nil
		}
		time.Sleep(time.Second)
	}
}
