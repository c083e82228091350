package main

import (
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
)

// sampleState is a hidden node's state: IPv4 behind NAT, no public IPv6,
// Yggdrasil with one of two peers up, WireGuard to a gateway, firewall
// applied.
func sampleState(now time.Time) *state.State {
	hs := now.Add(-42 * time.Second)
	synced, next := now.Add(-90*time.Second), now.Add(570*time.Second)
	return &state.State{
		Schema: 1, Phase: state.PhaseReady, Uplink: "eth0", UplinkReason: "first-default-route",
		PublicIPv6Reason: "no global IPv6 address",
		Interfaces: []state.Interface{{Name: "eth0", MTU: 1500, Carrier: true,
			Addresses: []state.Address{{CIDR: "192.0.2.57/24", Source: lease.SourceDHCP4}}}},
		DNS: []string{"192.0.2.53"},
		Overlays: &state.Overlays{Yggdrasil: true, YggdrasilReason: "no public IPv6",
			WireGuard: true, WireGuardReason: "a peer is configured and no public IPv6"},
		Connectivity: &state.Connectivity{
			IPv4:   state.Family{Verdict: "private", Evidence: []string{"only private addresses (192.0.2.57: documentation)"}},
			IPv6:   state.Family{Verdict: "none", Evidence: []string{"no global-scope IPv6 address"}},
			Hidden: true, Probed: true, TookMS: 120,
		},
		Yggdrasil: &state.Yggdrasil{Address: "200:1234::1", Subnet: "300:1234::/64", PublicKey: "ab",
			Peers: []state.YggdrasilPeer{
				{URI: "tls://198.51.100.7:443", Up: true, LatencyMS: 12.345},
				{URI: "tcp://[2001:db8::9]:9651"},
			}, Identity: "0-os node identity /mnt/sda/seed.txt (format 1.1.0)"},
		WireGuard: &state.WireGuard{Interface: "wg0", PublicKey: "k", Addresses: []string{"10.10.0.2/32", "2001:db8:77::2/128"},
			Peers: []state.WireGuardPeer{
				{PublicKey: "GWkey=", Endpoint: "198.51.100.1:51820", LastHandshake: &hs, RxBytes: 3 << 20, TxBytes: 1536},
				{PublicKey: "Otherkey=", Endpoint: "198.51.100.2:51820"},
			}},
		FirewallStatus: &state.FirewallStatus{Applied: true, Interfaces: []string{"ygg0", "wg0"}, Allow: []string{"9900/tcp", "53/udp"}},
		Clock: &state.Clock{Server: "0.pool.ntp.org", OffsetMS: -12, Set: true, Method: "slew", Pool: true, Rounds: 3,
			LastSync: &synced, NextSync: &next},
		UpdatedAt: now,
	}
}

func renderString(st *state.State, now time.Time) string {
	var b strings.Builder
	render(&b, st, now)
	return b.String()
}

// TestRenderOverlays: status answers the farmer's questions about the
// overlays and the verdict.
func TestRenderOverlays(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	out := renderString(sampleState(now), now)
	t.Logf("\n%s", out)
	for _, want := range []string{
		"verdict:     hidden node (no public IPv6), probed in 120ms",
		"ipv4:        private — only private addresses (192.0.2.57: documentation)",
		"ipv6:        none — no global-scope IPv6 address",
		"yggdrasil:   200:1234::1, subnet 300:1234::/64, peers 1/2 up",
		"  key: 0-os node identity /mnt/sda/seed.txt (format 1.1.0)",
		"tls://198.51.100.7:443    up  12.3 ms",
		"tcp://[2001:db8::9]:9651  down\n",
		"wireguard:   wg0 10.10.0.2/32 2001:db8:77::2/128",
		"peer GWkey= at 198.51.100.1:51820",
		"handshake 42s ago, received 3.0 MiB, sent 1.5 KiB",
		"peer Otherkey= at 198.51.100.2:51820",
		"no handshake yet, received 0 B, sent 0 B",
		"firewall:    applied on ygg0 wg0: open 9900/tcp 53/udp, the rest dropped",
		"clock:       slewed -12ms by 0.pool.ntp.org (pool), 1m30s ago; next in 9m30s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("line wider than 80 columns: %q", l)
		}
	}
}

// TestRenderOverlaysOff: overlays decided off, the firewall that failed,
// and a state without a decision each say so.
func TestRenderOverlaysOff(t *testing.T) {
	now := time.Now()
	st := sampleState(now)
	st.Yggdrasil, st.WireGuard = nil, nil
	st.Overlays = &state.Overlays{YggdrasilReason: "public IPv6 on eth0", WireGuardReason: "no peer configured"}
	st.FirewallStatus = nil
	out := renderString(st, now)
	for _, want := range []string{
		"yggdrasil:   off (public IPv6 on eth0)",
		"wireguard:   off (no peer configured)",
		"firewall:    none (no overlay of netinit's runs)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	st = sampleState(now)
	st.FirewallStatus = &state.FirewallStatus{Interfaces: []string{"ygg0"}, Error: "nftables: operation not permitted"}
	if out := renderString(st, now); !strings.Contains(out, "firewall:    NOT applied on ygg0: nftables: operation not permitted") {
		t.Errorf("a failed firewall is not said:\n%s", out)
	}

	st = sampleState(now)
	st.Clock = &state.Clock{Error: "no NTP server answered: 192.0.2.1: i/o timeout", Rounds: 1}
	if out := renderString(st, now); !strings.Contains(out, "clock:       NOT synced (last sync never): no NTP server answered: 192.0.2.1: i/o timeout\n") {
		t.Errorf("a failed clock round is not said:\n%s", out)
	}

	st = sampleState(now)
	next := now.Add(11 * time.Minute)
	st.Clock = &state.Clock{Server: "192.0.2.123", OffsetMS: -42, Measured: true, Rounds: 1, NextSync: &next}
	if out := renderString(st, now); !strings.Contains(out, "clock:       measured -42ms off by ntp 192.0.2.123, left to this host (netinit up sets no clock); next in 11m0s\n") {
		t.Errorf("a measured-only clock round is not said:\n%s", out)
	}
	st.Clock.Owner = "0-OS's ntpd (pid 812)"
	if out := renderString(st, now); !strings.Contains(out, "clock:       left to 0-OS's ntpd (pid 812); measured -42ms off by ntp 192.0.2.123; next in 11m0s\n") {
		t.Errorf("a clock left to 0-OS's ntpd is not said:\n%s", out)
	}

	st = &state.State{Schema: 1, Phase: state.PhaseOffline}
	out = renderString(st, now)
	for _, want := range []string{"verdict:     not probed", "yggdrasil:   not running (no overlay decision", "wireguard:   not running", "clock:       not kept by netinit"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestRenderHandover: a Yggdrasil handed to 0-OS's own instance says so,
// where it runs, and when netinit takes the key back once it is gone.
func TestRenderHandover(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := sampleState(now)
	st.Yggdrasil = nil
	st.YggdrasilHandover = &state.YggdrasilHandover{To: "0-OS", Namespace: "public", Interface: "ygg0",
		Address: "201:2345:6789:abcd:ef01:2345:6789:abcd", Since: now.Add(-time.Hour), TakeBackAfterS: 120}
	gone := now.Add(-30 * time.Second)
	st.YggdrasilHandover.GoneSince = &gone
	out := renderString(st, now)
	for _, want := range []string{
		"yggdrasil:   handed to 0-OS (ygg0 in netns public, since 2026-11-25T11:00:00Z)\n",
		"  it holds the node's address 201:2345:6789:abcd:ef01:2345:6789:abcd\n",
		"  gone since 2026-11-25T11:59:30Z; taken back at 2026-11-25T12:01:30Z\n",
		"  no peering of it seen (no TCP connection of its yggdrasil)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("line wider than 80 columns: %q", l)
		}
	}
	st.YggdrasilHandover.Peered = true
	if out := renderString(st, now); strings.Contains(out, "no peering") {
		t.Errorf("a peered instance said unpeered:\n%s", out)
	}
}

func TestBytesIEC(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := bytesIEC(n); got != want {
			t.Errorf("bytesIEC(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRenderSwitch: a link's LLDP neighbour and spanning tree, one line
// each.
func TestRenderSwitch(t *testing.T) {
	now := time.Now()
	st := sampleState(now)
	st.Interfaces[0].LLDP = &state.LLDP{ChassisID: "mac 02:00:00:00:00:01", SystemName: "sw-rack3", PortID: "Gi1/0/12",
		PortVLAN: 100, ManagementAddress: "192.0.2.2", TTLS: 120, AgeS: 3}
	st.Interfaces[0].SpanningTree = &state.SpanningTree{Protocol: "stp", Root: "8000.02:00:00:00:00:01", ForwardDelayS: 15, FirstS: 2, AgeS: 1}
	out := renderString(st, now)
	for _, want := range []string{
		"lldp:        eth0: switch sw-rack3 port Gi1/0/12 (untagged VLAN 100), management 192.0.2.2 (heard 3s ago, holds 120s)",
		"stp:         eth0: stp, forward delay 15s, root 8000.02:00:00:00:00:01 (first BPDU at 2s, last 1s ago)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// TestRenderBonds: a bond with its partner, each port with its LACP
// state in words.
func TestRenderBonds(t *testing.T) {
	now := time.Now()
	st := sampleState(now)
	st.Bonds = []state.Bond{{Name: "bond0", Mode: "802.3ad", Origin: "auto", PartnerSystem: "00:11:22:33:44:55", PartnerKey: 7,
		Ports: []state.BondPort{
			{Name: "eth0", MAC: "52:54:00:12:34:56", Carrier: true, State: "active", MIIStatus: "up", AggregatorID: 1, Bundled: true,
				ActorState: []string{"activity", "synchronization", "collecting", "distributing"}, PartnerState: []string{"activity"}},
			{Name: "eth1", MAC: "52:54:00:12:34:57", State: "backup", MIIStatus: "down", AggregatorID: 2}}}}
	out := renderString(st, now)
	for _, want := range []string{
		"bond:        bond0 802.3ad (auto), partner 00:11:22:33:44:55 key 7\n",
		"  port eth0 52:54:00:12:34:56: carrier, active, mii up, aggregator 1, bundled; actor activity,synchronization,collecting,distributing; partner activity\n",
		"  port eth1 52:54:00:12:34:57: no carrier, backup, mii down, aggregator 2, not bundled; actor (none); partner (none)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
