// Package guestlab is the shared test facility for what the host's kernel
// cannot do (802.1Q, bonding, bridge VLAN filtering, ...): a QEMU guest
// booting the Debian kernel netinit boots, with NICs on QEMU hubs, real
// servers (dnsmasq, radvd) in namespaces of the guest as the node's peers,
// netinit as the node, and the test's own Go code in the guest — the test
// binary itself, re-executed as the guest's /init.
//
// A test package runs its tests through Run and registers its guest
// programs at package level (the guest looks them up by name):
//
//	func TestMain(m *testing.M) { os.Exit(guestlab.Run(m)) }
//
//	var tagged = guestlab.Register(guestlab.Program{Name: "tagged",
//		Setup: func(g *guestlab.Guest) error { ... the switch: g.NewNS, ns.Take(g.NIC(1), "sw0"), ns.Dnsmasq ... },
//		Check: func(g *guestlab.Guest) (any, error) { ... netlink, g.State() ... return doc, nil },
//	})
//
//	func TestTagged(t *testing.T) {
//		var doc taggedDoc
//		guestlab.Boot(t, guestlab.Config{Program: tagged, Node: guestlab.NodePID1,
//			NICs: []guestlab.NIC{{Hub: 1}, {Hub: 1}}, Modules: []string{"8021q", "bridge"},
//			Binaries: []string{"dnsmasq"}, Cmdline: "runmode=dev vlan:priv=100"}, &doc)
//		... assertions on doc ...
//	}
//
// In the guest, /init (the test binary) mounts the pseudo filesystems,
// loads the NIC drivers and Config.Modules (boot/coldplug), finds the NICs
// by their MACs, runs the program's Setup, then the node side (Node: none,
// `netinit up`, or netinit booting as PID 1 and handing off to the test
// binary again), then its Check, and prints a report between
// GUESTLAB-RESULT-BEGIN and -END: Check's document, or the error that
// ended the guest, with every server's log, then powers off. Everything in
// the guest is bounded by Config.Timeout: the guest reports a step that
// overran before QEMU is killed.
package guestlab

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Markers around the guest's report on the console.
const (
	ResultBegin = "GUESTLAB-RESULT-BEGIN"
	ResultEnd   = "GUESTLAB-RESULT-END"
)

// Paths in the guest.
const (
	// NetinitPath is netinit in the image (cmd/netinit as releases
	// build it).
	NetinitPath = "/sbin/netinit"
	// checkPath is the next stage netinit hands off to with NodePID1: a
	// symlink to /init, told apart by its name.
	checkPath = "/sbin/guestlab-check"
	// configPath is the boot's configuration, in an archive of its own
	// appended to the image.
	configPath = "/guestlab.json"
	// LogDir holds the logs of the guest's servers (NAME.log), reported
	// with the result.
	LogDir = "/run/guestlab"
)

// Node is how the node side runs between Setup and Check.
type Node int

const (
	// NodeNone: nothing between them; Check runs whatever it needs
	// (netinit itself is at NetinitPath).
	NodeNone Node = iota
	// NodeUp: `netinit up --cmdline Config.Cmdline` in the guest's root
	// namespace, kept running through Check; Check starts once its state
	// file has a verdict (ready, degraded or offline).
	NodeUp
	// NodePID1: netinit boots as the guest's PID 1, as on a node, with
	// Config.Cmdline on the kernel command line, and hands off to Check
	// (netinit.next=). The servers Setup started are up before netinit's
	// first packet.
	NodePID1
)

func (n Node) String() string {
	switch n {
	case NodeUp:
		return "netinit up"
	case NodePID1:
		return "netinit as PID 1"
	}
	return "none"
}

// Program is the test's code in the guest.
type Program struct {
	// Name identifies the program between the host and the guest.
	Name string
	// Setup runs first, as the guest's PID 1 with the NICs found: it
	// builds the node's peers (a switch namespace, its servers).
	Setup func(g *Guest) error
	// Check runs last, after the node side: it looks at what the node
	// did and returns the document Boot decodes for the host test.
	Check func(g *Guest) (any, error)
}

var (
	programsMu sync.Mutex
	programs   = map[string]*Program{}
)

// Register makes p known to the guest; call it at package level (the
// guest runs the same binary, so it registers the same programs). A name
// registered twice panics.
func Register(p Program) *Program {
	programsMu.Lock()
	defer programsMu.Unlock()
	if p.Name == "" || programs[p.Name] != nil {
		panic(fmt.Sprintf("guestlab: program name %q empty or taken", p.Name))
	}
	programs[p.Name] = &p
	return &p
}

func program(name string) *Program {
	programsMu.Lock()
	defer programsMu.Unlock()
	return programs[name]
}

// guestConfig is what the host tells the guest (configPath).
type guestConfig struct {
	Program string          `json:"program"`
	Args    json.RawMessage `json:"args,omitempty"`
	MACs    []string        `json:"macs"`
	Modules []string        `json:"modules,omitempty"`
	Node    Node            `json:"node"`
	Cmdline string          `json:"cmdline,omitempty"`
	// Deadline is when the guest must have reported, on the host's clock
	// (Config.Timeout from QEMU's start, less a margin for the report):
	// the guest's clock is the host's, from QEMU's RTC at boot. Budget,
	// the same time from the kernel's start, bounds the guest when its
	// clock says otherwise (the time before the kernel's start, firmware
	// and loading the image, counts only in Deadline).
	Deadline time.Time     `json:"deadline"`
	Budget   time.Duration `json:"budget"`
}

// report is what the guest prints between the markers.
type report struct {
	Error string            `json:"error,omitempty"`
	Doc   json.RawMessage   `json:"doc,omitempty"`
	Logs  map[string]string `json:"logs,omitempty"`
	// Uptime: the guest's milestones (init, setup, node, check), in
	// seconds since the kernel started.
	Uptime map[string]float64 `json:"uptime,omitempty"`
}
