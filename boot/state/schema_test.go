package state_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// full is a state with every optional part filled in, as a daemon with
// both overlays running writes it.
func full() *state.State {
	hs := time.Unix(1700000000, 0).UTC()
	return &state.State{
		Schema: state.Schema, Phase: state.PhaseReady, Uplink: "eth0", UplinkReason: "bootif",
		PublicIPv6: false, PublicIPv6Reason: "no global IPv6 address and no IPv6 default route",
		Interfaces: []state.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", MTU: 1500, Carrier: true,
			Addresses: []state.Address{{CIDR: "192.0.2.57/24", Source: lease.SourceDHCP4, ValidLifetimeS: 3600},
				{CIDR: "fe80::5054:ff:fe12:3456/64", Source: lease.SourceLinkLocal}},
			DHCP4: "bound", DHCP4Renewals: 2, RA: "none",
			LLDP: &state.LLDP{ChassisID: "mac 02:00:00:00:00:01", SystemName: "sw-rack3", PortID: "Gi1/0/12",
				PortDescription: "node 7", PortVLAN: 100, ManagementAddress: "192.0.2.2", TTLS: 120, AgeS: 3},
			SpanningTree: &state.SpanningTree{Protocol: "stp", Root: "8000.02:00:00:00:00:01", ForwardDelayS: 15, FirstS: 2, AgeS: 1}}},
		Bonds: []state.Bond{{Name: "bond0", Mode: "802.3ad", Origin: "auto", PartnerSystem: "00:11:22:33:44:55", PartnerKey: 7,
			Ports: []state.BondPort{{Name: "eth1", MAC: "52:54:00:12:34:57", Carrier: true, State: "active", MIIStatus: "up", AggregatorID: 1,
				ActorState:   []string{"activity", "short_timeout", "aggregation", "synchronization", "collecting", "distributing"},
				PartnerState: []string{"activity", "aggregation", "synchronization", "collecting", "distributing"}, Bundled: true}}}},
		Routes: []state.Route{{Dst: "0.0.0.0/0", Via: "192.0.2.1", Dev: "eth0", Source: "dhcp4"}},
		DNS:    []string{"192.0.2.53"}, Search: []string{"lab.example"}, NTP: []string{"192.0.2.123"},
		Hostname: "node1",
		Yggdrasil: &state.Yggdrasil{Address: "200::1", Subnet: "300::/64", PublicKey: "ab",
			Peers: []state.YggdrasilPeer{{URI: "tcp://198.51.100.1:9943", Up: true, LatencyMS: 1.5}}, Identity: "own key in /keys"},
		WireGuard: &state.WireGuard{Interface: "wg0", PublicKey: "k", Addresses: []string{"2001:db8:77::2/64"},
			Peers: []state.WireGuardPeer{{PublicKey: "p", Endpoint: "198.51.100.2:51820", LastHandshake: &hs, RxBytes: 1, TxBytes: 2}}},
		Overlays:     &state.Overlays{Yggdrasil: true, YggdrasilReason: "no public IPv6", WireGuard: true, WireGuardReason: "no public IPv6"},
		Connectivity: &state.Connectivity{IPv4: state.Family{Verdict: "private", Evidence: []string{"x"}}, IPv6: state.Family{Verdict: "none", Evidence: []string{}}, Hidden: true, Probed: true, TookMS: 12},
		Firewall:     []string{"drop new inbound on ygg0"},
		Clock:        &state.Clock{Server: "192.0.2.123", OffsetMS: -3, Set: true, Method: "slew", Servers: []string{"192.0.2.123"}, Rounds: 2, LastSync: &hs, NextSync: &hs, Sources: []state.ClockSource{{Server: "192.0.2.123", OffsetMS: -3}}},
		Problems:     []string{"link eth1: no carrier"},
		Modules:      &state.Modules{Loaded: []string{"virtio_net"}, Builtin: []string{}, Failed: []string{}, Skipped: []string{}, TookMS: 40},
		TimingsMS:    map[string]int64{"modules": 40, "lease4": 300, "ready": 310},
		UpdatedAt:    time.Unix(1700000001, 0).UTC(),
		PID:          42,
	}
}

// The state the code writes matches docs/state.schema.json, which later
// stages may validate against.
func TestSchemaMatchesCode(t *testing.T) {
	b, err := json.Marshal(full())
	if err != nil {
		t.Fatal(err)
	}
	lab.ValidateState(t, b)
}

// A daemon whose Yggdrasil is handed to 0-OS's own writes a document the
// schema takes, with the handover and no Yggdrasil of netinit's.
func TestSchemaHandover(t *testing.T) {
	st := full()
	since := time.Unix(1700000000, 0).UTC()
	st.Yggdrasil = nil
	st.YggdrasilHandover = &state.YggdrasilHandover{To: "0-OS", Namespace: "ndmz", Interface: "ygg0",
		Address: "200:1234::1", Since: since, GoneSince: &since, TakeBackAfterS: 120}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	lab.ValidateState(t, b)
}

// The schema is not a rubber stamp: a wrong type and a missing required
// field are refused.
func TestSchemaRefuses(t *testing.T) {
	sch, err := jsonschema.NewCompiler().Compile(lab.RepoRoot(t) + "/docs/state.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(full())
	for _, bad := range []struct{ from, to string }{
		{`"phase":"ready"`, `"phase":7`},
		{`"uplink":"eth0",`, ``},
		{`"up":true`, `"up":"yes"`},
	} {
		doc := strings.Replace(string(b), bad.from, bad.to, 1)
		if doc == string(b) {
			t.Fatalf("%q not in the document", bad.from)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(v) == nil {
			t.Errorf("schema accepts %s", bad.to)
		}
	}
}
