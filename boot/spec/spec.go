// Package spec is what a node is asked to do: the typed result of parsing
// the kernel command line and the netinit config file (boot/cmdline), in
// four parts: the boot (next stage, root, test mode, deadlines, clock),
// the links (ip=, vlan=, the uplink, the bridge), the overlays and the
// connectivity probe. PID 1 parses it once and hands it to the network
// daemon as JSON; the packages that act on it (engine, overlay and its
// firewall) import this package, not the parser.
package spec

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/threefoldtech/netinit/boot/runmode"
)

// Defaults of the keys that have one.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultRATimeout = 3 * time.Second
	// DefaultDHCP4Timeout is how long an uplink with complete IPv6 waits
	// for a DHCPv4 lease before it is ready without one.
	DefaultDHCP4Timeout = 3 * time.Second
	// DefaultLANPeers is netinit.ygg.lan_peers's default (ygg.DefaultLANPeers).
	DefaultLANPeers = 8
	// DefaultYggTakeBack is netinit.ygg.takeback's default: how long
	// 0-OS's own Yggdrasil must stay gone before netinit takes the node's
	// key back (boot/overlay/handover.go). zinit restarts a service that
	// died within seconds, and networkd restarts its Yggdrasil by stop,
	// forget and start (zosbase pkg/network/yggdrasil Ensure: StopWait
	// 5 s, StartWait 20 s), so a shorter wait would flap between the two.
	DefaultYggTakeBack = 2 * time.Minute
)

// Spec is what the command line and the config file ask for. The parts are
// embedded: s.Timeout is s.Boot.Timeout.
type Spec struct {
	Boot    `json:"boot"`
	Link    `json:"link"`
	Overlay `json:"overlay"`
	Probe   `json:"probe"`

	// Given is the canonical names of the keys some source gave, sorted
	// (they keep their value when a later source is applied).
	Given []string `json:"given,omitempty"`
}

// Boot is what PID 1 does around the network.
type Boot struct {
	Next     string        `json:"next,omitempty"`      // netinit.next="PATH [ARG...]": the path (absolute)
	NextArgs []string      `json:"next_args,omitempty"` // ... and its arguments
	Root     Root          `json:"root"`                // netinit.root=
	RootSize string        `json:"root_size,omitempty"` // netinit.root=tmpfs:SIZE ("" = 0-OS's 1536M)
	Test     Test          `json:"test"`                // netinit.test=
	Timeout  time.Duration `json:"timeout"`             // netinit.timeout=DUR (default 60s)
	RunMode  runmode.Mode  `json:"runmode,omitempty"`   // runmode= (0-OS): "" when not given
	// ZOSVersion is 0-OS's version= ("" when not given): v3light and v4
	// are network-light nodes (Light).
	ZOSVersion string   `json:"zos_version,omitempty"`
	NTP        []string `json:"ntp,omitempty"` // netinit.ntp=host,host
	// NTPPool is the public pool the clock loop asks when neither DHCP
	// nor netinit.ntp= names a server: the runmode='s (prod's when none
	// is given; the same in every mode).
	NTPPool []string `json:"ntp_pool,omitempty"`
}

// Light reports whether the node is a 0-OS network-light node (zosbase
// pkg/kernel Params.IsLight: version=v3light or version=v4): no Yggdrasil
// in 0-OS there, Mycelium instead.
func (b Boot) Light() bool { return b.ZOSVersion == "v3light" || b.ZOSVersion == "v4" }

// Link is how the links are chosen and configured.
type Link struct {
	Uplink       string           `json:"uplink,omitempty"`     // netinit.uplink=IFNAME
	BootIF       net.HardwareAddr `json:"bootif,omitempty"`     // BOOTIF=01-aa-bb-cc-dd-ee-ff or a plain MAC
	Ignore       []string         `json:"ignore,omitempty"`     // netinit.ignore=glob,glob
	RATimeout    time.Duration    `json:"ra_timeout"`           // netinit.ra_timeout=DUR (default 3s, 0 for IPv4-only ip=)
	DHCP4Timeout time.Duration    `json:"dhcp4_timeout"`        // netinit.dhcp4_timeout=DUR (default 3s)
	MTU          int              `json:"mtu,omitempty"`        // netinit.mtu=N (68..65535); 0 = not set
	IP           []IPConfig       `json:"ip,omitempty"`         // every ip=
	Nameserver   []netip.Addr     `json:"nameserver,omitempty"` // every nameserver= (Nameservers adds the DNS of the ip=)
	VLANs        []VLAN           `json:"vlans,omitempty"`      // vlan=NAME:PARENT
	VLANPriv     int              `json:"vlan_priv,omitempty"`  // vlan:priv= (0-OS): management VLAN ID, 0 = untagged
	VLANPub      int              `json:"vlan_pub,omitempty"`   // vlan:pub= (0-OS): public VLAN ID, 0 = untagged (carried tagged on the management bridge's NIC)
	LLDP         LLDPMode         `json:"lldp"`                 // netinit.lldp=listen|send|off (default listen)
	// Bonds are every bond= and netinit.bond=NAME:... (dracut's grammar).
	Bonds []Bond `json:"bonds,omitempty"`
	// LACP is netinit.bond=auto|off: bonds formed from the LACPDUs heard
	// (boot/engine bond.go). Not given, it is on at a 0-OS boot
	// (cmdline.LoadBoot) and off for `netinit up`.
	LACP LACPMode `json:"lacp"`
	// Bridge is netinit.bridge=NAME, or NoBridge; at a 0-OS boot
	// DefaultBridge when not given (cmdline.LoadBoot); "" = none.
	Bridge string `json:"bridge,omitempty"`
}

// NoBridge is netinit.bridge=off: no management bridge, even at a 0-OS
// boot.
const NoBridge = "off"

// DefaultBridge is 0-OS's management bridge, built at a boot whose command
// line is a 0-OS one (runmode= given) unless netinit.bridge= says
// otherwise: its networkd refuses to start without it (zosbase
// pkg/network/bootstrap/bridge.go, DefaultBridgeValid).
const DefaultBridge = "zos"

// BridgeName is the management bridge to build, "" for none.
func (l *Link) BridgeName() string {
	if l.Bridge == NoBridge {
		return ""
	}
	return l.Bridge
}

// Overlay is what the overlays and their firewall are asked to do.
type Overlay struct {
	KeyDir       string         `json:"keydir,omitempty"`     // netinit.keydir=PATH ("" = overlay default)
	Identity     string         `json:"identity,omitempty"`   // netinit.identity=PATH: the 0-OS node identity seed file
	Ygg          YggMode        `json:"ygg"`                  // netinit.ygg=
	YggPeers     []string       `json:"ygg_peers,omitempty"`  // netinit.ygg.peers=uri,uri
	YggMulticast bool           `json:"ygg_multicast"`        // netinit.ygg.multicast=on|off (default on)
	YggSeed      string         `json:"ygg_seed,omitempty"`   // netinit.ygg.seed=PATH
	YggListen    []string       `json:"ygg_listen,omitempty"` // netinit.ygg.listen=uri,uri ("" = the default when the node has public IPv6)
	YggLANPeers  int            `json:"ygg_lan_peers"`        // netinit.ygg.lan_peers=N (default 8; 0 = no bound)
	YggTakeBack  time.Duration  `json:"ygg_takeback"`         // netinit.ygg.takeback=DUR (default DefaultYggTakeBack)
	WG           WGMode         `json:"wg"`                   // netinit.wg=
	WGPeers      []WGPeer       `json:"wg_peers,omitempty"`   // netinit.wg.peer=KEY@HOST:PORT
	WGAddress    []netip.Prefix `json:"wg_address,omitempty"` // netinit.wg.address=cidr,cidr
	WGAllowed    []netip.Prefix `json:"wg_allowed,omitempty"` // netinit.wg.allowed=cidr,cidr (masked)
	Allow        []Port         `json:"allow,omitempty"`      // netinit.allow=9900/tcp,53/udp
}

// Probe is where the connectivity probe looks.
type Probe struct {
	ProbeTargets    []string `json:"targets,omitempty"`    // netinit.probe.targets=host:port,...
	ProbeReflectors []string `json:"reflectors,omitempty"` // netinit.probe.reflectors=host:port,...
	// UplinkTargets are where the uplink election's probes connect: the
	// probe targets, else the grid hosts 0-OS itself requires (zosbase's
	// internet check; runmode's prod).
	UplinkTargets []string `json:"uplink_targets,omitempty"`
}

// IPConfig is one ip= token.
type IPConfig struct {
	Device   string           `json:"device,omitempty"` // "" = any/all links
	Method   Method           `json:"method"`
	Address  netip.Prefix     `json:"address,omitempty"`
	Peer     netip.Addr       `json:"peer,omitempty"`
	Gateway  netip.Addr       `json:"gateway,omitempty"`
	Hostname string           `json:"hostname,omitempty"` // with DHCP: the name to send (RFC 2132 option 12)
	DNS      []netip.Addr     `json:"dns,omitempty"`
	MTU      int              `json:"mtu,omitempty"`
	MAC      net.HardwareAddr `json:"mac,omitempty"`
}

// WantsDHCP4 reports whether the method runs a DHCPv4 client.
func (c IPConfig) WantsDHCP4() bool { return c.Method == MethodDHCP || c.Method == MethodOn }

// WantsRA reports whether the method waits for Router Advertisements
// (SLAAC, and DHCPv6 when the RA's M/O flags say so).
func (c IPConfig) WantsRA() bool {
	return c.Method == MethodAuto6 || c.Method == MethodEither6 || c.Method == MethodOn
}

// WantsDHCP6 reports whether the method runs a DHCPv6 client regardless of
// the RA flags (either6 starts it at once, beside SLAAC).
func (c IPConfig) WantsDHCP6() bool { return c.Method == MethodDHCP6 || c.Method == MethodEither6 }

// VLAN is one vlan= token.
type VLAN struct {
	Name   string `json:"name"`
	Parent string `json:"parent"`
	ID     int    `json:"id"`
}

// Bond is one bond= token: NAME:PORT,PORT[:OPTIONS[:MTU]]
// (dracut.cmdline(7)). A port is an interface name or a MAC address
// (lower case, colon-separated), so an image need not know the kernel's
// names.
type Bond struct {
	Name  string   `json:"name"`
	Ports []string `json:"ports"`
	// Options are the bonding driver's options, in the order given
	// (mode=802.3ad, miimon=100, ...): the kernel's own names and
	// values (Documentation/networking/bonding.rst).
	Options []BondOption `json:"options,omitempty"`
	MTU     int          `json:"mtu,omitempty"`
}

// BondOption is one bonding option, name=value.
type BondOption struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Option returns the last value given for the option name, or "".
func (b Bond) Option(name string) string {
	v := ""
	for _, o := range b.Options {
		if o.Name == name {
			v = o.Value
		}
	}
	return v
}

// Mode is the bond's mode= (the kernel's default, balance-rr, when not
// given, as dracut leaves it).
func (b Bond) Mode() string {
	if m := b.Option("mode"); m != "" {
		return m
	}
	return "balance-rr"
}

// WGPeer is one netinit.wg.peer= token.
type WGPeer struct {
	PublicKey string `json:"public_key"` // base64, 32 bytes
	Endpoint  string `json:"endpoint"`   // host:port, IPv6 in brackets
}

// Port is one element of netinit.allow=.
type Port struct {
	Port  uint16 `json:"port"`
	Proto Proto  `json:"proto"`
}

func (p Port) String() string { return strconv.Itoa(int(p.Port)) + "/" + p.Proto.String() }

// Defaults returns the Spec used when nothing is given.
func Defaults() *Spec {
	prod := runmode.For(runmode.Prod)
	return &Spec{
		Boot:    Boot{Timeout: DefaultTimeout, NTPPool: prod.NTP},
		Link:    Link{RATimeout: DefaultRATimeout, DHCP4Timeout: DefaultDHCP4Timeout},
		Overlay: Overlay{Ygg: YggAuto, YggMulticast: true, YggLANPeers: DefaultLANPeers, YggTakeBack: DefaultYggTakeBack, WG: WGAuto},
		Probe:   Probe{UplinkTargets: prod.ProbeTargets},
	}
}

// Clone returns a deep copy. A nil Spec clones to Defaults.
func (s *Spec) Clone() *Spec {
	if s == nil {
		return Defaults()
	}
	c := *s
	c.NextArgs = slices.Clone(s.NextArgs)
	c.NTP = slices.Clone(s.NTP)
	c.NTPPool = slices.Clone(s.NTPPool)
	c.BootIF = slices.Clone(s.BootIF)
	c.Ignore = slices.Clone(s.Ignore)
	c.IP = slices.Clone(s.IP)
	for i := range c.IP {
		c.IP[i].DNS = slices.Clone(c.IP[i].DNS)
		c.IP[i].MAC = slices.Clone(c.IP[i].MAC)
	}
	c.Nameserver = slices.Clone(s.Nameserver)
	c.VLANs = slices.Clone(s.VLANs)
	c.Bonds = slices.Clone(s.Bonds)
	for i := range c.Bonds {
		c.Bonds[i].Ports = slices.Clone(c.Bonds[i].Ports)
		c.Bonds[i].Options = slices.Clone(c.Bonds[i].Options)
	}
	c.YggPeers = slices.Clone(s.YggPeers)
	c.YggListen = slices.Clone(s.YggListen)
	c.WGPeers = slices.Clone(s.WGPeers)
	c.WGAddress = slices.Clone(s.WGAddress)
	c.WGAllowed = slices.Clone(s.WGAllowed)
	c.Allow = slices.Clone(s.Allow)
	c.ProbeTargets = slices.Clone(s.ProbeTargets)
	c.ProbeReflectors = slices.Clone(s.ProbeReflectors)
	c.UplinkTargets = slices.Clone(s.UplinkTargets)
	c.Given = slices.Clone(s.Given)
	return &c
}

// IsSet reports whether a key (its full canonical name, as in Given:
// "netinit.timeout", "ip", "BOOTIF") was given.
func (s *Spec) IsSet(key string) bool {
	_, found := slices.BinarySearch(s.Given, key)
	return found
}

// Nameservers are the nameserver= addresses, then the DNS of every ip=,
// without duplicates.
func (l *Link) Nameservers() []netip.Addr {
	var ns []netip.Addr
	add := func(as []netip.Addr) {
		for _, a := range as {
			if !slices.Contains(ns, a) {
				ns = append(ns, a)
			}
		}
	}
	add(l.Nameserver)
	for _, ip := range l.IP {
		add(ip.DNS)
	}
	return ns
}
