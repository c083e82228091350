package l2

import (
	"encoding/binary"
	"fmt"
	"net"
	"time"
)

// STPAddr is the Bridge Group Address BPDUs are sent to (IEEE 802.1D
// section 7.12.3).
var STPAddr = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}

// MaxForwardDelay is 802.1D's upper bound of the forward delay (section
// 17.14, Table 17-1: 4..30 s): a BPDU that advertises more is believed
// only up to it, so a hostile one cannot hold the boot longer.
const MaxForwardDelay = 30 * time.Second

// BPDU is what a spanning-tree BPDU says that netinit uses.
type BPDU struct {
	// Version is 0 (STP, 802.1D-1998), 2 (RSTP, 802.1w) or 3 (MSTP).
	Version int
	// Root is the root bridge's ID, "8000.00:11:22:33:44:55".
	Root string
	// ForwardDelay is the time a port spends listening, and again
	// learning, before it forwards (bounded by MaxForwardDelay).
	ForwardDelay time.Duration
	// Forwarding: an RST BPDU whose flags say the sending port forwards
	// (802.1D-2004 section 9.3.3, flag bit 6); a classic configuration
	// BPDU never says it.
	Forwarding bool
}

// ParseBPDU parses a BPDU from the LLC payload of an 802.3 frame sent to
// STPAddr: DSAP 0x42, SSAP 0x42, UI (0x03), then the BPDU (802.1D-2004
// section 9.3): protocol identifier 0, version, type (0x00 configuration,
// 0x02 RST/MST, 0x80 topology change notification, which carries no
// timers and is refused), flags, root ID, root path cost, bridge ID, port
// ID, message age, max age, hello time, forward delay (1/256 s units).
func ParseBPDU(llc []byte) (BPDU, error) {
	if len(llc) < 3 || llc[0] != 0x42 || llc[1] != 0x42 || llc[2] != 0x03 {
		return BPDU{}, fmt.Errorf("BPDU: not LLC 42 42 03")
	}
	b := llc[3:]
	if len(b) < 4 || b[0] != 0 || b[1] != 0 {
		return BPDU{}, fmt.Errorf("BPDU: not protocol 0")
	}
	version, typ := int(b[2]), b[3]
	switch {
	case typ == 0x00 && len(b) >= 35:
	case typ == 0x02 && version >= 2 && len(b) >= 36:
	default:
		return BPDU{}, fmt.Errorf("BPDU: type %#02x version %d, %d bytes: no timers", typ, version, len(b))
	}
	fd := time.Duration(binary.BigEndian.Uint16(b[33:35])) * time.Second / 256
	if fd > MaxForwardDelay {
		fd = MaxForwardDelay
	}
	return BPDU{
		Version:      version,
		Root:         fmt.Sprintf("%04x.%s", binary.BigEndian.Uint16(b[5:7]), net.HardwareAddr(b[7:13])),
		ForwardDelay: fd,
		Forwarding:   typ == 0x02 && b[4]&(1<<5) != 0,
	}, nil
}

// Protocol is the BPDU's protocol in words.
func (b BPDU) Protocol() string {
	switch b.Version {
	case 0:
		return "stp"
	case 2:
		return "rstp"
	}
	return "mstp"
}
