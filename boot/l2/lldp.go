// Package l2 listens to what the switch a link is plugged into says at the
// link layer, before any address is configured: LLDP (IEEE 802.1AB) tells
// which switch and port, and the port's VLAN; spanning-tree BPDUs (IEEE
// 802.1D/802.1w) tell that the port passes no traffic until it has gone
// through listening and learning, 2 x its forward delay. netinit records
// the neighbour per link (state.json, `netinit status`), says it on the
// console, waits for a spanning-tree port, and points at a VLAN mismatch
// when DHCP gets no answer. It transmits nothing unless netinit.lldp=send.
//
// Every byte of these frames comes from the wire: lengths are checked
// once, here, and every string is kept only when it is printable text of
// at most MaxText bytes (else the field is dropped); it is logged quoted.
package l2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mdlayher/lldp"
)

// LLDP's destination (802.1AB section 7.1: the nearest-bridge group
// address, which no 802.1D bridge forwards) and EtherType.
var (
	LLDPAddr        = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
	LLDPEtherType   = uint16(lldp.EtherType)
	errNoEtherFrame = errors.New("frame too short")
)

// MaxText bounds every string taken from a frame (802.1AB section 8.5:
// chassis ID, port ID, port description and system name are at most 255
// octets).
const MaxText = 255

// Neighbour is what the switch said about itself and the port.
type Neighbour struct {
	ChassisID       string        // "mac 00:11:22:33:44:55", "ip 192.0.2.1", or the switch's text
	PortID          string        // "Gi1/0/12", "mac ...", ...
	PortDescription string        // "" when not sent
	SystemName      string        // "" when not sent
	PortVLAN        int           // the port's VLAN ID for untagged frames (802.1Q PVID TLV); 0 unknown
	MgmtAddress     netip.Addr    // the switch's management address, if it is IPv4 or IPv6
	TTL             time.Duration // how long the information stays valid (0: the switch withdraws it)
}

// 802.1AB Annex E (IEEE 802.1 organizationally specific TLVs), OUI
// 00-80-C2, subtype 1: Port VLAN ID.
var oui8021 = [3]byte{0x00, 0x80, 0xc2}

const subtypePVID = 1

// ParseLLDP parses an LLDPDU (the Ethernet payload) with
// github.com/mdlayher/lldp (the mandatory chassis ID, port ID, TTL and
// End TLVs, in order) and decodes the optional TLVs netinit uses.
func ParseLLDP(b []byte) (Neighbour, error) {
	var f lldp.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return Neighbour{}, fmt.Errorf("LLDPDU: %w", err)
	}
	n := Neighbour{TTL: f.TTL}
	var ok bool
	if n.ChassisID, ok = idText(uint8(f.ChassisID.Subtype), f.ChassisID.ID, 4, 5); !ok {
		return Neighbour{}, fmt.Errorf("LLDPDU: chassis ID (subtype %d) is not printable text", f.ChassisID.Subtype)
	}
	if n.PortID, ok = idText(uint8(f.PortID.Subtype), f.PortID.ID, 3, 4); !ok {
		return Neighbour{}, fmt.Errorf("LLDPDU: port ID (subtype %d) is not printable text", f.PortID.Subtype)
	}
	for _, t := range f.Optional {
		v := t.Value
		switch t.Type {
		case lldp.TLVTypePortDescription:
			n.PortDescription, _ = text(v)
		case lldp.TLVTypeSystemName:
			n.SystemName, _ = text(v)
		case lldp.TLVTypeManagementAddress:
			// 802.1AB section 8.5.9: address string length (subtype
			// + address), IANA address family, address, ...
			if len(v) >= 2 && int(v[0]) >= 1 && len(v) >= 1+int(v[0]) && !n.MgmtAddress.IsValid() {
				n.MgmtAddress = ianaAddr(v[1], v[2:1+int(v[0])])
			}
		case lldp.TLVTypeOrganizationSpecific:
			if len(v) == 6 && [3]byte(v[:3]) == oui8021 && v[3] == subtypePVID {
				if id := int(binary.BigEndian.Uint16(v[4:6])); id >= 1 && id <= 4094 {
					n.PortVLAN = id
				}
			}
		}
	}
	return n, nil
}

// idText renders a chassis or port ID: a MAC address (subtype mac) or a
// network address (subtype addr) as such, any other subtype as the text
// it must be (interface names, locally assigned strings).
func idText(subtype uint8, id []byte, mac, addr uint8) (string, bool) {
	switch {
	case subtype == mac && len(id) == 6:
		return "mac " + net.HardwareAddr(id).String(), true
	case subtype == addr && len(id) >= 2:
		if a := ianaAddr(id[0], id[1:]); a.IsValid() {
			return "ip " + a.String(), true
		}
	}
	return text(id)
}

// ianaAddr is an address of IANA address family 1 (IPv4) or 2 (IPv6).
func ianaAddr(family byte, b []byte) netip.Addr {
	switch {
	case family == 1 && len(b) == 4:
		return netip.AddrFrom4([4]byte(b))
	case family == 2 && len(b) == 16:
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}

// text is b as a string when it is non-empty printable UTF-8 text of at
// most MaxText bytes (trailing NULs, which some switches send, cut).
func text(b []byte) (string, bool) {
	s := strings.TrimRight(string(b), "\x00")
	if s == "" || len(s) > MaxText || !utf8.ValidString(s) {
		return "", false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return s, true
}

// String is the neighbour in words, for the console: "switch sw-rack3
// port Gi1/0/12 (untagged VLAN 100)". The switch's strings are quoted
// where they could be mistaken for netinit's words.
func (n Neighbour) String() string {
	sw := n.SystemName
	if sw == "" {
		sw = n.ChassisID
	}
	s := "switch " + quote(sw) + " port " + quote(n.PortID)
	if n.PortDescription != "" && n.PortDescription != n.PortID {
		s += " " + fmt.Sprintf("%q", n.PortDescription)
	}
	if n.PortVLAN > 0 {
		s += fmt.Sprintf(" (untagged VLAN %d)", n.PortVLAN)
	}
	if n.MgmtAddress.IsValid() {
		s += ", management " + n.MgmtAddress.String()
	}
	return s
}

// quote leaves a plain token as it is and quotes anything else.
func quote(s string) string {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '\\' || r > '~' {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
