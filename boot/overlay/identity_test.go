package overlay

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/state"
)

func TestPeersOutsideOwn(t *testing.T) {
	own := []netip.Prefix{netip.MustParsePrefix("2001:db8:5::/64")}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "near.example":
			return []netip.Addr{netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8:5::9")}, nil
		case "far.example":
			return []netip.Addr{netip.MustParseAddr("2001:db8:6::9")}, nil
		}
		return nil, errors.New("no such host")
	}
	peers := []string{
		"tcp://[2001:db8:5::7]:9943",       // inside: dropped
		"tls://[2001:db8:6::7]:9944",       // outside
		"tcp://near.example:9943",          // resolves inside: dropped
		"tcp://far.example:9943",           // resolves outside
		"tcp://unknown.example:9943",       // does not resolve: kept
		"tcp://198.51.100.1:9943",          // IPv4: kept
		"tls://[::ffff:198.51.100.2]:9944", // v4-mapped: kept
	}
	kept, dropped := peersOutsideOwn(context.Background(), peers, own, lookup)
	if want := []string{peers[0], peers[2]}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	if want := []string{peers[1], peers[3], peers[4], peers[5], peers[6]}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if k, d := peersOutsideOwn(context.Background(), peers, nil, lookup); !slices.Equal(k, peers) || d != nil {
		t.Errorf("no own prefixes: kept %v dropped %v", k, d)
	}
}

func TestYggListen(t *testing.T) {
	pub := &state.NetworkStatus{PublicIPv6: true}
	hidden := &state.NetworkStatus{}
	given := []string{"tcp://[::1]:0"}
	for _, tc := range []struct {
		name   string
		listen []string
		st     *state.NetworkStatus
		want   []string
	}{
		{"public node: 0-OS's listeners", nil, pub, DefaultListen},
		{"hidden node: none", nil, hidden, nil},
		{"given wins on a hidden node", given, hidden, given},
		{"given wins on a public node", given, pub, given},
	} {
		if got := yggListen(tc.listen, tc.st); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOwnPrefixes(t *testing.T) {
	st := &state.NetworkStatus{Uplink: "eth0", Links: []state.LinkStatus{
		{Name: "eth0", Addrs: []state.AddrStatus{
			{Prefix: netip.MustParsePrefix("2001:db8:5::10/64"), Source: lease.SourceSLAAC, Public: true},
			{Prefix: netip.MustParsePrefix("fe80::1/64"), Source: lease.SourceLinkLocal},
			{Prefix: netip.MustParsePrefix("198.51.100.10/24"), Source: lease.SourceDHCP4, Public: true},
		}},
		{Name: "eth1", Addrs: []state.AddrStatus{{Prefix: netip.MustParsePrefix("2001:db8:9::10/64"), Public: true}}},
	}}
	if got := ownPrefixes(st); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("2001:db8:5::/64")}) {
		t.Fatalf("own prefixes %v", got)
	}
}

func TestHiddenOnIPv4(t *testing.T) {
	with := func(pub bool, uplink string, addrs ...state.AddrStatus) *state.NetworkStatus {
		return &state.NetworkStatus{Uplink: uplink, PublicIPv6: pub, Links: []state.LinkStatus{{Name: "eth0", Addrs: addrs}}}
	}
	dhcp := state.AddrStatus{Prefix: netip.MustParsePrefix("192.0.2.10/24"), Source: lease.SourceDHCP4}
	static := state.AddrStatus{Prefix: netip.MustParsePrefix("198.51.100.7/24"), Source: lease.SourceStatic}
	ll := state.AddrStatus{Prefix: netip.MustParsePrefix("fe80::1/64"), Source: lease.SourceLinkLocal}
	slaac := state.AddrStatus{Prefix: netip.MustParsePrefix("2001:db8::5/64"), Source: lease.SourceSLAAC, Public: true}
	for _, tc := range []struct {
		name string
		st   *state.NetworkStatus
		want bool
	}{
		{"IPv4 lease, no IPv6 yet", with(false, "eth0", ll, dhcp), true},
		{"static IPv4", with(false, "eth0", static), true},
		{"no uplink yet", with(false, "", dhcp), false},
		{"public IPv6 already", with(true, "eth0", dhcp, slaac), false},
		{"IPv6 only", with(false, "eth0", ll, slaac), false},
		{"an IPv4 the kernel had", with(false, "eth0", state.AddrStatus{Prefix: netip.MustParsePrefix("192.0.2.9/24"), Source: lease.SourceKernel}), false},
		{"lease on another link", &state.NetworkStatus{Uplink: "eth1", Links: []state.LinkStatus{{Name: "eth0", Addrs: []state.AddrStatus{dhcp}}}}, false},
	} {
		if got := hiddenOnIPv4(tc.st); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
