package ygg

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/yggdrasil-network/yggdrasil-go/src/core"
	"golang.org/x/crypto/blake2b"
)

// testBeacon is a beacon as yggdrasil-go's multicast module sends it
// (advertisement.go), for key k and TLS port.
func testBeacon(k key, port uint16) []byte {
	h, _ := blake2b.New512(nil)
	h.Write(k[:])
	sum := h.Sum(nil)
	b := binary.BigEndian.AppendUint16(nil, core.ProtocolVersionMajor)
	b = binary.BigEndian.AppendUint16(b, core.ProtocolVersionMinor)
	b = append(b, k[:]...)
	b = binary.BigEndian.AppendUint16(b, port)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sum)))
	return append(b, sum...)
}

func TestParseBeacon(t *testing.T) {
	k := farmKeys(1, 1)[0]
	src := netip.MustParseAddrPort("[fe80::1%eth0]:9001")
	good := testBeacon(k, 4321)
	bc, err := parseBeacon(good, src)
	if err != nil || bc.key != k || bc.addr.String() != "[fe80::1%eth0]:4321" {
		t.Fatalf("good beacon: %+v, %v", bc, err)
	}
	if _, err := parseBeacon(append(good, 1, 2, 3), src); err != nil {
		t.Errorf("trailing bytes (as yggdrasil-go allows): %v", err)
	}
	other := farmKeys(2, 1)[0]
	bad := func(name string, b []byte, src netip.AddrPort, want string) {
		t.Helper()
		if _, err := parseBeacon(b, src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	bad("short", good[:beaconHeader-1], src, "want at least")
	bad("truncated hash", good[:len(good)-1], src, "hash of 64 bytes")
	v := append([]byte(nil), good...)
	v[1]++
	bad("version", v, src, "protocol version")
	h := append(testBeacon(other, 4321)[:beaconHeader], good[beaconHeader:]...)
	bad("hash of another key", h, src, "does not match")
	bad("port 0", testBeacon(k, 0), src, "port 0")
	bad("global source", good, netip.MustParseAddrPort("[2001:db8::1]:9001"), "not an IPv6 link-local")
	bad("no zone", good, netip.MustParseAddrPort("[fe80::1]:9001"), "not an IPv6 link-local")
	bad("IPv4 source", good, netip.MustParseAddrPort("192.0.2.1:9001"), "not an IPv6 link-local")
}

func FuzzParseBeacon(f *testing.F) {
	f.Add(testBeacon(farmKeys(1, 1)[0], 4321))
	src := netip.MustParseAddrPort("[fe80::1%eth0]:9001")
	f.Fuzz(func(t *testing.T, b []byte) {
		bc, err := parseBeacon(b, src)
		if err == nil && (bc.addr.Port() == 0 || !bc.addr.Addr().IsLinkLocalUnicast()) {
			t.Fatalf("accepted %+v", bc)
		}
	})
}

func TestLANLink(t *testing.T) {
	static := map[string]string{"tls://[fe80::9%25eth0]:443": "tls://[fe80::9%25eth0]:443?key=00"}
	for _, c := range []struct {
		uri, zone string
	}{
		{"tls://[fe80::1%25eth0]:4321", "eth0"}, // called after a beacon
		{"tls://[fe80::2%25br0]:40000", "br0"},  // inbound on the LAN listener
		{"tls://[fe80::9%25eth0]:443", ""},      // configured: never a LAN peer
		{"tls://[2001:db8::1]:443", ""},
		{"tcp://198.51.100.2:12345", ""},
		{"tls://[fe80::1]:4321", ""},
		{"::", ""},
	} {
		_, zone, ok := lanLink(c.uri, static)
		if ok != (c.zone != "") || zone != c.zone {
			t.Errorf("%s: %q %v, want %q", c.uri, zone, ok, c.zone)
		}
	}
}
