package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"reflect"
	"strings"
	"testing"
)

// switchLACPDU is an LACPDU frame hand-assembled, field by field, from
// IEEE 802.1AX-2014 section 6.4.2.3 (Figure 6-7), Ethernet header
// included: from port MAC 00:11:22:33:44:66 of a switch whose actor is
// system priority 0x8000, system 00:11:22:33:44:55, key 7, port
// priority 128, port 3, state 0x3f (active, short timeout, aggregatable,
// in sync, collecting, distributing); its partner (the node's Linux
// bond: priority 65535, system 02:00:00:00:00:0a, key 9, port priority
// 255, port 1, state 0x3d); Collector max delay 0; Terminator; 50
// reserved octets. No published capture was at hand; the bytes were
// checked against another decoder: tcpdump 4.99.3 -vv -e, reading them
// as a pcap, prints "LACPv1, length 110" and the fields above.
const switchLACPDU = "0180c2000002" + "001122334466" + "8809" +
	"0101" + // subtype LACP, version 1
	"0114" + "8000" + "001122334455" + "0007" + "0080" + "0003" + "3f" + "000000" + // Actor Information
	"0214" + "ffff" + "02000000000a" + "0009" + "00ff" + "0001" + "3d" + "000000" + // Partner Information
	"0310" + "0000" + "000000000000000000000000" + // Collector Information
	"0000" + // Terminator
	"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000" // 50 reserved

// linuxBondLACPDU is an LACPDU as a real Linux bond sent it, captured in
// qemu/TestLACPFromLinuxBond (Debian's kernel 6.1.0-47-cloud-amd64,
// bonding in 802.3ad mode, lacp_rate fast, miimon 100, on a veth of
// 10 Gb/s full duplex), Ethernet header included: actor system priority
// 65535, system be:d8:bb:80:7a:de (the bond's MAC), key 15 (the Linux
// key: speed 10 Gb/s as 7, shifted, with the full-duplex bit), port
// priority 255, port 1, state 0x47 (active, short timeout, aggregatable,
// defaulted: it has heard no partner); partner all defaults (key 1).
const linuxBondLACPDU = "0180c2000002bed8bb807ade880901010114ffffbed8bb807ade000f00ff0001470000000214ffff000000000000000100ff0001000000000310000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

func TestParseLACPDULinuxBond(t *testing.T) {
	d, err := ParseLACPDU(mustHex(t, linuxBondLACPDU)[14:])
	if err != nil {
		t.Fatal(err)
	}
	want := LACPDU{Version: 1, ActorSystemPriority: 65535, ActorSystem: net.HardwareAddr{0xbe, 0xd8, 0xbb, 0x80, 0x7a, 0xde},
		ActorKey: 15, ActorPortPriority: 255, ActorPort: 1, ActorState: 0x47,
		PartnerSystem: net.HardwareAddr{0, 0, 0, 0, 0, 0}, PartnerKey: 1, PartnerState: 0}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
	if !d.Active() || !d.Aggregatable() || d.Collecting() || d.ActorState&StateDefaulted == 0 {
		t.Errorf("state bits of %#02x", d.ActorState)
	}
}

func TestParseLACPDU(t *testing.T) {
	f := mustHex(t, switchLACPDU)
	if len(f) != 14+LACPDULen {
		t.Fatalf("frame of %d bytes", len(f))
	}
	d, err := ParseLACPDU(f[14:])
	if err != nil {
		t.Fatal(err)
	}
	want := LACPDU{Version: 1, ActorSystemPriority: 0x8000, ActorSystem: net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, 0x55},
		ActorKey: 7, ActorPortPriority: 128, ActorPort: 3, ActorState: 0x3f,
		PartnerSystem: net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}, PartnerKey: 9, PartnerState: 0x3d}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
	if !d.Active() || !d.Aggregatable() || !d.Collecting() || !d.Distributing() {
		t.Errorf("state bits of %#02x", d.ActorState)
	}
	if got := d.Partner().String(); got != "00:11:22:33:44:55 key 7" {
		t.Errorf("partner %q", got)
	}
	// The parse does not alias the frame (the listener reuses its buffer).
	f[14+6] = 0xee
	if d.ActorSystem[0] != 0 {
		t.Errorf("ActorSystem aliases the frame")
	}
	// lacpFrame, which the lab's switch sends, is the same bytes except
	// the partner's priorities and port, which netinit does not read.
	g := lacpFrame(net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, 0x66}, want)
	h := mustHex(t, switchLACPDU)
	for _, off := range []int{14 + 24, 14 + 25, 14 + 34, 14 + 35, 14 + 36, 14 + 37} {
		g[off] = h[off]
	}
	if !bytes.Equal(g, h) {
		t.Errorf("lacpFrame\n%x\nwant\n%x", g, h)
	}
}

// A version 2 LACPDU (802.1AX-2014 section 6.4.2.4) carries more TLVs
// after the Collector's, where version 1 has its Terminator; it is read
// as version 1.
func TestParseLACPDUVersion2(t *testing.T) {
	b := mustHex(t, switchLACPDU)[14:]
	b[1] = 2
	b[58], b[59] = 4, 6 // Port Algorithm TLV
	b = append(b, make([]byte, 20)...)
	d, err := ParseLACPDU(b)
	if err != nil || d.Version != 2 || d.ActorKey != 7 {
		t.Errorf("%+v, %v", d, err)
	}
}

// Hostile LACPDUs: cut, other subtypes and versions, TLV types and
// lengths that move the fields, actor system IDs that name no system.
func TestParseLACPDUHostile(t *testing.T) {
	good := mustHex(t, switchLACPDU)[14:]
	with := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name, err string
		b         []byte
	}{
		{"empty", "0 octets", nil},
		{"cut before the reserved octets", "60 octets", good[:60]},
		{"one short", "109 octets", good[:109]},
		{"marker protocol", "subtype 2", with(0, 2)},
		{"version 0", "version 0", with(1, 0)},
		{"actor TLV type", "actor TLV type 2", with(2, 2)},
		{"actor TLV length", "actor TLV type 1 length 19", with(3, 19)},
		{"partner TLV type", "partner TLV type 1", with(22, 1)},
		{"partner TLV length", "partner TLV type 2 length 0", with(23, 0)},
		{"collector TLV length", "collector TLV type 3 length 20", with(43, 20)},
		{"no terminator", "without its Terminator", with(58, 1, 2)},
		{"actor system zeros", "all zeros", with(6, 0, 0, 0, 0, 0, 0)},
		{"actor system multicast", "01:80:c2:00:00:02 is a multicast", with(6, 1, 0x80, 0xc2, 0, 0, 2)},
		{"actor system broadcast", "multicast", with(6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
	} {
		_, err := ParseLACPDU(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
	// What is not read or is ignored on receipt: reserved octets,
	// padding after the 110 octets, a partner of all zeros (the switch
	// has not heard the node yet).
	for name, b := range map[string][]byte{
		"reserved set":  with(19, 0xff, 0xff, 0xff),
		"padded":        append(bytes.Clone(good), 0, 0, 0, 0),
		"no partner":    with(24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
		"priority zero": with(4, 0, 0),
	} {
		if _, err := ParseLACPDU(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseLACPDU(f *testing.F) {
	good := mustHex(f, switchLACPDU)[14:]
	f.Add(good)
	f.Add(mustHex(f, linuxBondLACPDU)[14:])
	f.Add(good[:60])
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseLACPDU(b)
		if err != nil {
			return
		}
		if len(b) < LACPDULen || b[0] != 1 || b[1] == 0 || len(d.ActorSystem) != 6 || d.ActorSystem[0]&1 != 0 ||
			bytes.Equal(d.ActorSystem, make([]byte, 6)) || len(d.PartnerSystem) != 6 {
			t.Fatalf("accepted %x as %+v", b, d)
		}
		// What was read is what lacpFrame writes back.
		e, err := ParseLACPDU(lacpFrame(d.ActorSystem, d)[14:])
		if err != nil || !reflect.DeepEqual(d, e) {
			t.Fatalf("%+v written and read back as %+v, %v", d, e, err)
		}
	})
}

func TestGroups(t *testing.T) {
	sw := func(last byte, key uint16) Partner {
		return Partner{System: net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, last}, Key: key}
	}
	for _, tc := range []struct {
		name  string
		heard map[string]Partner
		want  []Group
	}{
		{"none", nil, nil},
		{"one port", map[string]Partner{"eth0": sw(0x55, 7)}, nil},
		{"two ports one partner", map[string]Partner{"eth1": sw(0x55, 7), "eth0": sw(0x55, 7)},
			[]Group{{sw(0x55, 7), []string{"eth0", "eth1"}}}},
		{"same system, other key", map[string]Partner{"eth0": sw(0x55, 7), "eth1": sw(0x55, 8)}, nil},
		{"same key, other system", map[string]Partner{"eth0": sw(0x55, 7), "eth1": sw(0x56, 7)}, nil},
		{"two aggregations and a lone port", map[string]Partner{
			"eth3": sw(0x55, 7), "eth2": sw(0x56, 1), "eth0": sw(0x56, 1), "eth1": sw(0x55, 7), "eth4": sw(0x55, 9)},
			[]Group{{sw(0x56, 1), []string{"eth0", "eth2"}}, {sw(0x55, 7), []string{"eth1", "eth3"}}}},
		{"three ports", map[string]Partner{"enp2s0": sw(0x55, 7), "enp1s0": sw(0x55, 7), "enp3s0": sw(0x55, 7)},
			[]Group{{sw(0x55, 7), []string{"enp1s0", "enp2s0", "enp3s0"}}}},
	} {
		if got := Groups(tc.heard); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// lacpFrame is an Ethernet frame carrying d from src to the Slow
// Protocols address: what a switch sends (netinit itself sends no
// LACPDU).
func lacpFrame(src net.HardwareAddr, d LACPDU) []byte {
	b := make([]byte, 14+LACPDULen)
	copy(b, LACPAddr)
	copy(b[6:], src)
	be := binary.BigEndian
	be.PutUint16(b[12:], SlowProtocolsEtherType)
	p := b[14:]
	p[0], p[1] = lacpSubtype, max(d.Version, 1)
	p[2], p[3] = 1, 20
	be.PutUint16(p[4:], d.ActorSystemPriority)
	copy(p[6:12], d.ActorSystem)
	be.PutUint16(p[12:], d.ActorKey)
	be.PutUint16(p[14:], d.ActorPortPriority)
	be.PutUint16(p[16:], d.ActorPort)
	p[18] = d.ActorState
	p[22], p[23] = 2, 20
	copy(p[26:32], d.PartnerSystem)
	be.PutUint16(p[32:], d.PartnerKey)
	p[38] = d.PartnerState
	p[42], p[43] = 3, 16
	return b
}
