package l2

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/pause"
	"github.com/threefoldtech/netinit/boot/spec"
)

// filter passes what Watch reads: frames received (not sent by this host)
// for the Bridge Group Address or LLDP's nearest-bridge address
// (01:80:c2:00:00:00 and :0e), the first 1518 bytes. The kernel drops the
// rest before they reach the socket.
var filter = mustAssemble([]bpf.Instruction{
	bpf.LoadAbsolute{Off: 0, Size: 4},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0180c200, SkipTrue: 6},
	bpf.LoadAbsolute{Off: 4, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0000, SkipTrue: 1},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x000e, SkipTrue: 3},
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
	bpf.RetConstant{Val: 1518},
	bpf.RetConstant{Val: 0},
})

func mustAssemble(insns []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(insns)
	if err != nil {
		panic(err)
	}
	return raw
}

// Watch listens on link until ctx ends: one AF_PACKET socket of type
// SOCK_RAW for every EtherType (ETH_P_ALL, so that a BPDU, an 802.3 frame
// with an LLC header, and a frame the bridge the link may be a port of
// would take are seen too), filtered in the kernel to the two group
// addresses, which the NIC is asked to accept (PACKET_ADD_MEMBERSHIP). In
// send mode it also announces the node on the link every 30 s. A socket
// that cannot be had is said once, and Watch returns.
func (w *Watcher) Watch(ctx context.Context, link string) {
	ifi, err := net.InterfaceByName(link)
	if err == nil {
		err = w.listen(ctx, ifi)
	}
	if err != nil && ctx.Err() == nil {
		w.warn(link, "socket", "%s: not listening to the switch (LLDP, spanning tree): %v", link, err)
	}
}

func (w *Watcher) listen(ctx context.Context, ifi *net.Interface) error {
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := join(c, ifi, STPAddr, LLDPAddr); err != nil {
		return err
	}
	done := make(chan struct{})
	defer func() { <-done }()
	actx, cancel := context.WithCancel(ctx)
	defer cancel() // before the wait above: a read error ends the announcements too
	if w.cfg.Mode == spec.LLDPSend {
		go func() {
			defer close(done)
			w.announce(actx, c, ifi)
		}()
	} else {
		close(done)
	}
	buf := make([]byte, 1518)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading: %w", err)
		}
		w.Frame(ifi.Name, buf[:n], time.Now())
	}
}

// join makes the NIC accept the group addresses (a real NIC filters
// multicast it was not told about; 802.1D bridges never forward them).
func join(c *packet.Conn, ifi *net.Interface, addrs ...net.HardwareAddr) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, a := range addrs {
			mr := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: uint16(len(a))}
			copy(mr.Address[:], a)
			if e := unix.SetsockoptPacketMreq(int(fd), unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); e != nil {
				serr = fmt.Errorf("joining %s: %w", a, e)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// announce sends the node's LLDPDU on ifi every AnnounceEvery until ctx
// ends (802.1AB section 9.2.5.7, msgTxInterval default 30 s). No
// shutdown LLDPDU: a link's listener also ends when the link moves onto
// the management bridge, and starts again at once; the switch ages the
// announcement out after its TTL.
func (w *Watcher) announce(ctx context.Context, c *packet.Conn, ifi *net.Interface) {
	dst := &packet.Addr{HardwareAddr: LLDPAddr}
	for {
		b, err := Announcement(ifi.HardwareAddr, ifi.Name, w.cfg.Hostname())
		if err == nil {
			// Ethernet header: packet.Raw sends the frame as given.
			_, err = c.WriteTo(b, dst)
		}
		if err != nil && ctx.Err() == nil {
			w.warn(ifi.Name, "send", "%s: sending LLDP: %v", ifi.Name, err)
		}
		if pause.For(ctx, AnnounceEvery) != nil {
			return
		}
	}
}
