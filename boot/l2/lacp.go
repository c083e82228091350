package l2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// LACP (IEEE 802.1AX-2014, Link Aggregation Control Protocol) is heard,
// never spoken, here: for netinit.bond=auto netinit listens a few seconds
// on every NIC with carrier for the switch's LACPDUs, and the ports whose
// partner is one aggregation (same system, same key) become one 802.3ad
// bond, whose kernel driver then speaks LACP itself.
//
// The LACPDU is parsed by hand: it is a fixed 110-octet structure
// (802.1AX-2014 section 6.4.2.3, Figure 6-7) of which netinit reads ten
// fields. No kept Go library parses it without a heavy dependency:
// gopacket/layers has no Slow Protocols layer, and github.com/mdlayher
// (whose lldp and packet netinit uses) has none.

// Slow Protocols (IEEE 802.3 Annex 57A): the group address no 802.1D bridge
// forwards, the EtherType, and LACP's subtype in it (the Marker protocol
// is subtype 2).
var LACPAddr = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x02}

const (
	SlowProtocolsEtherType = 0x8809
	lacpSubtype            = 0x01
	// LACPDULen is a version 1 LACPDU from its subtype through the
	// 50 reserved octets after the Terminator TLV.
	LACPDULen = 110
)

// Actor and partner state bits (802.1AX-2014 section 6.4.2.3, the
// Actor_State field, bit 0 first).
const (
	StateActivity        = 1 << 0 // active LACP (else passive)
	StateTimeout         = 1 << 1 // short timeout (fast LACPDUs, 1 s)
	StateAggregation     = 1 << 2 // aggregatable (else Individual)
	StateSynchronization = 1 << 3 // in sync with the right aggregator
	StateCollecting      = 1 << 4
	StateDistributing    = 1 << 5
	StateDefaulted       = 1 << 6 // the sender uses defaulted partner information
	StateExpired         = 1 << 7 // the sender's receive machine is EXPIRED
)

// LACPDU is what one LACPDU says (802.1AX-2014 section 6.4.2.3): the
// sender is the actor, what it knows of the other end the partner.
type LACPDU struct {
	Version             uint8
	ActorSystemPriority uint16
	ActorSystem         net.HardwareAddr
	ActorKey            uint16
	ActorPortPriority   uint16
	ActorPort           uint16
	ActorState          uint8
	PartnerSystem       net.HardwareAddr // all zeros while the actor knows no partner
	PartnerKey          uint16
	PartnerState        uint8
}

var errLACPDU = errors.New("LACPDU")

// ParseLACPDU parses an LACPDU: b is the Ethernet payload after the
// 14-octet header, starting with the Slow Protocols subtype. It checks
// what tells where the fields are (the Actor, Partner and Collector TLVs'
// types and lengths, and for version 1 the Terminator) and that the actor
// names a system at all; the reserved octets are ignored on receipt, as
// the standard says. That is stricter than a bond's receive machine
// (Linux's reads the fields at their offsets, unchecked): a frame whose
// TLVs are not where the standard puts them is not believed, as a wrong
// bond would cost the node its network at boot. A version above 1 is read as version 1 (section
// 6.4.2.3: the version 1 TLVs come first, at the same offsets; version 2
// TLVs follow the Collector TLV).
func ParseLACPDU(b []byte) (LACPDU, error) {
	if len(b) < LACPDULen {
		return LACPDU{}, fmt.Errorf("%w: %d octets, want %d", errLACPDU, len(b), LACPDULen)
	}
	if b[0] != lacpSubtype {
		return LACPDU{}, fmt.Errorf("%w: Slow Protocols subtype %d, not LACP", errLACPDU, b[0])
	}
	if b[1] < 1 {
		return LACPDU{}, fmt.Errorf("%w: version %d", errLACPDU, b[1])
	}
	// Offsets into b: the Actor Information TLV at 2, Partner at 22,
	// Collector at 42, Terminator at 58 (then 50
	// reserved octets), each type then length.
	for _, t := range []struct {
		at        int
		typ, size byte
		name      string
	}{{2, 1, 20, "actor"}, {22, 2, 20, "partner"}, {42, 3, 16, "collector"}} {
		if b[t.at] != t.typ || b[t.at+1] != t.size {
			return LACPDU{}, fmt.Errorf("%w: %s TLV type %d length %d, want type %d length %d",
				errLACPDU, t.name, b[t.at], b[t.at+1], t.typ, t.size)
		}
	}
	if b[1] == 1 && (b[58] != 0 || b[59] != 0) {
		return LACPDU{}, fmt.Errorf("%w: version 1 without its Terminator TLV (type %d length %d)", errLACPDU, b[58], b[59])
	}
	be := binary.BigEndian
	d := LACPDU{
		Version:             b[1],
		ActorSystemPriority: be.Uint16(b[4:6]),
		ActorSystem:         net.HardwareAddr(bytes.Clone(b[6:12])),
		ActorKey:            be.Uint16(b[12:14]),
		ActorPortPriority:   be.Uint16(b[14:16]),
		ActorPort:           be.Uint16(b[16:18]),
		ActorState:          b[18],
		PartnerSystem:       net.HardwareAddr(bytes.Clone(b[26:32])),
		PartnerKey:          be.Uint16(b[32:34]),
		PartnerState:        b[38],
	}
	// The System ID is a MAC address of the actor's system (section
	// 6.3.2): all zeros names none, and a group address none that one
	// system owns. Either would group ports of unrelated senders.
	if bytes.Equal(d.ActorSystem, make([]byte, 6)) {
		return LACPDU{}, fmt.Errorf("%w: actor system ID is all zeros", errLACPDU)
	}
	if d.ActorSystem[0]&1 != 0 {
		return LACPDU{}, fmt.Errorf("%w: actor system ID %s is a multicast address", errLACPDU, d.ActorSystem)
	}
	return d, nil
}

// Aggregatable: the actor's port may join an aggregation (else it is
// Individual, section 6.4.2.3 Actor_State bit 2).
func (d LACPDU) Aggregatable() bool { return d.ActorState&StateAggregation != 0 }

// Active: the actor sends LACPDUs of its own accord (else it answers
// only an active partner).
func (d LACPDU) Active() bool { return d.ActorState&StateActivity != 0 }

// Collecting: the actor's port takes frames from the aggregation.
func (d LACPDU) Collecting() bool { return d.ActorState&StateCollecting != 0 }

// Distributing: the actor's port sends frames of the aggregation.
func (d LACPDU) Distributing() bool { return d.ActorState&StateDistributing != 0 }

// Partner is the switch end of a link as its LACPDUs name it: the
// actor's system ID and key. Links whose partners are equal are ports of
// one aggregation on the switch (802.1AX-2014 section 6.3.5: ports with
// the same key on one system can aggregate).
type Partner struct {
	System net.HardwareAddr
	Key    uint16
}

// Partner is the sender of d, as the node sees it.
func (d LACPDU) Partner() Partner { return Partner{System: d.ActorSystem, Key: d.ActorKey} }

// String is "00:11:22:33:44:55 key 7".
func (p Partner) String() string { return fmt.Sprintf("%s key %d", p.System, p.Key) }

// Group is links whose partner is one aggregation.
type Group struct {
	Partner Partner
	Links   []string // sorted
}

// Groups groups the links by partner: only partners heard on two or more
// links make a group (one link is no aggregation, it stays a plain NIC),
// and only links with the same system AND the same key (a switch gives
// each of its aggregations its own key). The groups are in the order of
// their first link's name.
func Groups(heard map[string]Partner) []Group {
	by := map[string]*Group{}
	for link, p := range heard {
		id := p.String()
		g := by[id]
		if g == nil {
			g = &Group{Partner: p}
			by[id] = g
		}
		g.Links = append(g.Links, link)
	}
	var gs []Group
	for _, g := range by {
		if len(g.Links) < 2 {
			continue
		}
		slices.Sort(g.Links)
		gs = append(gs, *g)
	}
	slices.SortFunc(gs, func(a, b Group) int { return strings.Compare(a.Links[0], b.Links[0]) })
	return gs
}
