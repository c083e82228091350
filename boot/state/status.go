package state

import (
	"net"
	"net/netip"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
)

// The document is output only: the bring-up engine publishes a
// NetworkStatus, the overlay manager an OverlayStatus, both typed, and
// Assemble (assemble.go) turns them into the document and its env form.
// Nothing reads the document back to decide: the overlay follows the
// engine's NetworkStatus.

// NetworkStatus is what the bring-up engine knows and decided, at one
// instant: the links as the kernel shows them, labelled with the client
// that configured each address, the uplink and the verdict.
type NetworkStatus struct {
	Phase        Phase
	Uplink       string
	UplinkReason string
	UplinkNIC    string            // the bridge's NIC when the uplink is the management bridge
	UplinkVLAN   int               // the management VLAN on UplinkNIC; 0 untagged
	Candidates   []CandidateStatus // absent when no election ran
	Links        []LinkStatus      // the uplink first
	Bonds        []Bond            // the bonds among the links and their ports (boot/engine bond.go)
	Routes       []RouteStatus
	// DNS, Search, NTP and Hostname are the uplink's (and the command
	// line's): another link's never speak for the node.
	DNS      []netip.Addr
	Search   []string
	NTP      []netip.Addr
	NTPNames []string // netinit.ntp=, as given (names or addresses)
	// NTPLearned are NTP's servers with the lease that named each: the
	// clock weighs a server by who named it (issue 29).
	NTPLearned []NTPServer
	Hostname   string
	NAT64      netip.Prefix // the uplink's PREF64 (RFC 8781); zero when none

	PublicIPv6       bool
	PublicIPv6Reason string

	Problems []string
	Timings  map[string]int64 // ms since netinit started
	Modules  *Modules
	Updated  time.Time
	PID      int
}

// NTPServer is an NTP server a lease named.
type NTPServer struct {
	Addr   netip.Addr
	Source lease.Source // dhcp4 or dhcp6
	Link   string
}

// CandidateStatus is one link the uplink was elected from, with the
// evidence of the reachability probe through its own gateway.
type CandidateStatus struct {
	Name      string
	Address   netip.Addr   // the IPv4 lease's, else its global IPv6 one
	Gateways  []netip.Addr // its routers
	Probed    bool
	Reachable bool
	Evidence  []string
}

// LinkStatus is one managed link.
type LinkStatus struct {
	Name          string
	MAC           net.HardwareAddr
	MTU           int // 0: not in the kernel
	Carrier       bool
	Addrs         []AddrStatus
	DHCP4         string // the DHCPv4 client's state in words ("off", "bound", ...)
	DHCP4Renewals int
	RA            string        // "off", "soliciting", "received", "none"
	V6OnlyWait    time.Duration // RFC 8925 V6ONLY_WAIT while honoured
	PREF64        netip.Prefix  // the link's router's NAT64 prefix (RFC 8781)
	LLDP          *LLDP         // the switch and port, as LLDP announces them (boot/l2)
	SpanningTree  *SpanningTree // the switch port's BPDUs (boot/l2)
}

// AddrStatus is one address on a link.
type AddrStatus struct {
	Prefix netip.Prefix
	Source lease.Source
	Public bool
	Valid  time.Duration // remaining valid lifetime; 0 infinite
}

// RouteStatus is one route a client installed.
type RouteStatus struct {
	Dst    netip.Prefix
	Via    netip.Addr // zero: on-link
	Dev    string
	Source string // dhcp4, ra, dhcp6, static
}

// Link returns the named link, or nil.
func (n *NetworkStatus) Link(name string) *LinkStatus {
	for i := range n.Links {
		if n.Links[i].Name == name {
			return &n.Links[i]
		}
	}
	return nil
}

// UplinkAddrs are the uplink's addresses that netinit configured or
// found (not link-local), nil without an uplink.
func (n *NetworkStatus) UplinkAddrs() []AddrStatus {
	l := n.Link(n.Uplink)
	if l == nil {
		return nil
	}
	var out []AddrStatus
	for _, a := range l.Addrs {
		if a.Source != lease.SourceLinkLocal {
			out = append(out, a)
		}
	}
	return out
}

// NTPServers are the NTP servers in words: the uplink's, then
// netinit.ntp=.
func (n *NetworkStatus) NTPServers() []string {
	return dedupe(append(addrStrings(n.NTP), n.NTPNames...))
}

// OverlayStatus is what the overlay manager decided and runs.
type OverlayStatus struct {
	Decision       *Overlays // nil until decided
	Connectivity   *Connectivity
	Clock          *Clock
	Firewall       []string
	FirewallStatus *FirewallStatus
	Yggdrasil      *Yggdrasil
	YggHandover    *YggdrasilHandover // 0-OS's own Yggdrasil carries the key (Yggdrasil is nil)
	WireGuard      *WireGuard
	Problems       []string
	Timings        map[string]int64 // overlay milestones, ms since netinit started
}
