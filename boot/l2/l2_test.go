package l2

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/spec"
)

// lldpdFrame is an LLDPDU as Debian's lldpd 1.0.16 sent it in
// TestLLDPFromLLDPD (system name sw-rack3, port Gi1/0/12 "rack3 node7",
// management 192.0.2.1, the Port VLAN ID TLV for VLAN 100, TTL 4 s: its
// tx-interval 1 s times tx-hold 4), Ethernet header included.
const lldpdFrame = "0180c200000ec6d4ae588bbb88cc020704c6d4ae588bbb0409074769312f302f3132060200040a0873772d7261636b330c5644656269616e20474e552f4c696e75782031322028626f6f6b776f726d29204c696e757820362e31382e34342d66632d763132373220233120534d5020505245454d50545f44594e414d4943204030207838365f36340e04009c0080100c0501c0000201020000000200080b7261636b33206e6f646537fe0900120f030100000000fe0900120f010080000036fe060080c20100640000"

// bridgeBPDU is a configuration BPDU as a Linux bridge with STP on
// (forward delay 15 s) sends it: 802.3 length 38, LLC 42 42 03, root and
// bridge 8000.02:00:00:00:00:01, port 8001, max age 20 s, hello 2 s,
// forward delay 15 s (0x0f00 / 256), padded to 60 bytes.
const bridgeBPDU = "0180c2000000020000000001002642420300000000008000020000000001000000008000020000000001800100001400" + "0200" + "0f00" + "0000000000000000"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLLDPReal(t *testing.T) {
	n, err := ParseLLDP(mustHex(t, lldpdFrame)[14:])
	if err != nil {
		t.Fatal(err)
	}
	if n.ChassisID != "mac c6:d4:ae:58:8b:bb" || n.PortID != "Gi1/0/12" || n.PortDescription != "rack3 node7" ||
		n.SystemName != "sw-rack3" || n.PortVLAN != 100 || n.MgmtAddress.String() != "192.0.2.1" || n.TTL != 4*time.Second {
		t.Errorf("%#v", n)
	}
}

// Hostile LLDPDUs: cut, lengths past the end, strings that are not
// printable text, out-of-range VLAN IDs, a withdrawn (TTL 0) one.
func TestParseLLDPHostile(t *testing.T) {
	good := mustHex(t, lldpdFrame)[14:]
	tlv := func(typ int, v ...byte) []byte {
		return append([]byte{byte(typ<<1) | byte(len(v)>>8), byte(len(v))}, v...)
	}
	head := append(append(tlv(1, 7, 'c', 'h'), tlv(2, 7, 'p', '1')...), tlv(3, 0, 120)...)
	frame := func(opt ...[]byte) []byte {
		b := append([]byte{}, head...)
		for _, o := range opt {
			b = append(b, o...)
		}
		return append(b, 0, 0)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
		want func(Neighbour) bool
	}{
		{"cut", good[:len(good)/2], false, nil},
		{"no end", head, false, nil},
		{"empty", nil, false, nil},
		{"length past the end", append(append([]byte{}, head...), 0x0a, 0xff, 'x'), false, nil},
		{"chassis not text", append(append(tlv(1, 7, 0x1b, '['), tlv(2, 7, 'p')...), append(tlv(3, 0, 1), 0, 0)...), false, nil},
		{"port not utf-8", append(append(tlv(1, 7, 'c'), tlv(2, 7, 0xff, 0xfe)...), append(tlv(3, 0, 1), 0, 0)...), false, nil},
		{"minimal", frame(), true, func(n Neighbour) bool { return n.ChassisID == "ch" && n.PortID == "p1" && n.SystemName == "" }},
		{"system name with a newline dropped", frame(tlv(5, 'a', '\n', 'b')), true, func(n Neighbour) bool { return n.SystemName == "" }},
		{"system name with trailing NULs", frame(tlv(5, 's', 'w', 0, 0)), true, func(n Neighbour) bool { return n.SystemName == "sw" }},
		{"system name too long", frame(tlv(5, []byte(strings.Repeat("a", 300))...)), true, func(n Neighbour) bool { return n.SystemName == "" }},
		{"VLAN 0", frame(tlv(127, 0x00, 0x80, 0xc2, 1, 0, 0)), true, func(n Neighbour) bool { return n.PortVLAN == 0 }},
		{"VLAN 4095", frame(tlv(127, 0x00, 0x80, 0xc2, 1, 0x0f, 0xff)), true, func(n Neighbour) bool { return n.PortVLAN == 0 }},
		{"PVID TLV too short", frame(tlv(127, 0x00, 0x80, 0xc2, 1, 0)), true, func(n Neighbour) bool { return n.PortVLAN == 0 }},
		{"PVID of another OUI", frame(tlv(127, 0x00, 0x12, 0x0f, 1, 0, 100)), true, func(n Neighbour) bool { return n.PortVLAN == 0 }},
		{"management address cut", frame(tlv(8, 5, 1, 192, 0)), true, func(n Neighbour) bool { return !n.MgmtAddress.IsValid() }},
		{"management address length 0", frame(tlv(8, 0)), true, func(n Neighbour) bool { return !n.MgmtAddress.IsValid() }},
		{"management address IPv6", frame(tlv(8, 17, 2, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)), true,
			func(n Neighbour) bool { return n.MgmtAddress.String() == "2001:db8::1" }},
		{"chassis MAC", append(append(tlv(1, 4, 2, 0, 0, 0, 0, 1), tlv(2, 3, 2, 0, 0, 0, 0, 2)...), append(tlv(3, 0, 9), 0, 0)...), true,
			func(n Neighbour) bool {
				return n.ChassisID == "mac 02:00:00:00:00:01" && n.PortID == "mac 02:00:00:00:00:02"
			}},
		{"withdrawn", append(append(tlv(1, 7, 'c'), tlv(2, 7, 'p')...), append(tlv(3, 0, 0), 0, 0)...), true,
			func(n Neighbour) bool { return n.TTL == 0 }},
	} {
		n, err := ParseLLDP(tc.b)
		if (err == nil) != tc.ok || tc.ok && !tc.want(n) {
			t.Errorf("%s: %+v %v", tc.name, n, err)
		}
	}
}

func TestParseBPDU(t *testing.T) {
	f := mustHex(t, bridgeBPDU)
	b, err := ParseBPDU(f[14 : 14+38])
	if err != nil || b.Version != 0 || b.ForwardDelay != 15*time.Second || b.Root != "8000.02:00:00:00:00:01" || b.Forwarding {
		t.Errorf("%+v %v", b, err)
	}
	// RSTP, forward delay 0xffff/256 s (capped at 30 s), forwarding flag.
	r := append([]byte{}, f[14:14+38]...)
	r[3+2], r[3+3], r[3+4] = 2, 0x02, 0x20|0x0c
	r = append(r, 0)
	r[3+33], r[3+34] = 0xff, 0xff
	if b, err := ParseBPDU(r); err != nil || b.Version != 2 || b.ForwardDelay != MaxForwardDelay || !b.Forwarding || b.Protocol() != "rstp" {
		t.Errorf("rstp: %+v %v", b, err)
	}
	for name, bad := range map[string][]byte{
		"not LLC":  append([]byte{0xaa, 0xaa, 0x03}, f[17:52]...),
		"TCN":      {0x42, 0x42, 0x03, 0, 0, 0, 0x80},
		"cut":      f[14:40],
		"protocol": append([]byte{0x42, 0x42, 0x03, 0, 1}, f[19:52]...),
		"RST v0":   append([]byte{0x42, 0x42, 0x03, 0, 0, 0, 0x02}, f[21:53]...),
		"empty":    nil,
	} {
		if b, err := ParseBPDU(bad); err == nil {
			t.Errorf("%s: %+v", name, b)
		}
	}
}

// The Watcher's table: a BPDU and an LLDPDU through Frame, the console
// lines (once, and again when the neighbour changes), expiry after the
// TTL, withdrawal, and where the port forwards.
func TestWatcherFrames(t *testing.T) {
	var l logs
	changed := 0
	start := time.Now()
	w := New(Config{Logf: l.logf, Changed: func() { changed++ }, Start: start})
	now := start.Add(2 * time.Second)
	w.Frame("eth0", mustHex(t, bridgeBPDU), now)
	w.Frame("eth0", mustHex(t, bridgeBPDU), now.Add(2*time.Second))
	if at := w.ForwardingAt("eth0"); !at.Equal(now.Add(30 * time.Second)) {
		t.Errorf("forwarding at %v, want first BPDU + 30 s", at.Sub(now))
	}
	if _, st := w.Status("eth0", now.Add(3*time.Second)); st == nil || st.ForwardDelayS != 15 || st.FirstS != 2 || st.AgeS != 1 || st.Protocol != "stp" {
		t.Errorf("stp status %+v", st)
	}
	lf := mustHex(t, lldpdFrame)
	w.Frame("eth0", lf, now)
	w.Frame("eth0", lf, now.Add(time.Second))
	if n, ok := w.Neighbour("eth0", now.Add(5*time.Second)); !ok || n.SystemName != "sw-rack3" {
		t.Errorf("neighbour %#v %v", n, ok)
	}
	if _, ok := w.Neighbour("eth0", now.Add(6*time.Second)); ok {
		t.Error("neighbour kept past its TTL (4 s)")
	}
	if _, ok := w.Neighbour("eth1", now); ok {
		t.Error("a neighbour on a link nothing was heard on")
	}
	// Another agent on the same link: recorded, but said again only a
	// minute after the first line.
	other := append([]byte{}, lf...)
	other[len(other)-3] = 101 // its port VLAN
	w.Frame("eth0", other, now.Add(2*time.Second))
	if n, _ := w.Neighbour("eth0", now.Add(2*time.Second)); n.PortVLAN != 101 {
		t.Errorf("the last neighbour heard is not kept: %+v", n)
	}
	w.Frame("eth0", lf, now.Add(3*time.Second))
	bad := append([]byte{}, lf...)
	bad = bad[:30]
	w.Frame("eth0", bad, now)
	w.Frame("eth0", bad, now)
	got := l.all()
	if len(got) != 2 || !strings.HasPrefix(got[0], "eth0: switch sw-rack3 port Gi1/0/12") || !strings.Contains(got[1], "LLDP frame from c6:d4:ae:58:8b:bb ignored") {
		t.Errorf("console %q", got)
	}
	// Listening is the default; off drops LLDP but still sees BPDUs.
	off := New(Config{Mode: spec.LLDPOff})
	off.Frame("eth0", lf, now)
	off.Frame("eth0", mustHex(t, bridgeBPDU), now)
	if _, ok := off.Neighbour("eth0", now); ok {
		t.Error("netinit.lldp=off recorded a neighbour")
	}
	if _, _, ok := off.SpanningTree("eth0"); !ok {
		t.Error("netinit.lldp=off dropped a BPDU")
	}
	w.Frame("eth0", other, now.Add(2*time.Minute))
	if got := l.all(); len(got) != 3 || !strings.Contains(got[2], "(untagged VLAN 101)") {
		t.Errorf("a change after a minute is not said: %q", got)
	}
	if changed != 3 {
		t.Errorf("changed %d times, want 3 (first BPDU, first neighbour, the change a minute later)", changed)
	}
}

// Announcement is an LLDPDU this package's own parser reads back.
func TestAnnouncement(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	b, err := Announcement(mac, "eth0", "node1")
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseLLDP(b[14:])
	if err != nil || n.ChassisID != "mac 02:00:00:00:00:09" || n.PortID != "eth0" || n.SystemName != "node1" || n.TTL != 120*time.Second {
		t.Errorf("%+v %v", n, err)
	}
}

func FuzzParseLLDP(f *testing.F) {
	f.Add(mustHex(f, lldpdFrame)[14:])
	f.Add([]byte{2, 7, 4, 0, 0, 0, 0, 0, 1, 4, 3, 5, 'e', 't', 'h', 6, 2, 0, 120, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseLLDP(b)
		if err != nil {
			return
		}
		for _, s := range []string{n.ChassisID, n.PortID, n.PortDescription, n.SystemName} {
			if len(s) > MaxText+len("mac ") {
				t.Fatalf("%d bytes of text", len(s))
			}
			if _, ok := text([]byte(s)); s != "" && !ok && !strings.HasPrefix(s, "mac ") && !strings.HasPrefix(s, "ip ") {
				t.Fatalf("unprintable %q", s)
			}
		}
		if n.PortVLAN < 0 || n.PortVLAN > 4094 {
			t.Fatalf("VLAN %d", n.PortVLAN)
		}
		_ = n.String()
	})
}

func FuzzParseBPDU(f *testing.F) {
	f.Add(mustHex(f, bridgeBPDU)[14 : 14+38])
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseBPDU(b); err == nil && (p.ForwardDelay < 0 || p.ForwardDelay > MaxForwardDelay) {
			t.Fatalf("forward delay %v", p.ForwardDelay)
		}
	})
}
