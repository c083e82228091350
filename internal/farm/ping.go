package farm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/threefoldtech/netinit/internal/lab"
)

// pingTimeout bounds one node's sweep; an echo request goes out every
// second to the targets that have not answered: the sweep starts as soon
// as every node has a peer, when the Yggdrasil tree is still forming and
// the first packets to a new destination wait for a path lookup.
const (
	pingTimeout  = 10 * time.Second
	pingAttempts = 10
)

// inNS opens an ICMPv6 socket in namespace name. A socket stays in the
// namespace it was created in, whatever thread uses it later.
func inNS(name string) (*icmp.PacketConn, error) {
	var c *icmp.PacketConn
	err := lab.In(name, func() (err error) {
		c, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	})
	return c, err
}

// pingFrom sends ICMPv6 echo requests from namespace ns to each of dst
// and reports which answered within pingTimeout. Invalid addresses are
// reported as not answering.
func pingFrom(ctx context.Context, ns string, dst []netip.Addr) ([]bool, error) {
	ok := make([]bool, len(dst))
	c, err := inNS(ns)
	if err != nil {
		return nil, fmt.Errorf("ping socket in %s: %w", ns, err)
	}
	defer c.Close()
	id := int(rand.Uint32() & 0xffff)
	send := func() {
		for i, d := range dst {
			if ok[i] || !d.IsValid() {
				continue
			}
			m := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: id, Seq: i, Data: []byte("netinit farm")}}
			b, _ := m.Marshal(nil)
			_, _ = c.WriteTo(b, &net.IPAddr{IP: d.AsSlice()})
		}
	}
	start := time.Now()
	end := start.Add(pingTimeout)
	if dl, has := ctx.Deadline(); has && dl.Before(end) {
		end = dl
	}
	sent := 0
	buf := make([]byte, 1500)
	for time.Now().Before(end) && ctx.Err() == nil {
		if sent < pingAttempts && time.Since(start) >= time.Duration(sent)*time.Second {
			send()
			sent++
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		m, err := icmp.ParseMessage(58, buf[:n]) // 58: ICMPv6 (RFC 4443)
		if err != nil || m.Type != ipv6.ICMPTypeEchoReply {
			continue
		}
		e, isEcho := m.Body.(*icmp.Echo)
		ia, isIP := from.(*net.IPAddr)
		if !isEcho || !isIP || e.ID != id || e.Seq < 0 || e.Seq >= len(dst) {
			continue
		}
		if a, good := netip.AddrFromSlice(ia.IP); good && a.Unmap() == dst[e.Seq] {
			ok[e.Seq] = true
		}
		if !containsFalse(ok, dst) {
			break
		}
	}
	return ok, nil
}

// containsFalse reports whether some valid destination has not answered.
func containsFalse(ok []bool, dst []netip.Addr) bool {
	for i, d := range dst {
		if d.IsValid() && !ok[i] {
			return true
		}
	}
	return false
}
