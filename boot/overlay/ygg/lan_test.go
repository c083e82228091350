package ygg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

// TestJoinNew: the beacon group is joined once per wanted link that is up
// and multicast, again only when the link is made anew (a new ifindex),
// and a failed join is tried again at the next round.
func TestJoinNew(t *testing.T) {
	sys := t.TempDir()
	link := func(name string, index int, flags string) {
		t.Helper()
		dir := filepath.Join(sys, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, v := range map[string]string{"ifindex": fmt.Sprintf("%d\n", index), "flags": flags + "\n"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	const upMulticast, down = "0x1003", "0x1002"
	link("eth0", 2, upMulticast)
	link("eth1", 3, upMulticast) // not wanted
	link("zos", 4, down)
	link("ygg0", 5, "0x10d1") // wanted by no pattern, up, no multicast
	wanted := func(n string) bool { return n == "eth0" || n == "zos" || n == "gone" }
	var calls []string
	fail := map[string]bool{}
	join := func(index int, name string) error {
		calls = append(calls, fmt.Sprintf("%s/%d", name, index))
		if fail[name] {
			return errors.New("no IPv6 on it yet")
		}
		return nil
	}
	round := func(joined map[string]int, want ...string) map[string]int {
		t.Helper()
		calls = nil
		joined = joinNew(sys, wanted, joined, join)
		if !slices.Equal(calls, want) {
			t.Fatalf("joins %v, want %v", calls, want)
		}
		return joined
	}
	j := round(nil, "eth0/2")
	j = round(j) // nothing new
	link("zos", 4, upMulticast)
	fail["zos"] = true
	j = round(j, "zos/4")
	fail["zos"] = false
	j = round(j, "zos/4") // tried again
	j = round(j)
	link("zos", 4, down) // a flap keeps the membership
	j = round(j)
	link("zos", 4, upMulticast)
	j = round(j)
	link("eth0", 7, upMulticast) // deleted and made anew
	j = round(j, "eth0/7")
	if err := os.RemoveAll(filepath.Join(sys, "eth0")); err != nil {
		t.Fatal(err)
	}
	j = round(j)
	if _, ok := j["eth0"]; ok || j["zos"] != 4 || len(j) != 1 {
		t.Fatalf("joined %v, want only zos/4", j)
	}
	link("eth0", 7, upMulticast) // back with the index it had: joined again
	round(j, "eth0/7")
}
