package cmdline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/threefoldtech/netinit/boot/runmode"
)

// DefaultConfigPath is the config file in the image.
const DefaultConfigPath = "/etc/netinit/netinit.conf"

// Defaults of the keys that have one.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultRATimeout = 3 * time.Second
	// DefaultDHCP4Timeout is how long an uplink with complete IPv6 waits
	// for a DHCPv4 lease before it is ready without one.
	DefaultDHCP4Timeout = 3 * time.Second
	// DefaultLANPeers is netinit.ygg.lan_peers's default (ygg.DefaultLANPeers).
	DefaultLANPeers = 8
)

// Spec is what the command line and the config file ask for.
type Spec struct {
	Next            string           // netinit.next="PATH [ARG...]": the path (absolute)
	NextArgs        []string         // ... and its arguments
	Root            string           // netinit.root=: "tmpfs", "off", or "" (tmpfs when the next stage is zinit)
	RootSize        string           // netinit.root=tmpfs:SIZE ("" = 0-OS's 1536M)
	Test            string           // netinit.test=poweroff|panic|daemon-crash (test modes)
	Uplink          string           // netinit.uplink=IFNAME
	BootIF          net.HardwareAddr // BOOTIF=01-aa-bb-cc-dd-ee-ff or a plain MAC
	Ignore          []string         // netinit.ignore=glob,glob
	Timeout         time.Duration    // netinit.timeout=DUR (default 60s)
	RATimeout       time.Duration    // netinit.ra_timeout=DUR (default 3s, 0 for IPv4-only ip=)
	DHCP4Timeout    time.Duration    // netinit.dhcp4_timeout=DUR (default 3s)
	MTU             int              // netinit.mtu=N (68..65535); 0 = not set
	IP              []IPConfig       // every ip=
	Nameserver      []netip.Addr     // every nameserver= (Nameservers adds the DNS of the ip=)
	VLANs           []VLAN           // vlan=NAME:PARENT
	KeyDir          string           // netinit.keydir=PATH ("" = overlay default)
	Ygg             string           // netinit.ygg=auto|on|off|auto-inbound
	YggPeers        []string         // netinit.ygg.peers=uri,uri
	YggMulticast    bool             // netinit.ygg.multicast=on|off (default on)
	YggSeed         string           // netinit.ygg.seed=PATH
	YggListen       []string         // netinit.ygg.listen=uri,uri ("" = the default when the node has public IPv6)
	Identity        string           // netinit.identity=PATH: the 0-OS node identity seed file
	RunMode         runmode.Mode     // runmode= (0-OS): "" when not given
	VLANPriv        int              // vlan:priv= (0-OS): management VLAN ID, 0 = untagged
	VLANPub         int              // vlan:pub= (0-OS): public VLAN ID, 0 = untagged (recorded for later stages)
	YggLANPeers     int              // netinit.ygg.lan_peers=N (default 8; 0 = no bound)
	WG              string           // netinit.wg=auto|on|off
	WGPeers         []WGPeer         // netinit.wg.peer=KEY@HOST:PORT
	WGAddress       []netip.Prefix   // netinit.wg.address=cidr,cidr
	WGAllowed       []netip.Prefix   // netinit.wg.allowed=cidr,cidr (masked)
	Allow           []Port           // netinit.allow=9900/tcp,53/udp
	ProbeTargets    []string         // netinit.probe.targets=host:port,...
	ProbeReflectors []string         // netinit.probe.reflectors=host:port,...
	NTP             []string         // netinit.ntp=host,host
	Bridge          string           // netinit.bridge=NAME|off: the management bridge ("" = not given)

	// Given is the canonical names of the keys some source gave, sorted
	// (they keep their value when a later source is applied).
	Given []string
}

// IPConfig is one ip= token.
type IPConfig struct {
	Device   string // "" = any/all links
	Method   string // dhcp, dhcp6, auto6, either6, on, static, off (see the package doc)
	Address  netip.Prefix
	Peer     netip.Addr
	Gateway  netip.Addr
	Hostname string // with DHCP: the name to send (RFC 2132 option 12)
	DNS      []netip.Addr
	MTU      int
	MAC      net.HardwareAddr
}

// WantsDHCP4 reports whether the method runs a DHCPv4 client.
func (c IPConfig) WantsDHCP4() bool { return c.Method == "dhcp" || c.Method == "on" }

// WantsRA reports whether the method waits for Router Advertisements
// (SLAAC, and DHCPv6 when the RA's M/O flags say so).
func (c IPConfig) WantsRA() bool {
	return c.Method == "auto6" || c.Method == "either6" || c.Method == "on"
}

// WantsDHCP6 reports whether the method runs a DHCPv6 client regardless of
// the RA flags (either6 does it only when auto6 yields nothing).
func (c IPConfig) WantsDHCP6() bool { return c.Method == "dhcp6" || c.Method == "either6" }

// VLAN is one vlan= token.
type VLAN struct {
	Name, Parent string
	ID           int
}

// WGPeer is one netinit.wg.peer= token.
type WGPeer struct {
	PublicKey string // base64, 32 bytes
	Endpoint  string // host:port, IPv6 in brackets
}

// Port is one element of netinit.allow=.
type Port struct {
	Port  uint16
	Proto string // tcp or udp
}

func (p Port) String() string { return strconv.Itoa(int(p.Port)) + "/" + p.Proto }

// Problem is a token that was not applied, or a source that could not be
// read.
type Problem struct {
	// Source is "cmdline" or "FILE:LINE" ("FILE" alone for read errors).
	Source string
	// Token is the offending token exactly as it occurs in the input.
	Token string
	Err   error

	// key and val are the token as the parser split it, for Error.
	key, val string
	hasVal   bool
}

func (p Problem) Error() string {
	src := p.Source
	if src == "" {
		src = "cmdline"
	}
	if p.Err == nil {
		p.Err = errors.New("problem")
	}
	if p.Token == "" {
		return src + ": " + p.Err.Error()
	}
	if p.key == "" {
		p.key, p.val, p.hasVal = splitKV(p.Token)
	}
	return src + ": " + displayKV(p.key, p.val, p.hasVal) + ": " + p.Err.Error()
}

func (p Problem) Unwrap() error { return p.Err }

// displayKV renders a token as key="value" so that whitespace and control
// characters cannot garble a console line or a state file.
func displayKV(key, val string, hasVal bool) string {
	if needsQuote(key) {
		key = strconv.Quote(key)
	}
	if !hasVal {
		return key
	}
	return key + "=" + strconv.Quote(val)
}

func needsQuote(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '"' || r >= 0x7f {
			return true
		}
	}
	return false
}

// Defaults returns the Spec used when nothing is given.
func Defaults() *Spec {
	return &Spec{
		Timeout:      DefaultTimeout,
		RATimeout:    DefaultRATimeout,
		DHCP4Timeout: DefaultDHCP4Timeout,
		Ygg:          "auto",
		YggMulticast: true,
		YggLANPeers:  DefaultLANPeers,
		WG:           "auto",
	}
}

// Parse applies a kernel command line on top of Defaults.
func Parse(line string) (*Spec, []Problem) {
	return Merge(Defaults(), line)
}

// Merge returns a copy of base with the command line applied on top of it
// (base is not modified). A nil base means Defaults.
func Merge(base *Spec, line string) (*Spec, []Problem) {
	s := base.Clone()
	a := newApplier(s, false)
	for _, t := range lexCmdline(line) {
		a.token("cmdline", t)
	}
	s.finish()
	return s, a.problems
}

// ParseConfig applies a config file on top of Defaults. name is used in the
// problems ("netinit.conf:7: ...").
func ParseConfig(r io.Reader, name string) (*Spec, []Problem) {
	s := Defaults()
	probs := s.applyConfig(r, name)
	return s, probs
}

// MergeConfig returns a copy of base with a config file applied on top.
func MergeConfig(base *Spec, r io.Reader, name string) (*Spec, []Problem) {
	s := base.Clone()
	probs := s.applyConfig(r, name)
	return s, probs
}

// Load reads the config file at path (none when path is ""), then applies
// the command line on top. A missing file is a problem unless path is
// DefaultConfigPath, which images need not ship.
func Load(path, line string) (*Spec, []Problem) {
	s := Defaults()
	var probs []Problem
	if path != "" {
		f, err := os.Open(path)
		switch {
		case err == nil:
			var p []Problem
			s, p = MergeConfig(s, f, path)
			probs = append(probs, p...)
			f.Close()
		case errors.Is(err, fs.ErrNotExist) && path == DefaultConfigPath:
		default:
			probs = append(probs, Problem{Source: path, Err: fmt.Errorf("reading config: %w", err)})
		}
	}
	s, p := Merge(s, line)
	return s, append(probs, p...)
}

// Clone returns a deep copy. A nil Spec clones to Defaults.
func (s *Spec) Clone() *Spec {
	if s == nil {
		return Defaults()
	}
	c := *s
	c.BootIF = slices.Clone(s.BootIF)
	c.NextArgs = slices.Clone(s.NextArgs)
	c.Ignore = slices.Clone(s.Ignore)
	c.IP = make([]IPConfig, len(s.IP))
	for i, ip := range s.IP {
		ip.DNS = slices.Clone(ip.DNS)
		ip.MAC = slices.Clone(ip.MAC)
		c.IP[i] = ip
	}
	if s.IP == nil {
		c.IP = nil
	}
	c.Nameserver = slices.Clone(s.Nameserver)
	c.VLANs = slices.Clone(s.VLANs)
	c.YggPeers = slices.Clone(s.YggPeers)
	c.YggListen = slices.Clone(s.YggListen)
	c.WGPeers = slices.Clone(s.WGPeers)
	c.WGAddress = slices.Clone(s.WGAddress)
	c.WGAllowed = slices.Clone(s.WGAllowed)
	c.Allow = slices.Clone(s.Allow)
	c.ProbeTargets = slices.Clone(s.ProbeTargets)
	c.ProbeReflectors = slices.Clone(s.ProbeReflectors)
	c.NTP = slices.Clone(s.NTP)
	c.Given = slices.Clone(s.Given)
	return &c
}

// Keys returns the keys that some source set, sorted, with their full
// command-line names ("netinit.timeout", "ip", "BOOTIF").
func (s *Spec) Keys() []string { return slices.Clone(s.Given) }

// IsSet reports whether a key (full name, as Keys returns it) was given.
func (s *Spec) IsSet(key string) bool {
	_, found := slices.BinarySearch(s.Given, key)
	return found
}

// give records that a source gave key.
func (s *Spec) give(key string) {
	if i, found := slices.BinarySearch(s.Given, key); !found {
		s.Given = slices.Insert(s.Given, i, key)
	}
}

// Nameservers are the nameserver= addresses, then the DNS of every ip=,
// without duplicates.
func (s *Spec) Nameservers() []netip.Addr {
	var ns []netip.Addr
	add := func(as []netip.Addr) {
		for _, a := range as {
			if !slices.Contains(ns, a) {
				ns = append(ns, a)
			}
		}
	}
	add(s.Nameserver)
	for _, ip := range s.IP {
		add(ip.DNS)
	}
	return ns
}

// finish derives the fields that depend on several keys. It runs after
// every source so that Merge on a finished Spec stays correct.
func (s *Spec) finish() {
	if !s.IsSet("netinit.ra_timeout") {
		s.RATimeout = DefaultRATimeout
		if ipv4Only(s.IP) {
			// ip=dhcp asks for IPv4 only: waiting for an RA would only
			// delay the boot.
			s.RATimeout = 0
		}
	}
	if s.RunMode != "" {
		// runmode= selects the grid's defaults for what no source set.
		d := runmode.For(s.RunMode)
		if !s.IsSet("netinit.ygg.peers") {
			s.YggPeers = d.YggPeers
		}
		if !s.IsSet("netinit.probe.targets") {
			s.ProbeTargets = d.ProbeTargets
		}
	}
}

// ipv4Only: there is some ip= and none of them asks for IPv6
// autoconfiguration.
func ipv4Only(ips []IPConfig) bool {
	if len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if ip.WantsRA() || ip.WantsDHCP6() {
			return false
		}
	}
	return true
}
