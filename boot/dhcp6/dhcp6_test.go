package dhcp6

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

func TestDUIDStable(t *testing.T) {
	m := mac("52:54:00:12:34:56")
	d := DUID(m)
	if got, want := d.ToBytes(), []byte{0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}; string(got) != string(want) {
		t.Fatalf("DUID bytes % x, want % x", got, want)
	}
	if !DUID(mac("52:54:00:12:34:56")).Equal(d) {
		t.Fatal("DUID not stable")
	}
	if IAID(m) != [4]byte{0, 0x12, 0x34, 0x56} {
		t.Fatalf("IAID %x", IAID(m))
	}
}

func TestNextRT(t *testing.T) {
	for _, tc := range []struct {
		prev time.Duration
		p    params
		rnd  float64
		want time.Duration
	}{
		{0, solicitParams, 0.1, 1100 * time.Millisecond},
		{0, solicitParams, -0.1, 900 * time.Millisecond},
		{time.Second, requestParams, 0, 2 * time.Second},
		{20 * time.Second, requestParams, 0, 30 * time.Second},    // capped at REQ_MAX_RT
		{20 * time.Second, requestParams, 0.1, 33 * time.Second},  // MRT + RAND*MRT
		{400 * time.Second, renewParams, -0.1, 540 * time.Second}, // REN_MAX_RT 600 - 10%
		{0, renewParams, 0, 10 * time.Second},
	} {
		if got := nextRT(tc.prev, tc.p, tc.rnd); got != tc.want {
			t.Errorf("nextRT(%s, %s, %v) = %s, want %s", tc.prev, tc.p.name, tc.rnd, got, tc.want)
		}
	}
	for range 1000 {
		if r := rand01(); r < -0.1 || r > 0.1 {
			t.Fatalf("RAND %v out of [-0.1, 0.1]", r)
		}
	}
}

func TestRenewTimes(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		t1, t2, pref, valid time.Duration
		want1, want2        time.Duration
	}{
		{60 * s, 105 * s, 120 * s, 240 * s, 60 * s, 105 * s},
		{0, 0, 100 * s, 200 * s, 50 * s, 80 * s},           // server leaves it to us
		{90 * s, 60 * s, 100 * s, 200 * s, 50 * s, 80 * s}, // T1 > T2
		{0, 0, infinity, infinity, infinity, infinity},
		{time.Hour, 0, infinity, infinity, time.Hour, infinity},
		// Issue 13, the rebind storm: a deprecated address (preferred 0)
		// renews on its valid lifetime, not back to back.
		{0, 0, 0, time.Hour, 30 * time.Minute, 48 * time.Minute},
		{1 * s, 2 * s, 0, time.Hour, 60 * s, 96 * s},
		// Tiny server T1/T2 on a long lease: floored at 60 s / 96 s.
		{1 * s, 1 * s, time.Hour, 2 * time.Hour, 60 * s, 96 * s},
		{1 * s, 0, infinity, infinity, 60 * s, infinity},
		// A short lease is renewed in time all the same: the floor is
		// the client's own choice there (0.5 and 0.8 of preferred).
		{1 * s, 2 * s, 3 * s, 4 * s, 1500 * time.Millisecond, 2400 * time.Millisecond},
		// The lab's short server.
		{1 * s, 2 * s, 2 * s, 4 * s, 1 * s, 2 * s},
		{0, 0, 0, 1 * s, 1 * s, 1 * s},
	} {
		g1, g2 := renewTimes(tc.t1, tc.t2, tc.pref, tc.valid)
		if g1 != tc.want1 || g2 != tc.want2 {
			t.Errorf("renewTimes(%s, %s, %s, %s) = %s, %s; want %s, %s", tc.t1, tc.t2, tc.pref, tc.valid, g1, g2, tc.want1, tc.want2)
		}
	}
}

func reply(iaid [4]byte, status iana.StatusCode, addrs ...*dhcpv6.OptIAAddress) *dhcpv6.Message {
	m, _ := dhcpv6.NewMessage(dhcpv6.WithServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}),
		dhcpv6.WithDNS(net.ParseIP("2001:db8::53")), dhcpv6.WithDomainSearchList("lab.example"))
	m.MessageType = dhcpv6.MessageTypeReply
	ia := &dhcpv6.OptIANA{IaId: iaid, T1: time.Minute, T2: 2 * time.Minute}
	for _, a := range addrs {
		ia.Options.Add(a)
	}
	if status != iana.StatusSuccess {
		ia.Options.Add(&dhcpv6.OptStatusCode{StatusCode: status, StatusMessage: "no"})
	}
	m.AddOption(ia)
	return m
}

func TestParseReply(t *testing.T) {
	id := [4]byte{1, 2, 3, 4}
	good := &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::100"), PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour}
	b, err := ParseReply(reply(id, iana.StatusSuccess, good), id, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr != netip.MustParseAddr("2001:db8::100") || b.Valid != 2*time.Hour || b.Preferred != time.Hour ||
		b.T1 != time.Minute || b.T2 != 2*time.Minute || len(b.DNS) != 1 || len(b.Search) != 1 || b.ServerID == nil {
		t.Fatalf("%+v", b)
	}
	l := b.Report("eth0", "bound", netip.MustParseAddr("fe80::1"), time.Now())
	if l.Source != "dhcp6" || l.Addresses[0].Prefix.String() != "2001:db8::100/128" {
		t.Fatalf("%+v", l)
	}

	bad := &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::101"), PreferredLifetime: 3 * time.Hour, ValidLifetime: time.Hour}
	for name, tc := range map[string]struct {
		m   *dhcpv6.Message
		err error
	}{
		"other iaid":        {reply([4]byte{9}, iana.StatusSuccess, good), errNoAddrs},
		"no addrs avail":    {reply(id, iana.StatusNoAddrsAvail), errStatus},
		"preferred > valid": {reply(id, iana.StatusSuccess, bad), errNoAddrs},
		"empty IA":          {reply(id, iana.StatusSuccess), errNoAddrs},
	} {
		if _, err := ParseReply(tc.m, id, true, nil); !errors.Is(err, tc.err) {
			t.Errorf("%s: err %v, want %v", name, err, tc.err)
		}
	}
	// Information only: the refresh time has a floor of IRT_MINIMUM.
	m := reply(id, iana.StatusSuccess)
	m.AddOption(dhcpv6.OptInformationRefreshTime(time.Second))
	b, err = ParseReply(m, id, false, nil)
	if err != nil || b.Refresh != irtMinimum || b.Addr.IsValid() || len(b.DNS) != 1 {
		t.Fatalf("%+v %v", b, err)
	}
}

// TestParseReplyHostile (issue 13): name servers that are no server on
// the link and a search domain that would add a resolv.conf line are
// dropped and said, quoted.
func TestParseReplyHostile(t *testing.T) {
	id := [4]byte{1, 2, 3, 4}
	m := reply(id, iana.StatusSuccess, &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::100"), ValidLifetime: 600 * time.Second})
	m.UpdateOption(dhcpv6.OptDNS(net.ParseIP("::1"), net.ParseIP("fe80::1"), net.ParseIP("::ffff:192.0.2.53"), net.ParseIP("2001:db8::53")))
	dhcpv6.WithDomainSearchList("x\nnameserver\t6.6.6.6", "Lab.Example.")(m)
	ntp := func(s string) dhcpv6.Option { a := dhcpv6.NTPSuboptionSrvAddr(net.ParseIP(s)); return &a }
	m.AddOption(&dhcpv6.OptNTPServer{Suboptions: dhcpv6.Options{ntp("::1"), ntp("ff02::101"), ntp("2001:db8::123"), ntp("2001:db8::123")}})
	b, err := ParseReply(m, id, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.DNS) != "[2001:db8::53]" || fmt.Sprint(b.Search) != "[lab.example]" || fmt.Sprint(b.NTP) != "[2001:db8::123]" {
		t.Errorf("dns %v search %q ntp %v", b.DNS, b.Search, b.NTP)
	}
	if got := strings.Join(b.Dropped, "\n"); len(b.Dropped) != 6 || !strings.Contains(got, `search domain "x\nnameserver\t6.6.6.6"`) || !strings.Contains(got, "ntp server ::1") {
		t.Errorf("dropped:\n%s", got)
	}
}

// TestParseReplyOverlay (issue 29): an IA_NA address inside Yggdrasil's
// 200::/7 (its 300::/8 subnets included) or inside a protected WireGuard
// subnet is refused, and said; the next address of the IA that is outside
// them is taken.
func TestParseReplyOverlay(t *testing.T) {
	id := [4]byte{1, 2, 3, 4}
	wg := []netip.Prefix{netip.MustParsePrefix("2001:db8:ff::/64")}
	ia := func(a string) *dhcpv6.OptIAAddress {
		return &dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(a), PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour}
	}
	for _, a := range []string{"200:1:2::100", "3ff:1::1", "300:1:2:3::100", "2001:db8:ff::100"} {
		b, err := ParseReply(reply(id, iana.StatusSuccess, ia(a)), id, true, wg)
		if !errors.Is(err, errNoAddrs) || b.Addr.IsValid() || !strings.Contains(err.Error(), "inside the overlay's") {
			t.Errorf("%s: binding %+v, err %v; want it refused", a, b, err)
		}
	}
	b, err := ParseReply(reply(id, iana.StatusSuccess, ia("300:1:2:3::100"), ia("2001:db8:1::100")), id, true, wg)
	if err != nil || b.Addr != netip.MustParseAddr("2001:db8:1::100") || len(b.Dropped) != 1 || !strings.Contains(b.Dropped[0], "300:1:2:3::100: inside the overlay's 200::/7") {
		t.Fatalf("binding %+v, err %v", b, err)
	}
	// Without the tunnel subnet given, 2001:db8:ff::/64 is an address like any.
	if b, err := ParseReply(reply(id, iana.StatusSuccess, ia("2001:db8:ff::100")), id, true, nil); err != nil || !b.Addr.IsValid() {
		t.Fatalf("binding %+v, err %v", b, err)
	}
}

// mac is a helper for tests.
func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
