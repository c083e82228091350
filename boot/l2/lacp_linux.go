package l2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
)

// lacpFilter passes what HearLACP reads: frames received (not sent by
// this host) for the Slow Protocols address with the Slow Protocols
// EtherType and the LACP subtype (not the Marker protocol's), the first
// 1518 bytes. The kernel drops the rest before they reach the socket.
// A socket bound to one EtherType is not given the host's own frames
// (only ETH_P_ALL taps are); the PACKET_OUTGOING test keeps it so if the
// socket ever listens to every EtherType, as Watch's does.
var lacpFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadAbsolute{Off: 0, Size: 4},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0180c200, SkipTrue: 9},
	bpf.LoadAbsolute{Off: 4, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0002, SkipTrue: 7},
	bpf.LoadAbsolute{Off: 12, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: SlowProtocolsEtherType, SkipTrue: 5},
	bpf.LoadAbsolute{Off: 14, Size: 1},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: lacpSubtype, SkipTrue: 3},
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
	bpf.RetConstant{Val: 1518},
	bpf.RetConstant{Val: 0},
})

// HearLACP listens on every link at once for at most window (and until
// ctx ends) for the switch's LACPDUs, and returns the partner each link
// heard: the first valid LACPDU's actor system and key. It returns as
// soon as every link has heard one; a link that heard none is absent from
// the result, and so is a link whose partner says its port is Individual
// (it cannot aggregate; said, and not listened to further). Each link's
// partner is said once on the console; a frame that does not parse (an
// all-zeros or multicast system ID among them) is dropped and said once
// per link. A link that cannot be listened on is said and not waited
// for.
//
// When to listen: a switch port in an active aggregation sends at the
// rate its partner's state asks for (802.1AX-2014 section 6.4.13: every
// 1 s for Short Timeout, 30 s for Long). When the port comes up its
// Receive machine's EXPIRED state takes Short Timeout for the partner
// for 3 s (section 6.4.12), so it sends at once; then, netinit saying
// nothing, the partner is defaulted, usually Long Timeout: every 30 s (a
// Linux bond does so, in qemu/TestLACPFromLinuxBond). So listen from the
// moment the links are set up; a link still down is listened to once it
// comes up.
//
// The sockets are opened before anything else runs, by the calling
// goroutine: the links are found in the calling thread's network
// namespace.
func HearLACP(ctx context.Context, links []string, window time.Duration, logf console.Logf) map[string]Partner {
	if logf == nil {
		logf = console.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	type conn struct {
		link string
		c    *packet.Conn
	}
	var conns []conn
	for _, link := range links {
		c, err := listenLACP(link)
		if err != nil {
			logf("%s: not listening for LACP: %v", link, err)
			continue
		}
		conns = append(conns, conn{link, c})
	}
	type hearing struct {
		link string
		p    Partner
		ok   bool // false: the link's listener failed
	}
	heard := make(chan hearing, len(conns))
	var wg sync.WaitGroup
	for _, cn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cn.c.Close()
			// Reading ends when ctx does: the deadline wakes it.
			stop := context.AfterFunc(ctx, func() { _ = cn.c.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
			p, ok := hearOne(ctx, cn.link, cn.c, logf)
			if ok || ctx.Err() == nil {
				heard <- hearing{cn.link, p, ok}
			}
		}()
	}
	got := map[string]Partner{}
wait:
	for range conns {
		select {
		case h := <-heard:
			if h.ok {
				got[h.link] = h.p
			}
		case <-ctx.Done():
			break wait
		}
	}
	cancel()
	wg.Wait()
	// A link heard while the wait ended.
	for len(heard) > 0 {
		if h := <-heard; h.ok {
			got[h.link] = h.p
		}
	}
	return got
}

// listenLACP opens link's LACP socket: SOCK_RAW for the Slow Protocols
// EtherType, filtered in the kernel, with the NIC asked to accept the
// Slow Protocols address (PACKET_ADD_MEMBERSHIP; a real NIC filters
// multicast it was not told about).
func listenLACP(link string) (*packet.Conn, error) {
	ifi, err := net.InterfaceByName(link)
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, SlowProtocolsEtherType, &packet.Config{Filter: lacpFilter})
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	if err := join(c, ifi, LACPAddr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// hearOne reads c until an LACPDU comes: from an aggregatable port
// (true) or an Individual one (false); or until ctx ends or reading
// fails (false). Frames are checked again here
// (the filter is the kernel's; a frame is believed only once parsed).
func hearOne(ctx context.Context, link string, c *packet.Conn, logf console.Logf) (Partner, bool) {
	said := map[string]bool{}
	once := func(kind, format string, args ...any) {
		if !said[kind] {
			said[kind] = true
			logf(format+" (said once)", args...)
		}
	}
	buf := make([]byte, 1518)
	for {
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, unix.ENETDOWN) && ctx.Err() == nil {
			// A packet socket bound to a link that is down, or goes
			// down, reports it once (sk_err); it receives again when
			// the link comes up. The engine may listen from the
			// moment it sets a link up, before the switch's port is:
			// that is when the switch sends.
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				logf("%s: listening for LACP: %v", link, err)
			}
			return Partner{}, false
		}
		f := buf[:n]
		if n < 14 || !bytes.Equal(f[:6], LACPAddr) || binary.BigEndian.Uint16(f[12:14]) != SlowProtocolsEtherType {
			continue
		}
		src := net.HardwareAddr(f[6:12])
		d, err := ParseLACPDU(f[14:])
		if err != nil {
			once("parse", "%s: LACP frame from %s ignored: %v", link, src, err)
			continue
		}
		if !d.Aggregatable() {
			logf("%s: LACP partner %s says its port %d is Individual: not aggregated", link, d.Partner(), d.ActorPort)
			return Partner{}, false
		}
		logf("%s: LACP partner %s (its port %d)", link, d.Partner(), d.ActorPort)
		return d.Partner(), true
	}
}
