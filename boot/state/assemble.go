package state

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/atomicfile"
	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/dnsname"
)

// Assemble builds the document from the engine's status and the
// overlay's (nil when no overlay runs, or before it decided).
func Assemble(n *NetworkStatus, o *OverlayStatus) *State {
	st := &State{
		Schema:           Schema,
		Phase:            n.Phase,
		Uplink:           n.Uplink,
		UplinkReason:     n.UplinkReason,
		UplinkNIC:        n.UplinkNIC,
		UplinkVLAN:       n.UplinkVLAN,
		PublicIPv6:       n.PublicIPv6,
		PublicIPv6Reason: n.PublicIPv6Reason,
		Interfaces:       []Interface{},
		Routes:           []Route{},
		DNS:              addrStrings(n.DNS),
		Search:           dedupe(n.Search),
		NTP:              n.NTPServers(),
		Hostname:         n.Hostname,
		Problems:         append([]string{}, n.Problems...),
		Modules:          n.Modules,
		TimingsMS:        map[string]int64{},
		UpdatedAt:        n.Updated.UTC().Truncate(time.Millisecond),
		PID:              n.PID,
	}
	if n.NAT64.IsValid() {
		st.NAT64Prefix = n.NAT64.String()
	}
	for _, c := range n.Candidates {
		sc := Candidate{Name: c.Name, Gateways: addrStrings(c.Gateways), Probed: c.Probed, Reachable: c.Reachable,
			Evidence: slices.Clone(c.Evidence)}
		if c.Address.IsValid() {
			sc.Address = c.Address.String()
		}
		st.Candidates = append(st.Candidates, sc)
	}
	for k, v := range n.Timings {
		st.TimingsMS[k] = v
	}
	for _, l := range n.Links {
		ifc := Interface{Name: l.Name, MAC: l.MAC.String(), MTU: l.MTU, Carrier: l.Carrier, Addresses: []Address{},
			DHCP4: l.DHCP4, DHCP4Renewals: l.DHCP4Renewals, RA: l.RA, IPv6OnlyPreferredS: int64(l.V6OnlyWait / time.Second),
			LLDP: l.LLDP, SpanningTree: l.SpanningTree}
		if l.PREF64.IsValid() {
			ifc.PREF64 = l.PREF64.String()
		}
		for _, a := range l.Addrs {
			ifc.Addresses = append(ifc.Addresses, Address{CIDR: a.Prefix.String(), Source: a.Source, Public: a.Public,
				ValidLifetimeS: int64(a.Valid / time.Second)})
		}
		st.Interfaces = append(st.Interfaces, ifc)
	}
	for _, b := range n.Bonds {
		b.Ports = slices.Clone(b.Ports)
		st.Bonds = append(st.Bonds, b)
	}
	for _, r := range n.Routes {
		sr := Route{Dst: r.Dst.String(), Dev: r.Dev, Source: r.Source}
		if r.Via.IsValid() {
			sr.Via = r.Via.String()
		}
		st.Routes = append(st.Routes, sr)
	}
	if o == nil {
		return st
	}
	st.Overlays, st.Connectivity, st.Clock = o.Decision, o.Connectivity, o.Clock
	st.Firewall, st.FirewallStatus = slices.Clone(o.Firewall), o.FirewallStatus
	st.Yggdrasil, st.WireGuard = o.Yggdrasil, o.WireGuard
	st.YggdrasilHandover = o.YggHandover
	st.Problems = append(st.Problems, o.Problems...)
	for k, v := range o.Timings {
		st.TimingsMS[k] = v
	}
	return st
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return dedupe(out)
}

func dedupe(in []string) []string {
	out := []string{}
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Env renders the shell-sourceable form of the statuses, as klibc's
// /run/net-IFACE.conf is used by scripts. Values are single-quoted.
// Families are told apart by the addresses' type.
func Env(n *NetworkStatus, o *OverlayStatus) []byte {
	var v4, v6 []string
	for _, a := range n.UplinkAddrs() {
		if a.Prefix.Addr().Is4() {
			v4 = append(v4, a.Prefix.String())
		} else {
			v6 = append(v6, a.Prefix.String())
		}
	}
	pub := "0"
	if n.PublicIPv6 {
		pub = "1"
	}
	kv := map[string]string{
		"NETINIT_SCHEMA":      fmt.Sprint(Schema),
		"NETINIT_PHASE":       string(n.Phase),
		"NETINIT_UPLINK":      n.Uplink,
		"NETINIT_UPLINK_NIC":  n.UplinkNIC,
		"NETINIT_UPLINK_VLAN": vlanEnv(n.UplinkVLAN),
		"NETINIT_IPV4":        strings.Join(v4, " "),
		"NETINIT_IPV6":        strings.Join(v6, " "),
		"NETINIT_PUBLIC_IPV6": pub,
		"NETINIT_DNS":         strings.Join(addrStrings(n.DNS), " "),
		"NETINIT_SEARCH":      strings.Join(dedupe(n.Search), " "),
		"NETINIT_NTP":         strings.Join(n.NTPServers(), " "),
		"NETINIT_HOSTNAME":    n.Hostname,
	}
	for _, r := range n.Routes {
		if r.Dev != n.Uplink || r.Dst.Bits() != 0 {
			continue
		}
		via := ""
		if r.Via.IsValid() {
			via = r.Via.String()
		}
		if r.Dst.Addr().Is6() {
			kv["NETINIT_GATEWAY6"] = via
		} else {
			kv["NETINIT_GATEWAY4"] = via
		}
	}
	if o != nil && o.Yggdrasil != nil {
		kv["NETINIT_YGGDRASIL"] = o.Yggdrasil.Address
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# netinit state, schema 1; see /run/netinit/state.json\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(kv[k]))
	}
	return b.Bytes()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// vlanEnv is a VLAN ID for state.env, "" when untagged.
func vlanEnv(id int) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprint(id)
}

// ResolvConf renders resolv.conf from the engine's status alone: the
// uplink's name servers (both families: one never clobbers the other),
// at most three (glibc's MAXNS; the document keeps them all), and its
// search domains. A search domain that is not an RFC 1123 name would let
// the network add lines (issue 13): it is left out, and said in dropped.
// The name servers are addresses by type: nothing else can reach here.
func ResolvConf(n *NetworkStatus) (text string, servers int, dropped []string) {
	var b strings.Builder
	b.WriteString("# written by netinit; see /run/netinit/state.json\n")
	for _, ns := range addrStrings(n.DNS) {
		if servers++; servers > 3 {
			servers = 3
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	var search []string
	for _, d := range dedupe(n.Search) {
		if err := dnsname.Check(d); err != nil {
			dropped = append(dropped, fmt.Sprintf("search domain %q: %v", d, err))
			continue
		}
		search = append(search, d)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String(), servers, dropped
}

// Publisher is the one writer of the files later stages read: it keeps
// the latest status of the engine and of the overlay manager, and on each
// new one writes the assembled state.json, state.env beside it, and
// resolv.conf (from the engine's status only). Errors are logged, never
// fatal: the previous files stay intact.
type Publisher struct {
	StatePath  string // "" = not written
	ResolvConf string // "" = not written
	// NamespaceResolvConf are resolv.conf files of network namespaces
	// (/etc/netns/NAME/resolv.conf, which `ip netns exec NAME` mounts
	// over /etc/resolv.conf) that are created with the first content
	// written and never replaced: from then on they are the namespace's
	// own (0-OS's DHCP client in ndmz writes its lease's servers there
	// instead of into the node's file).
	NamespaceResolvConf []string
	Logf                console.Logf

	mu     sync.Mutex
	net    *NetworkStatus
	ov     *OverlayStatus
	resolv string // the resolv.conf content last written
}

// Network publishes the engine's status: the files are written before it
// returns (the boot hands off on the file's verdict).
func (p *Publisher) Network(n *NetworkStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.net = n
	p.writeResolvLocked(n)
	p.writeLocked()
}

// Overlay publishes the overlay manager's status. Before the engine's
// first status (the verdict) nothing is written: it is kept for then.
func (p *Publisher) Overlay(o *OverlayStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ov = o
	if p.net != nil {
		p.writeLocked()
	}
}

func (p *Publisher) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

func (p *Publisher) writeLocked() {
	if p.StatePath == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p.StatePath), 0o755); err != nil {
		p.logf("ERROR state: %v (previous state file left intact)", err)
		return
	}
	if err := Write(p.StatePath, Assemble(p.net, p.ov)); err != nil {
		p.logf("ERROR %v (previous state file left intact)", err)
		return // the env form is not written ahead of the document
	}
	if err := atomicfile.Write(EnvPath(p.StatePath), Env(p.net, p.ov), 0o644); err != nil {
		p.logf("ERROR state: write %s: %v (previous file left intact)", EnvPath(p.StatePath), err)
	}
}

// writeResolvLocked rewrites resolv.conf when its content changes; an
// empty one never replaces the one the system had.
func (p *Publisher) writeResolvLocked(n *NetworkStatus) {
	if p.ResolvConf == "" {
		return
	}
	text, servers, dropped := ResolvConf(n)
	if text == p.resolv || servers == 0 && p.resolv == "" {
		return
	}
	for _, d := range dropped {
		p.logf("resolv.conf: left out %s", d)
	}
	err := os.MkdirAll(filepath.Dir(p.ResolvConf), 0o755)
	if err == nil {
		err = atomicfile.Write(p.ResolvConf, []byte(text), 0o644)
	}
	if err != nil {
		p.logf("dns: %v", err)
		return
	}
	p.resolv = text
	for _, f := range p.NamespaceResolvConf {
		if _, err := os.Lstat(f); err == nil {
			continue
		}
		err := os.MkdirAll(filepath.Dir(f), 0o755)
		if err == nil {
			err = atomicfile.Create(f, []byte(text), 0o644)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			p.logf("dns: %v", err)
		}
	}
}

// EnvPath is where the env form of the state at path is written: path
// with .json replaced by .env.
func EnvPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".env"
}
