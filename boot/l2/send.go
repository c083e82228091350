package l2

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/mdlayher/lldp"
)

// AnnounceEvery is how often netinit.lldp=send announces the node
// (802.1AB section 9.2.5.7, msgTxInterval's default); the TTL is four
// times it (msgTxHold 4), as the standard's defaults give.
const AnnounceEvery = 30 * time.Second

// Announcement is the Ethernet frame netinit.lldp=send transmits on a
// link: chassis ID the link's MAC address (subtype 4), port ID the
// link's name (subtype 5, interface name), TTL 120 s, the node's hostname
// as system name when it has one, and "netinit" as system description.
// Nothing else: no address, no key, no node ID (a switch needs to know
// what is plugged into its port, not how to reach it).
func Announcement(mac net.HardwareAddr, ifname, hostname string) ([]byte, error) {
	opt := []*lldp.TLV{}
	if hostname != "" && len(hostname) <= MaxText {
		opt = append(opt, &lldp.TLV{Type: lldp.TLVTypeSystemName, Length: uint16(len(hostname)), Value: []byte(hostname)})
	}
	const desc = "netinit"
	opt = append(opt, &lldp.TLV{Type: lldp.TLVTypeSystemDescription, Length: uint16(len(desc)), Value: []byte(desc)})
	f := lldp.Frame{
		ChassisID: &lldp.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: mac},
		PortID:    &lldp.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(ifname)},
		TTL:       4 * AnnounceEvery,
		Optional:  opt,
	}
	pdu, err := f.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 14, 14+len(pdu))
	copy(b, LLDPAddr)
	copy(b[6:], mac)
	binary.BigEndian.PutUint16(b[12:], LLDPEtherType)
	b = append(b, pdu...)
	// Padded to Ethernet's minimum of 60 bytes (without the FCS): a
	// NIC pads what it sends, a veth does not, and lldpd drops a shorter
	// frame.
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b, nil
}
