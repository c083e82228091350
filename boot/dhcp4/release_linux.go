package dhcp4

import (
	"context"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// releaseWait bounds sending the DHCPRELEASE.
const releaseWait = 2 * time.Second

// release gives the bound lease back and removes what was applied. RFC
// 2131 section 4.4.6 / table 5: DHCPRELEASE is unicast to the server that
// gave the lease, with ciaddr our address and its server identifier; no
// answer comes.
func (c *client) release() {
	cur := c.cur
	if cur == nil {
		return
	}
	err := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), releaseWait)
		defer cancel()
		xid, err := dhcpv4.GenerateTransactionID()
		if err != nil {
			return err
		}
		m, err := dhcpv4.New(
			dhcpv4.WithTransactionID(xid),
			dhcpv4.WithHwAddr(c.hw),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier(c.cid)),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
			dhcpv4.WithClientIP(cur.Addr.Addr().AsSlice()),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(cur.Server.AsSlice())),
			dhcpv4.WithBroadcast(false))
		if err != nil {
			return err
		}
		conn, err := listenUDP(ctx, c.o.Link)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetWriteDeadline(time.Now().Add(releaseWait))
		_, err = conn.WriteTo(m.ToBytes(), &net.UDPAddr{IP: cur.Server.AsSlice(), Port: nclient4.ServerPort})
		return err
	}()
	if err != nil {
		c.logf("DHCPRELEASE of %s to %s: %v", cur.Addr, cur.Server, err)
	} else {
		c.logf("released %s to %s", cur.Addr, cur.Server)
	}
	c.unapply()
	c.cur = nil
}
