package engine

import (
	"context"
	"net"
	"slices"
	"testing"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/kernel/kerneltest"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/spec"
)

// bootSpec is the spec of line with the boot's default bridge dflt when
// netinit.bridge= is not given (as cmdline.LoadBoot gives a 0-OS boot zos).
func bootSpec(t *testing.T, line, dflt string) *spec.Spec {
	s := parseSpec(t, line)
	if !s.IsSet("netinit.bridge") {
		s.Bridge = dflt
	}
	return s
}

// TestBridgeFor: which NIC gets the management bridge, and under which
// name, from the command line, the boot's default and an earlier state.
func TestBridgeFor(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	other := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x57}
	for _, c := range []struct {
		name, line, def string
		prev            *Previous
		nic             string
		mac             net.HardwareAddr
		only            bool
		want            string
	}{
		{"off by default", "", "", nil, "eth0", mac, true, ""},
		{"the boot's default, only NIC", "", spec.DefaultBridge, nil, "eth0", mac, true, "zos"},
		{"netinit.bridge= names it", "netinit.bridge=br0", "", nil, "eth0", mac, true, "br0"},
		{"netinit.bridge=off wins over the default", "netinit.bridge=off", spec.DefaultBridge, nil, "eth0", mac, true, ""},
		{"one of several, not chosen yet", "netinit.bridge=zos", "", nil, "eth1", mac, false, ""},
		{"netinit.uplink=", "netinit.bridge=zos netinit.uplink=eth1", "", nil, "eth1", other, false, "zos"},
		{"netinit.uplink= names another", "netinit.bridge=zos netinit.uplink=eth1", "", nil, "eth0", mac, false, ""},
		{"BOOTIF", "netinit.bridge=zos BOOTIF=01-52-54-00-12-34-56", "", nil, "eth3", mac, false, "zos"},
		{"not BOOTIF", "netinit.bridge=zos BOOTIF=01-52-54-00-12-34-56", "", nil, "eth3", other, false, ""},
		{"bridged by an earlier process", "", spec.DefaultBridge, &Previous{Uplink: "zos", UplinkNIC: "eth2"}, "eth2", other, false, "zos"},
		{"a NIC named like the bridge", "netinit.bridge=eth0", "", nil, "eth0", mac, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := New(Config{Spec: bootSpec(t, c.line, c.def), Previous: c.prev, Kernel: kerneltest.New()})
			if got := e.bridgeFor(c.nic, c.mac, c.only); got != c.want {
				t.Fatalf("bridgeFor(%s) = %q, want %q", c.nic, got, c.want)
			}
		})
	}
	// One management bridge: a second NIC never gets one.
	e := New(Config{Spec: parseSpec(t, "netinit.bridge=zos"), Kernel: kerneltest.New()})
	e.links["zos"] = &link{linkFacts: linkFacts{name: "zos", nic: "eth0"}}
	if got := e.bridgeFor("eth1", other, true); got != "" {
		t.Fatalf("second bridge %q", got)
	}
}

// TestHandedOverBefore: after a daemon restart, a NIC the previous process
// handed over (its uplink on the bridge, the NIC not in its state) is left
// alone; the bridge's port and the links it still managed are not.
func TestHandedOverBefore(t *testing.T) {
	prev := &Previous{Uplink: "zos", UplinkNIC: "eth1", Links: []string{"zos", "eth2"}}
	e := New(Config{Spec: bootSpec(t, "", spec.DefaultBridge), Previous: prev, Kernel: kerneltest.New()})
	for name, want := range map[string]bool{"eth0": true, "eth1": false, "eth2": false} {
		if got := e.handedOverBeforeLocked(name); got != want {
			t.Errorf("%s: handed over before %v, want %v", name, got, want)
		}
	}
	e = New(Config{Spec: bootSpec(t, "netinit.bridge=off", spec.DefaultBridge), Previous: prev, Kernel: kerneltest.New()})
	if e.handedOverBeforeLocked("eth0") {
		t.Error("netinit.bridge=off: eth0 left alone")
	}
	e = New(Config{Spec: parseSpec(t, ""), Previous: &Previous{Uplink: "eth1"}, Kernel: kerneltest.New()})
	if e.handedOverBeforeLocked("eth0") {
		t.Error("no bridge before: eth0 left alone")
	}
}

// TestPortMTU: an MTU a client applied to the bridge larger than its
// port's raises the port's; a smaller one leaves the port as it is.
func TestPortMTU(t *testing.T) {
	k := kerneltest.New()
	k.Set("eth0", kernel.Link{MTU: 1500, Carrier: true})
	k.Set("zos", kernel.Link{MTU: 1500, Carrier: true})
	e := New(Config{Spec: parseSpec(t, "netinit.bridge=zos"), Kernel: k})
	e.links["zos"] = &link{linkFacts: linkFacts{name: "zos", nic: "eth0"}}
	e.report(lease.Report{Link: "zos", Source: lease.SourceDHCP4, Status: "bound", MTU: 1450,
		Addresses: []lease.Addr{{Prefix: pfx("192.0.2.10/24")}}})
	e.report(lease.Report{Link: "zos", Source: lease.SourceDHCP4, Status: "bound", MTU: 9000,
		Addresses: []lease.Addr{{Prefix: pfx("192.0.2.10/24")}}})
	if ops := k.Ops(); !slices.Equal(ops, []string{"mtu eth0 9000"}) {
		t.Fatalf("kernel ops %q, want only the port raised to 9000", ops)
	}
}

// TestLeaseFirst: which NIC that gets the management bridge takes its
// lease as itself first: not the bridge's port already, not one up
// already, not with a tagged management VLAN, not after a daemon restart.
func TestLeaseFirst(t *testing.T) {
	for _, c := range []struct {
		name, line string
		prev       *Previous
		attrs      kernel.LinkInfo
		want       bool
	}{
		{"a NIC just found", "", nil, kernel.LinkInfo{Name: "eth0"}, true},
		{"operstate up already", "", nil, kernel.LinkInfo{Name: "eth0", OperUp: true}, false},
		{"a bridge's port already", "", nil, kernel.LinkInfo{Name: "eth0", Master: 7}, false},
		{"vlan:priv=", "vlan:priv=100", nil, kernel.LinkInfo{Name: "eth0"}, false},
		{"a daemon restart", "", &Previous{Uplink: "zos", UplinkNIC: "eth0"}, kernel.LinkInfo{Name: "eth0"}, false},
		{"a restart, another NIC before", "", &Previous{Uplink: "zos", UplinkNIC: "eth1"}, kernel.LinkInfo{Name: "eth0"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := New(Config{Spec: parseSpec(t, "netinit.bridge=zos "+c.line), Previous: c.prev, Kernel: kerneltest.New()})
			if got := e.leaseFirst(c.attrs); got != c.want {
				t.Fatalf("leaseFirst = %v, want %v", got, c.want)
			}
		})
	}
}

// TestUplinkChangeReapplies: whenever the uplink changes, the clients of
// the old and the new uplink apply again (boot/route then installs the
// routes only the uplink may have on the new one and withdraws them from
// the old), whatever moved it; a link that is neither is left alone.
func TestUplinkChangeReapplies(t *testing.T) {
	e := New(Config{Spec: parseSpec(t, "ip=dhcp"), Kernel: kerneltest.New()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, n := range []string{"eth0", "eth1", "eth2"} {
		e.links[n] = e.newLink(ctx, n, "", nil)
	}
	asked := func() []string {
		var out []string
		for _, n := range []string{"eth0", "eth1", "eth2"} {
			select {
			case <-e.links[n].reapply4:
				out = append(out, n)
			default:
			}
		}
		return out
	}
	e.ballot.decided = true // as runElection ends
	if !e.uplinkFor("eth0", true) || !slices.Equal(asked(), []string{"eth0"}) {
		t.Fatal("the first uplink's clients were not asked to apply again")
	}
	if e.uplinkFor("eth1", true) || len(asked()) != 0 {
		t.Fatal("a candidate that is not the uplink applied again")
	}
	e.mu.Lock()
	e.ballot.moved = "eth1" // the daemon's re-election
	e.electLocked()
	e.unlock()
	if got := asked(); !slices.Equal(got, []string{"eth0", "eth1"}) {
		t.Fatalf("after the uplink moved, %v applied again, want eth0 and eth1", got)
	}
}
