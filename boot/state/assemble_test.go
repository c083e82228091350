package state

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
)

var (
	t0  = time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC) // sub-millisecond: the document truncates
	pfx = netip.MustParsePrefix
	ip  = netip.MustParseAddr
)

// dualStack is an engine status with both families on the uplink eth0,
// and a second link whose addresses must not reach the env form.
func dualStack() *NetworkStatus {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	return &NetworkStatus{
		Phase: PhaseReady, Uplink: "eth0", UplinkReason: "reachable",
		Candidates: []CandidateStatus{
			{Name: "eth0", Address: ip("192.0.2.57"), Gateways: []netip.Addr{ip("192.0.2.1"), ip("fe80::1")}, Probed: true, Reachable: true, Evidence: []string{"connected"}},
			{Name: "eth1", Probed: true},
		},
		Links: []LinkStatus{
			{Name: "eth0", MAC: mac, MTU: 1500, Carrier: true, DHCP4: "bound", RA: "received", PREF64: pfx("64:ff9b::/96"),
				Addrs: []AddrStatus{
					{Prefix: pfx("192.0.2.57/24"), Source: lease.SourceDHCP4, Valid: 3600 * time.Second},
					{Prefix: pfx("2001:db8::5/64"), Source: lease.SourceSLAAC, Public: true},
					{Prefix: pfx("fe80::5054:ff:fe12:3456/64"), Source: lease.SourceLinkLocal},
				}},
			{Name: "eth1", MTU: 1500, DHCP4: "selecting", RA: "soliciting", V6OnlyWait: 1800 * time.Second,
				Addrs: []AddrStatus{{Prefix: pfx("198.51.100.9/24"), Source: lease.SourceKernel}}},
		},
		Routes: []RouteStatus{
			{Dst: pfx("0.0.0.0/0"), Via: ip("192.0.2.1"), Dev: "eth0", Source: "dhcp4"},
			{Dst: pfx("::/0"), Via: ip("fe80::1"), Dev: "eth0", Source: "ra"},
			{Dst: pfx("2001:db8::/64"), Dev: "eth0", Source: "ra"},
			{Dst: pfx("0.0.0.0/0"), Via: ip("198.51.100.1"), Dev: "eth1", Source: "dhcp4"},
		},
		DNS:      []netip.Addr{ip("192.0.2.53"), ip("2001:db8::53"), ip("192.0.2.53")},
		Search:   []string{"lab.example", "lab.example"},
		NTP:      []netip.Addr{ip("192.0.2.123")},
		NTPNames: []string{"pool.example", "192.0.2.123"},
		Hostname: "it's", NAT64: pfx("64:ff9b::/96"),
		PublicIPv6: true, PublicIPv6Reason: "global address 2001:db8::5",
		Problems: []string{"p1"}, Timings: map[string]int64{"ready": 42},
		Updated: t0, PID: 7,
	}
}

// ipv6Only is an engine status with IPv6 alone (RFC 8925: the DHCPv4
// server asked the link to stay IPv6-only).
func ipv6Only() *NetworkStatus {
	return &NetworkStatus{
		Phase: PhaseReady, Uplink: "eth0", UplinkReason: "first-default-route",
		Links: []LinkStatus{{Name: "eth0", MTU: 1500, Carrier: true, DHCP4: "ipv6-only", RA: "received", V6OnlyWait: 1800 * time.Second,
			Addrs: []AddrStatus{
				{Prefix: pfx("2001:db8:1::7/64"), Source: lease.SourceSLAAC, Public: true, Valid: 86400 * time.Second},
				{Prefix: pfx("2001:db8:1::1:7/128"), Source: lease.SourceDHCP6, Public: true},
				{Prefix: pfx("fe80::7/64"), Source: lease.SourceLinkLocal},
			}}},
		Routes:     []RouteStatus{{Dst: pfx("::/0"), Via: ip("fe80::1"), Dev: "eth0", Source: "ra"}},
		DNS:        []netip.Addr{ip("2001:db8:1::53")},
		PublicIPv6: true, PublicIPv6Reason: "global address 2001:db8:1::7",
		Updated: t0,
	}
}

func TestAssembleDualStack(t *testing.T) {
	ov := &OverlayStatus{
		Decision:  &Overlays{Yggdrasil: true, YggdrasilReason: "netinit.ygg=on", WireGuardReason: "netinit.wg=off"},
		Yggdrasil: &Yggdrasil{Address: "200:1::1", Subnet: "300:1::/64", PublicKey: "ab"},
		Firewall:  []string{"drop"},
		Problems:  []string{"o1"},
		Timings:   map[string]int64{"ygg_up": 50},
	}
	got := Assemble(dualStack(), ov)
	want := &State{
		Schema: Schema, Phase: PhaseReady, Uplink: "eth0", UplinkReason: "reachable",
		Candidates: []Candidate{
			{Name: "eth0", Address: "192.0.2.57", Gateways: []string{"192.0.2.1", "fe80::1"}, Probed: true, Reachable: true, Evidence: []string{"connected"}},
			{Name: "eth1", Gateways: []string{}, Probed: true},
		},
		PublicIPv6: true, PublicIPv6Reason: "global address 2001:db8::5",
		Interfaces: []Interface{
			{Name: "eth0", MAC: "52:54:00:12:34:56", MTU: 1500, Carrier: true, DHCP4: "bound", RA: "received", PREF64: "64:ff9b::/96",
				Addresses: []Address{
					{CIDR: "192.0.2.57/24", Source: lease.SourceDHCP4, ValidLifetimeS: 3600},
					{CIDR: "2001:db8::5/64", Source: lease.SourceSLAAC, Public: true},
					{CIDR: "fe80::5054:ff:fe12:3456/64", Source: lease.SourceLinkLocal},
				}},
			{Name: "eth1", MTU: 1500, DHCP4: "selecting", RA: "soliciting", IPv6OnlyPreferredS: 1800,
				Addresses: []Address{{CIDR: "198.51.100.9/24", Source: lease.SourceKernel}}},
		},
		Routes: []Route{
			{Dst: "0.0.0.0/0", Via: "192.0.2.1", Dev: "eth0", Source: "dhcp4"},
			{Dst: "::/0", Via: "fe80::1", Dev: "eth0", Source: "ra"},
			{Dst: "2001:db8::/64", Dev: "eth0", Source: "ra"},
			{Dst: "0.0.0.0/0", Via: "198.51.100.1", Dev: "eth1", Source: "dhcp4"},
		},
		DNS: []string{"192.0.2.53", "2001:db8::53"}, Search: []string{"lab.example"},
		NTP: []string{"192.0.2.123", "pool.example"}, Hostname: "it's", NAT64Prefix: "64:ff9b::/96",
		Overlays: ov.Decision, Yggdrasil: ov.Yggdrasil, Firewall: []string{"drop"},
		Problems:  []string{"p1", "o1"},
		TimingsMS: map[string]int64{"ready": 42, "ygg_up": 50},
		UpdatedAt: t0.Truncate(time.Millisecond), PID: 7,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("document:\n%+v\nwant:\n%+v", got, want)
	}

	const wantEnv = `# netinit state, schema 1; see /run/netinit/state.json
NETINIT_DNS='192.0.2.53 2001:db8::53'
NETINIT_GATEWAY4='192.0.2.1'
NETINIT_GATEWAY6='fe80::1'
NETINIT_HOSTNAME='it'\''s'
NETINIT_IPV4='192.0.2.57/24'
NETINIT_IPV6='2001:db8::5/64'
NETINIT_NTP='192.0.2.123 pool.example'
NETINIT_PHASE='ready'
NETINIT_PUBLIC_IPV6='1'
NETINIT_SCHEMA='1'
NETINIT_SEARCH='lab.example'
NETINIT_UPLINK='eth0'
NETINIT_UPLINK_NIC=''
NETINIT_UPLINK_VLAN=''
NETINIT_YGGDRASIL='200:1::1'
`
	if env := string(Env(dualStack(), ov)); env != wantEnv {
		t.Errorf("env:\n%s\nwant:\n%s", env, wantEnv)
	}
	text, servers, dropped := ResolvConf(dualStack())
	const wantResolv = "# written by netinit; see /run/netinit/state.json\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch lab.example\n"
	if text != wantResolv || servers != 2 || dropped != nil {
		t.Errorf("resolv.conf (%d servers, dropped %q):\n%s\nwant:\n%s", servers, dropped, text, wantResolv)
	}
}

func TestAssembleIPv6Only(t *testing.T) {
	n := ipv6Only()
	got := Assemble(n, nil)
	if got.Overlays != nil || got.Yggdrasil != nil || got.Connectivity != nil {
		t.Errorf("overlay parts without an overlay status: %+v", got)
	}
	if !reflect.DeepEqual(got.Interfaces[0].Addresses, []Address{
		{CIDR: "2001:db8:1::7/64", Source: lease.SourceSLAAC, Public: true, ValidLifetimeS: 86400},
		{CIDR: "2001:db8:1::1:7/128", Source: lease.SourceDHCP6, Public: true},
		{CIDR: "fe80::7/64", Source: lease.SourceLinkLocal},
	}) || got.Interfaces[0].DHCP4 != "ipv6-only" || got.Interfaces[0].IPv6OnlyPreferredS != 1800 {
		t.Errorf("eth0 %+v", got.Interfaces[0])
	}
	// Empty lists are [] in the document, never null.
	if got.Search == nil || got.NTP == nil || got.Problems == nil || got.TimingsMS == nil {
		t.Errorf("a nil list: search %v ntp %v problems %v timings %v", got.Search, got.NTP, got.Problems, got.TimingsMS)
	}
	env := string(Env(n, nil))
	for _, line := range []string{"NETINIT_IPV4=''\n", "NETINIT_IPV6='2001:db8:1::7/64 2001:db8:1::1:7/128'\n",
		"NETINIT_GATEWAY6='fe80::1'\n", "NETINIT_DNS='2001:db8:1::53'\n"} {
		if !strings.Contains(env, line) {
			t.Errorf("env lacks %q:\n%s", line, env)
		}
	}
	for _, key := range []string{"NETINIT_GATEWAY4=", "NETINIT_YGGDRASIL="} {
		if strings.Contains(env, key) {
			t.Errorf("env has %s on an IPv6-only node:\n%s", key, env)
		}
	}
	text, _, _ := ResolvConf(n)
	if want := "# written by netinit; see /run/netinit/state.json\nnameserver 2001:db8:1::53\n"; text != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", text, want)
	}
}

// TestResolvConfRechecks: a search domain that is not a name never
// reaches resolv.conf (issue 13: it would let the network add lines), and
// is said; at most three name servers (glibc's MAXNS).
func TestResolvConfRechecks(t *testing.T) {
	n := &NetworkStatus{
		DNS:    []netip.Addr{ip("192.0.2.53"), ip("2001:db8::53"), ip("192.0.2.54"), ip("192.0.2.55")},
		Search: []string{"x\nnameserver\t6.6.6.6", "lab.example", "\x1b[2J"},
	}
	text, servers, dropped := ResolvConf(n)
	const want = "# written by netinit; see /run/netinit/state.json\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 192.0.2.54\nsearch lab.example\n"
	if text != want || servers != 3 {
		t.Errorf("resolv.conf (%d servers):\n%s\nwant:\n%s", servers, text, want)
	}
	all := strings.Join(dropped, "\n")
	for _, w := range []string{`search domain "x\nnameserver\t6.6.6.6"`, `search domain "\x1b[2J"`} {
		if !strings.Contains(all, w) {
			t.Errorf("dropped %q does not name %s", dropped, w)
		}
	}
}

// TestPublisher: the overlay's status waits for the engine's first one;
// each publication rewrites state.json and state.env; resolv.conf comes
// from the engine's status alone, and an empty one never replaces the
// system's.
func TestPublisher(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "etc", "resolv.conf")
	p := &Publisher{StatePath: filepath.Join(dir, "run", "state.json"), ResolvConf: resolv}
	p.Overlay(&OverlayStatus{Yggdrasil: &Yggdrasil{Address: "200:1::1"}})
	if _, err := os.Stat(p.StatePath); !os.IsNotExist(err) {
		t.Fatalf("state written before the engine's status: %v", err)
	}
	empty := ipv6Only()
	empty.DNS = nil
	p.Network(empty)
	if _, err := os.Stat(resolv); !os.IsNotExist(err) {
		t.Errorf("resolv.conf without a name server written: %v", err)
	}
	st, err := Read(p.StatePath)
	if err != nil || st.Yggdrasil == nil || st.Yggdrasil.Address != "200:1::1" {
		t.Fatalf("state %+v, %v: want the overlay's part kept", st, err)
	}
	p.Network(dualStack())
	p.Overlay(&OverlayStatus{Problems: []string{"later"}})
	st, err = Read(p.StatePath)
	if err != nil || st.Uplink != "eth0" || st.Yggdrasil != nil || st.Problems[len(st.Problems)-1] != "later" {
		t.Fatalf("state %+v, %v", st, err)
	}
	env, err := os.ReadFile(filepath.Join(dir, "run", "state.env"))
	if err != nil || !strings.Contains(string(env), "NETINIT_IPV4='192.0.2.57/24'\n") || strings.Contains(string(env), "NETINIT_YGGDRASIL") {
		t.Errorf("state.env (%v):\n%s", err, env)
	}
	b, err := os.ReadFile(resolv)
	if err != nil || !strings.Contains(string(b), "nameserver 2001:db8::53\n") {
		t.Errorf("resolv.conf (%v):\n%s", err, b)
	}
}

// TestPublisherNamespaceResolvConf: a namespace's resolv.conf is created
// with the node's first one and then left to the namespace's own writer
// (0-OS's DHCP client in ndmz): never replaced, also when the node's
// changes.
func TestPublisherNamespaceResolvConf(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "etc", "resolv.conf")
	ndmz := filepath.Join(dir, "etc", "netns", "ndmz", "resolv.conf")
	p := &Publisher{ResolvConf: resolv, NamespaceResolvConf: []string{ndmz}}
	p.Network(dualStack())
	first, _ := os.ReadFile(resolv)
	if b, err := os.ReadFile(ndmz); err != nil || string(b) != string(first) || len(first) == 0 {
		t.Fatalf("ndmz's resolv.conf (%v):\n%s\nwant the node's:\n%s", err, b, first)
	}
	own := "# dhcpcd in ndmz\nnameserver 198.51.100.53\n"
	if err := os.WriteFile(ndmz, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	next := dualStack()
	next.DNS = next.DNS[:1]
	p.Network(next)
	if b, _ := os.ReadFile(resolv); string(b) == string(first) {
		t.Fatalf("the node's resolv.conf did not change:\n%s", b)
	}
	if b, _ := os.ReadFile(ndmz); string(b) != own {
		t.Errorf("ndmz's resolv.conf replaced:\n%s", b)
	}
}
