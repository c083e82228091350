package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// Config is what a Watcher does.
type Config struct {
	// Mode is netinit.lldp=: listen (default), send, or off (no LLDP
	// socket; BPDUs are still heard).
	Mode spec.LLDPMode
	// Hostname is the node's name an LLDP announcement carries (send
	// mode); "" until known.
	Hostname func() string
	// Start is when netinit started (SpanningTree.FirstS).
	Start time.Time
	// Logf prints one event line.
	Logf console.Logf
	// Changed is called when a link's neighbour or spanning tree is
	// first heard, changes or expires (the engine publishes the status).
	Changed func()
}

// Watcher keeps what was heard on each link it watches, by link name.
// Watch runs its listener; the rest reads the table.
type Watcher struct {
	cfg Config

	mu    sync.Mutex
	links map[string]*heard
}

// heard is one link's table entry.
type heard struct {
	nb      *Neighbour
	nbAt    time.Time // the last LLDPDU
	said    string    // the neighbour as last said on the console
	saidAt  time.Time
	bpdu    *BPDU // the last BPDU
	bpduAt  time.Time
	firstAt time.Time // the first BPDU
	warned  map[string]bool
}

// New returns a Watcher.
func New(cfg Config) *Watcher {
	if cfg.Logf == nil {
		cfg.Logf = console.Discard
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	if cfg.Hostname == nil {
		cfg.Hostname = func() string { return "" }
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	return &Watcher{cfg: cfg, links: map[string]*heard{}}
}

func (w *Watcher) entry(link string) *heard {
	h := w.links[link]
	if h == nil {
		h = &heard{warned: map[string]bool{}}
		w.links[link] = h
	}
	return h
}

// Frame takes one Ethernet frame received on link at now: an LLDPDU or a
// BPDU is recorded, anything else ignored. A frame that does not parse is
// said once per link and kind.
func (w *Watcher) Frame(link string, frame []byte, now time.Time) {
	if len(frame) < 14 {
		return
	}
	dst, etype, payload := frame[:6], binary.BigEndian.Uint16(frame[12:14]), frame[14:]
	switch {
	case bytes.Equal(dst, LLDPAddr) && etype == LLDPEtherType && w.cfg.Mode != spec.LLDPOff:
		n, err := ParseLLDP(payload)
		if err != nil {
			w.warn(link, "lldp", "%s: LLDP frame from %s ignored: %v", link, net.HardwareAddr(frame[6:12]), err)
			return
		}
		w.lldp(link, n, now)
	case bytes.Equal(dst, STPAddr) && etype <= 1500: // 802.3 length, then LLC
		if int(etype) < len(payload) {
			payload = payload[:etype] // the rest is padding
		}
		b, err := ParseBPDU(payload)
		if err != nil {
			w.warn(link, "bpdu", "%s: BPDU from %s ignored: %v", link, net.HardwareAddr(frame[6:12]), err)
			return
		}
		w.mu.Lock()
		h := w.entry(link)
		first := h.firstAt.IsZero()
		if first {
			h.firstAt = now
		}
		h.bpdu, h.bpduAt = &b, now
		w.mu.Unlock()
		if first {
			w.cfg.Changed()
		}
	}
}

// lldp records a neighbour (one per link: the last heard), and says it
// when it is new or changed. TTL 0
// withdraws it (802.1AB section 9.2.7.7.1: a shutdown LLDPDU).
func (w *Watcher) lldp(link string, n Neighbour, now time.Time) {
	w.mu.Lock()
	h := w.entry(link)
	if n.TTL == 0 {
		gone := h.nb != nil
		h.nb, h.said = nil, ""
		w.mu.Unlock()
		if gone {
			w.cfg.Logf("%s: the switch withdrew its LLDP announcement", link)
			w.cfg.Changed()
		}
		return
	}
	h.nb, h.nbAt = &n, now
	say := n.String()
	// A neighbour that changes is said again at most once a minute: two
	// agents on one link (a hub, or a hostile host) take turns, and the
	// console would repeat them. The table keeps the last one heard.
	changed := say != h.said && (h.said == "" || now.Sub(h.saidAt) >= time.Minute)
	if changed {
		h.said, h.saidAt = say, now
	}
	w.mu.Unlock()
	if changed {
		w.cfg.Logf("%s: %s", link, say)
		w.cfg.Changed()
	}
}

func (w *Watcher) warn(link, kind, format string, args ...any) {
	w.mu.Lock()
	h := w.entry(link)
	said := h.warned[kind]
	h.warned[kind] = true
	w.mu.Unlock()
	if !said {
		w.cfg.Logf(format+" (said once)", args...)
	}
}

// Neighbour is link's LLDP neighbour at now; false when none was heard or
// its TTL has passed.
func (w *Watcher) Neighbour(link string, now time.Time) (Neighbour, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.links[link]
	if h == nil || h.nb == nil || now.Sub(h.nbAt) > h.nb.TTL {
		return Neighbour{}, false
	}
	return *h.nb, true
}

// SpanningTree is link's last BPDU and when the first one came; false
// when none did.
func (w *Watcher) SpanningTree(link string) (b BPDU, first time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.links[link]
	if h == nil || h.bpdu == nil {
		return BPDU{}, time.Time{}, false
	}
	return *h.bpdu, h.firstAt, true
}

// ForwardingAt is when link's switch port forwards at the latest, by
// what its BPDUs said: 2 x the forward delay after the first BPDU (the
// port went listening, then learning, when the link came up, and a
// designated port sends BPDUs from then on: 802.1D section 17.7); now
// when an RSTP port says it forwards. Zero when no BPDU came.
func (w *Watcher) ForwardingAt(link string) time.Time {
	b, first, ok := w.SpanningTree(link)
	switch {
	case !ok:
		return time.Time{}
	case b.Forwarding:
		return first
	}
	return first.Add(2 * b.ForwardDelay)
}

// FromState is the neighbour a state document shows (for its String).
func FromState(s *state.LLDP) Neighbour {
	n := Neighbour{ChassisID: s.ChassisID, SystemName: s.SystemName, PortID: s.PortID,
		PortDescription: s.PortDescription, PortVLAN: s.PortVLAN, TTL: time.Duration(s.TTLS) * time.Second}
	n.MgmtAddress, _ = netip.ParseAddr(s.ManagementAddress)
	return n
}

// Status is link's neighbour and spanning tree as the state shows them at
// now (nil when nothing was heard).
func (w *Watcher) Status(link string, now time.Time) (*state.LLDP, *state.SpanningTree) {
	var sl *state.LLDP
	if n, ok := w.Neighbour(link, now); ok {
		w.mu.Lock()
		at := w.links[link].nbAt
		w.mu.Unlock()
		sl = &state.LLDP{ChassisID: n.ChassisID, SystemName: n.SystemName, PortID: n.PortID,
			PortDescription: n.PortDescription, PortVLAN: n.PortVLAN,
			TTLS: int64(n.TTL / time.Second), AgeS: int64(now.Sub(at) / time.Second)}
		if n.MgmtAddress.IsValid() {
			sl.ManagementAddress = n.MgmtAddress.String()
		}
	}
	var st *state.SpanningTree
	if b, first, ok := w.SpanningTree(link); ok {
		w.mu.Lock()
		at := w.links[link].bpduAt
		w.mu.Unlock()
		st = &state.SpanningTree{Protocol: b.Protocol(), Root: b.Root, ForwardDelayS: int64(b.ForwardDelay / time.Second),
			Forwarding: b.Forwarding, FirstS: int64(first.Sub(w.cfg.Start) / time.Second), AgeS: int64(now.Sub(at) / time.Second)}
	}
	return sl, st
}
