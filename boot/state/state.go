// Package state is the contract between netinit and the rest of 0-OS: the
// typed network state that netinit writes to /run/netinit/state.json (and a
// shell-sourceable state.env beside it) and that later stages read.
//
// The schema is documented in docs/state.md and docs/state.schema.json.
// Fields are only ever added within a schema version; a change of meaning
// bumps Schema.
package state

import (
	"encoding/json"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/spec"
)

// Schema is the version of the state file format written by this package.
const Schema = 1

// DefaultPath is where PID 1 and the daemon write the state.
const DefaultPath = "/run/netinit/state.json"

// Phase is the overall verdict of the bring-up.
type Phase string

const (
	// PhaseStarting is only seen in a live daemon before the first verdict;
	// it is never written to the state file.
	PhaseStarting Phase = "starting"
	// PhaseReady: the uplink has usable addresses, default routes and DNS.
	PhaseReady Phase = "ready"
	// PhaseDegraded: the deadline passed with something, but not all, up.
	PhaseDegraded Phase = "degraded"
	// PhaseOffline: the deadline passed and nothing usable is configured.
	PhaseOffline Phase = "offline"
)

// State is the whole document.
type State struct {
	Schema int    `json:"schema"`
	Phase  Phase  `json:"phase"`
	Uplink string `json:"uplink"`
	// UplinkReason says why Uplink was chosen: "cmdline", "bootif",
	// "reachable", "first-default-route" or "" when there is none.
	UplinkReason string `json:"uplink_reason"`
	// UplinkNIC is the NIC enslaved to the management bridge when the
	// uplink is that bridge (netinit.bridge=, 0-OS's "zos"); absent
	// otherwise.
	UplinkNIC string `json:"uplink_nic,omitempty"`
	// UplinkVLAN is the management VLAN (vlan:priv=) the bridge's traffic
	// is tagged with on UplinkNIC; absent when untagged.
	UplinkVLAN int `json:"uplink_vlan,omitempty"`
	// Candidates are the links the uplink was elected from, with the
	// evidence (absent when no election ran: one link, or a fixed uplink).
	Candidates []Candidate `json:"candidates,omitempty"`
	PublicIPv6 bool        `json:"public_ipv6"`
	// PublicIPv6Reason explains the verdict in words.
	PublicIPv6Reason string `json:"public_ipv6_reason"`

	Interfaces []Interface `json:"interfaces"`
	// Bonds are the bonds the managed links are or sit on (bond=,
	// netinit.bond=auto), as the kernel has them; absent when none.
	Bonds    []Bond   `json:"bonds,omitempty"`
	Routes   []Route  `json:"routes"`
	DNS      []string `json:"dns"`
	Search   []string `json:"search"`
	NTP      []string `json:"ntp"`
	Hostname string   `json:"hostname"`
	// NAT64Prefix is the uplink's PREF64 (RFC 8781), for the stages that
	// decide on 464XLAT or DNS64; "" when none.
	NAT64Prefix string `json:"nat64_prefix,omitempty"`

	Yggdrasil *Yggdrasil `json:"yggdrasil"`
	// YggdrasilHandover is set while 0-OS's own Yggdrasil carries the
	// node's key and netinit's instance is stopped (Yggdrasil is then
	// null); absent otherwise.
	YggdrasilHandover *YggdrasilHandover `json:"yggdrasil_handover,omitempty"`
	WireGuard         *WireGuard         `json:"wireguard"`

	// Overlays says what was decided about Yggdrasil and WireGuard, and
	// why (null until the daemon decided; never set by a oneshot run).
	Overlays *Overlays `json:"overlays,omitempty"`
	// Connectivity is netprobe's verdict per family, with the evidence.
	Connectivity *Connectivity `json:"connectivity,omitempty"`
	// Firewall lists the overlay firewall's rules in words.
	Firewall []string `json:"firewall,omitempty"`
	// FirewallStatus is the overlay firewall in fields: applied or not,
	// where, which ports (absent while no overlay runs).
	FirewallStatus *FirewallStatus `json:"firewall_status,omitempty"`
	// Clock is the daemon's NTP clock loop: its last round (the first one
	// runs before WireGuard starts).
	Clock *Clock `json:"clock,omitempty"`

	// Problems are the things that went wrong that a farmer should know
	// about (bad cmdline tokens, a link without carrier, a DHCP NAK...).
	Problems []string `json:"problems"`

	// Modules is what the driver coldplug loaded at boot (PID 1 only).
	Modules *Modules `json:"modules,omitempty"`

	// TimingsMS are milliseconds since netinit started, per milestone
	// ("modules", "carrier", "lease4", "ra", "address6", "ready", ...).
	TimingsMS map[string]int64 `json:"timings_ms"`

	// UpdatedAt is when this document was written (RFC 3339, UTC).
	UpdatedAt time.Time `json:"updated_at"`
	// PID of the process that keeps the network (0 when none remains).
	PID int `json:"pid"`
}

// Candidate is one link that could carry the default routes, as the
// uplink election saw it.
type Candidate struct {
	Name      string   `json:"name"`
	Address   string   `json:"address,omitempty"`
	Gateways  []string `json:"gateways,omitempty"`
	Probed    bool     `json:"probed"`
	Reachable bool     `json:"reachable"`
	// Evidence is what the reachability probe through the link's own
	// gateway found, in words.
	Evidence []string `json:"evidence,omitempty"`
}

// Interface is one managed link.
type Interface struct {
	Name      string    `json:"name"`
	MAC       string    `json:"mac"`
	MTU       int       `json:"mtu"`
	Carrier   bool      `json:"carrier"`
	Addresses []Address `json:"addresses"`
	// DHCP4 is the state of the DHCPv4 client on this link: "off",
	// "selecting", "bound", "renewing", "rebinding", "failed".
	DHCP4 string `json:"dhcp4,omitempty"`
	// DHCP4Renewals counts the leases renewed (or rebound) since start.
	DHCP4Renewals int `json:"dhcp4_renewals,omitempty"`
	// RA is "off", "soliciting", "received", "none".
	RA string `json:"ra,omitempty"`
	// IPv6OnlyPreferredS is the DHCPv4 server's V6ONLY_WAIT (RFC 8925
	// option 108) while the link honours it (DHCP4 "ipv6-only").
	IPv6OnlyPreferredS int64 `json:"ipv6_only_preferred_s,omitempty"`
	// PREF64 is the NAT64 prefix the link's router advertised (RFC 8781).
	PREF64 string `json:"pref64,omitempty"`
	// LLDP is what the switch the link is plugged into announces about
	// itself and the port (absent until heard, and after its TTL).
	LLDP *LLDP `json:"lldp,omitempty"`
	// SpanningTree is present when the switch port sends BPDUs.
	SpanningTree *SpanningTree `json:"spanning_tree,omitempty"`
}

// Bond is a bond (the kernel's bonding driver) and its ports.
type Bond struct {
	Name string `json:"name"`
	// Mode is the driver's: "802.3ad", "active-backup", ...
	Mode string `json:"mode"`
	// Origin is "bond=" (the command line named it) or "auto" (formed
	// from the LACPDUs heard, netinit.bond=auto).
	Origin string `json:"origin"`
	// PartnerSystem and PartnerKey are the LACP partner of the bond's
	// active aggregator (802.3ad only; absent before it is heard).
	PartnerSystem string     `json:"partner_system,omitempty"`
	PartnerKey    int        `json:"partner_key,omitempty"`
	Ports         []BondPort `json:"ports"`
}

// BondPort is one port of a bond, from the kernel's per-port bonding
// attributes (IFLA_BOND_SLAVE_*).
type BondPort struct {
	Name    string `json:"name"`
	MAC     string `json:"mac"` // its own (permanent) MAC
	Carrier bool   `json:"carrier"`
	// State is "active" or "backup"; MIIStatus the driver's link
	// monitoring: "up", "down", "going_down", "going_back".
	State     string `json:"state"`
	MIIStatus string `json:"mii_status"`
	// 802.3ad only: the aggregator the port is in, and the LACP states
	// of its two ends by their set bits (IEEE 802.1AX-2014 6.4.2.3:
	// activity, short_timeout, aggregation, synchronization,
	// collecting, distributing, defaulted, expired). Bundled: in sync,
	// collecting and distributing — the port carries the bond's traffic.
	AggregatorID int      `json:"aggregator_id,omitempty"`
	ActorState   []string `json:"actor_state,omitempty"`
	PartnerState []string `json:"partner_state,omitempty"`
	Bundled      bool     `json:"bundled,omitempty"`
}

// LLDP is a link's LLDP neighbour (IEEE 802.1AB): the switch and its port.
// Every string is printable text of at most 255 bytes, as the switch sent
// it; a field it sent otherwise is absent.
type LLDP struct {
	ChassisID       string `json:"chassis_id"` // "mac 00:11:22:33:44:55", "ip 192.0.2.2", or text
	SystemName      string `json:"system_name,omitempty"`
	PortID          string `json:"port_id"` // e.g. "Gi1/0/12", or "mac ..."
	PortDescription string `json:"port_description,omitempty"`
	// PortVLAN is the port's VLAN for untagged frames (the IEEE 802.1
	// Port VLAN ID TLV); absent when not sent.
	PortVLAN          int    `json:"port_vlan,omitempty"`
	ManagementAddress string `json:"management_address,omitempty"`
	TTLS              int64  `json:"ttl_s"` // how long the switch says it holds
	AgeS              int64  `json:"age_s"` // since its last announcement, at updated_at
}

// SpanningTree is what a link's switch port says in its BPDUs.
type SpanningTree struct {
	Protocol string `json:"protocol"` // "stp", "rstp" or "mstp"
	Root     string `json:"root"`     // the root bridge ID, "8000.00:11:22:33:44:55"
	// ForwardDelayS is the advertised forward delay (at most 30 s): a
	// port that is not an edge port forwards 2 x this after it came up.
	ForwardDelayS int64 `json:"forward_delay_s"`
	// Forwarding: the switch says its port forwards (RSTP only).
	Forwarding bool `json:"forwarding,omitempty"`
	// FirstS is when the first BPDU came, in seconds since netinit
	// started; AgeS is how long ago the last one came, at updated_at.
	FirstS int64 `json:"first_s"`
	AgeS   int64 `json:"age_s"`
}

// Address is one address on a link.
type Address struct {
	CIDR   string       `json:"cidr"`
	Source lease.Source `json:"source"`
	Public bool         `json:"public"`
	// ValidLifetimeS is the remaining valid lifetime in seconds at
	// UpdatedAt; 0 means infinite/static.
	ValidLifetimeS int64 `json:"valid_lifetime_s,omitempty"`
}

// Route is one route netinit installed.
type Route struct {
	Dst string `json:"dst"`
	Via string `json:"via,omitempty"`
	Dev string `json:"dev"`
	// Source is what the route was learned from (dhcp4, ra, static, ...).
	Source string `json:"source,omitempty"`
}

// String is the route as `ip route` writes it, then its source:
// "0.0.0.0/0 via 192.0.2.1 dev eth0 (dhcp4)".
func (r Route) String() string {
	via := ""
	if r.Via != "" {
		via = " via " + r.Via
	}
	return r.Dst + via + " dev " + r.Dev + " (" + r.Source + ")"
}

// Yggdrasil is the Yggdrasil node's state (boot/overlay/ygg).
type Yggdrasil struct {
	Address   string          `json:"address"`
	Subnet    string          `json:"subnet"`
	PublicKey string          `json:"public_key"`
	Peers     []YggdrasilPeer `json:"peers"`
	// Identity says where the key came from: the 0-OS node identity (its
	// seed file and format), a seed file, or netinit's own key dir. Never
	// the key or the seed.
	Identity string `json:"identity,omitempty"`
}

// YggdrasilHandover is the evidence that 0-OS's own Yggdrasil runs with
// the node's key: its TUN (Interface, in network namespace Namespace)
// holds the node's address (Address), which only that key gives.
type YggdrasilHandover struct {
	To        string    `json:"to"` // "0-OS"
	Namespace string    `json:"namespace"`
	Interface string    `json:"interface"`
	Address   string    `json:"address"`
	Since     time.Time `json:"since"` // when netinit's instance stepped aside
	// Peered: 0-OS's instance held a peering (its yggdrasil process an
	// established TCP connection) when it was found. A running netinit
	// instance steps aside only then, or after overlay.HandoverUnpeered
	// without one.
	Peered bool `json:"peered"`
	// GoneSince is when 0-OS's instance was last found missing, while it
	// stays missing: netinit takes the key back when it has been gone
	// for TakeBackAfterS.
	GoneSince      *time.Time `json:"gone_since,omitempty"`
	TakeBackAfterS int64      `json:"take_back_after_s"`
}

// YggdrasilPeer is one configured or connected peer.
type YggdrasilPeer struct {
	URI       string  `json:"uri"`
	Up        bool    `json:"up"`
	LatencyMS float64 `json:"latency_ms"`
}

// WireGuard is the tunnel's state (boot/overlay/wg).
type WireGuard struct {
	Interface string          `json:"interface"`
	PublicKey string          `json:"public_key"`
	Addresses []string        `json:"addresses"`
	Peers     []WireGuardPeer `json:"peers"`
}

// WireGuardPeer is one configured peer.
type WireGuardPeer struct {
	PublicKey     string     `json:"public_key"`
	Endpoint      string     `json:"endpoint"`
	LastHandshake *time.Time `json:"last_handshake"`
	RxBytes       int64      `json:"rx_bytes"`
	TxBytes       int64      `json:"tx_bytes"`
}

// FirewallStatus is the overlay firewall's outcome.
type FirewallStatus struct {
	// Applied is false when the rules could not be installed: inbound on
	// Interfaces is then NOT filtered (Error says why).
	Applied    bool     `json:"applied"`
	Interfaces []string `json:"interfaces"`
	// Allow are the ports open to the overlays besides established
	// traffic and ICMPv6: "9900/tcp".
	Allow []string `json:"allow"`
	Error string   `json:"error,omitempty"`
}

// Modules records the kernel-module coldplug done by PID 1.
type Modules struct {
	Loaded  []string `json:"loaded"`  // modules loaded, in load order
	Builtin []string `json:"builtin"` // matched drivers that are built into the kernel
	Failed  []string `json:"failed"`  // "module: error"
	// Skipped lists devices left alone because a driver is already bound
	// (a link that is up is never bounced by a reload).
	Skipped []string `json:"skipped"`
	TookMS  int64    `json:"took_ms"`
	// LoadMS is how long each loaded module's finit_module took.
	LoadMS map[string]int64 `json:"load_ms,omitempty"`
}

// Overlays is the decision about the overlays.
type Overlays struct {
	Yggdrasil       bool   `json:"yggdrasil"`
	YggdrasilReason string `json:"yggdrasil_reason"`
	WireGuard       bool   `json:"wireguard"`
	WireGuardReason string `json:"wireguard_reason"`
}

// Connectivity is the probed verdict (see netprobe and
// docs/probe-protocol.md).
type Connectivity struct {
	IPv4   Family `json:"ipv4"`
	IPv6   Family `json:"ipv6"`
	Hidden bool   `json:"hidden"`
	Probed bool   `json:"probed"` // false: address-based only
	TookMS int64  `json:"took_ms"`
}

// Family is one address family's verdict: none, private,
// public-unverified, public-outbound or public-inbound.
type Family struct {
	Verdict  string   `json:"verdict"`
	Evidence []string `json:"evidence"`
}

// Clock is the outcome of setting the clock by NTP.
type Clock struct {
	Server   string `json:"server"`
	OffsetMS int64  `json:"offset_ms"`
	Set      bool   `json:"set"`
	// Measured: the offset was measured and the clock deliberately left
	// alone (`netinit up`: the host keeps its own clock).
	Measured bool   `json:"measured,omitempty"`
	Error    string `json:"error,omitempty"`
	// Sources is every NTP server asked and what it said.
	Sources []ClockSource `json:"sources,omitempty"`
	// Method is how the clock was corrected when Set: "slew" or "step".
	Method string `json:"method,omitempty"`
	// Servers are the servers the last round asked, preferred first.
	Servers []string `json:"servers,omitempty"`
	// Pool: the servers are the run mode's public pool (no DHCP or
	// netinit.ntp= server was known).
	Pool bool `json:"pool,omitempty"`
	// Rounds is how many rounds the loop has done.
	Rounds int `json:"rounds,omitempty"`
	// LastSync is when a round last corrected the clock (absent: never).
	LastSync *time.Time `json:"last_sync,omitempty"`
	// NextSync is when the next round is due.
	NextSync *time.Time `json:"next_sync,omitempty"`
	// Owner is the other program that keeps the clock ("0-OS's ntpd
	// (pid N)"): netinit only measures while it runs.
	Owner string `json:"owner,omitempty"`
	// Floor is the earliest time the clock may be set to: the image's
	// build time or the last time saved on the cache disk.
	Floor *time.Time `json:"floor,omitempty"`
}

// ClockSource is one NTP server's answer.
type ClockSource struct {
	Server     string `json:"server"`
	Configured bool   `json:"configured"` // netinit.ntp= (preferred)
	// Origin is who named it: configured, pool, "dhcp4 on eth0", "dhcp6
	// on eth0".
	Origin string `json:"origin,omitempty"`
	// Address is the address that answered.
	Address  string `json:"address,omitempty"`
	OffsetMS int64  `json:"offset_ms"`
	Error    string `json:"error,omitempty"`
}

// MarshalJSON writes the peer with its URI redacted (spec.RedactURI): the
// state file is world-readable (0644).
func (p YggdrasilPeer) MarshalJSON() ([]byte, error) {
	type plain YggdrasilPeer
	q := plain(p)
	q.URI = spec.RedactURI(p.URI)
	return json.Marshal(q)
}
