// Package firewall guards the overlay interfaces (ygg0, wg0): an overlay
// address is reachable from the whole overlay, so only the services a
// farmer allowed may be reached through it.
//
// It owns one nftables table, "inet netinit", written over netlink
// (google/nftables; no nft binary needed). Its only chain is
//
//	table inet netinit {
//	  chain input {
//	    type filter hook input priority 0; policy accept;
//	    iifname != "lo" iifname != "ygg0" ip6 daddr 200::/7 drop
//	    iifname != "lo" iifname != "wg0" ip6 daddr 2001:db8:77::5 drop
//	    iifname "ygg0" ct state established,related accept
//	    iifname "ygg0" icmpv6 type { ... } accept
//	    iifname "ygg0" tcp dport 9900 accept
//	    iifname "ygg0" drop
//	  }
//	}
//
// Packets to the overlay addresses (Owned) are dropped unless they come in
// on their overlay interface (or on lo: the node talking to itself): the
// kernel accepts a packet for any local address on any interface (the
// weak host model, RFC 1122 section 3.3.4.2), so without these rules a
// neighbour on the Ethernet could reach the services behind ygg0 by
// routing 200::/7 to the node, bypassing the iifname rules. Otherwise
// traffic on other interfaces, forwarded traffic and output are left
// alone. Interfaces are matched by name (iifname), so the rules hold for
// an interface created or re-created after Apply: the overlay manager
// applies them before it creates ygg0 and wg0.
package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/spec"
)

// Table and Chain name what Apply creates.
const (
	Table = "netinit"
	Chain = "input"
)

// Rules is what may come in on the overlay interfaces.
type Rules struct {
	Interfaces []string    // e.g. ygg0, wg0
	Allow      []spec.Port // new connections allowed in
	// Owned are the overlay destinations: a packet to one of them is
	// dropped unless it arrives on Interface (or lo).
	Owned []Owned
}

// Owned is a destination that only an overlay interface may deliver.
type Owned struct {
	Interface string
	Prefix    netip.Prefix // e.g. 200::/7 for ygg0, a wg0 address as /32 or /128
}

// icmpType is one ICMPv6 type let in unsolicited.
type icmpType struct {
	typ  uint8
	name string
}

// ICMPv6 that must not be dropped (RFC 4890 section 4.3.1): errors
// (most also match ct state related, but not all: e.g. a packet-too-big
// for a flow conntrack has forgotten) and echo request, which the
// Yggdrasil community and tools use to check reachability (section
// 4.3.1 lists echo request/reply as "must not drop" for a host too). NDP
// and MLD are not needed: ygg0 and wg0 are layer-3 (TUN) interfaces.
var icmpTypes = []icmpType{
	{1, "destination-unreachable"},
	{2, "packet-too-big"},
	{3, "time-exceeded"},
	{4, "parameter-problem"},
	{128, "echo-request"},
}

func (r Rules) check() error {
	if len(r.Interfaces) == 0 {
		return errors.New("no interfaces")
	}
	for _, i := range r.Interfaces {
		if i == "" || len(i) >= unix.IFNAMSIZ || strings.ContainsAny(i, "/ \x00") {
			return fmt.Errorf("bad interface name %q", i)
		}
	}
	for _, o := range r.Owned {
		if !o.Prefix.IsValid() || !slices.Contains(r.Interfaces, o.Interface) {
			return fmt.Errorf("bad overlay destination %s on %q", o.Prefix, o.Interface)
		}
	}
	for _, p := range r.Allow {
		if p.Port == 0 || (p.Proto != spec.TCP && p.Proto != spec.UDP) {
			return fmt.Errorf("bad port %v", p)
		}
	}
	return nil
}

// allow is r.Allow without duplicates, in order.
func (r Rules) allow() []spec.Port {
	var out []spec.Port
	seen := map[spec.Port]bool{}
	for _, p := range r.Allow {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Describe is the rule set in words, one line per rule, for the state.
func Describe(r Rules) []string {
	var out []string
	for _, o := range r.Owned {
		out = append(out, fmt.Sprintf("%s: drop packets to %s arriving on any other interface", o.Interface, o.Prefix.Masked()))
	}
	var names []string
	for _, t := range icmpTypes {
		names = append(names, t.name)
	}
	for _, i := range r.Interfaces {
		out = append(out, fmt.Sprintf("%s: accept established,related", i))
		out = append(out, fmt.Sprintf("%s: accept icmpv6 %s", i, strings.Join(names, ",")))
		for _, p := range r.allow() {
			out = append(out, fmt.Sprintf("%s: accept %s", i, p))
		}
		out = append(out, fmt.Sprintf("%s: drop everything else inbound", i))
	}
	return out
}

// Apply creates or replaces the table "inet netinit" with r, atomically:
// the deletion of the old table and the creation of the new one are one
// netlink batch, so there is no moment without rules.
func Apply(r Rules) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: netlink: %w", err)
	}
	return apply(c, r)
}

// Remove deletes the table "inet netinit" if it exists.
func Remove() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("firewall: netlink: %w", err)
	}
	return remove(c)
}

func remove(c *nftables.Conn) error {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}
	// Adding an existing table is a no-op; the add makes the delete
	// succeed when there is no table.
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: remove table inet %s: %w", Table, err)
	}
	return nil
}

func apply(c *nftables.Conn, r Rules) error {
	if err := r.check(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(t)
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     Chain,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &policy,
	})
	for _, rule := range rules(r) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: apply table inet %s: %w", Table, err)
	}
	return nil
}

// rules builds the expressions of every rule, in order.
func rules(r Rules) [][]expr.Any {
	var out [][]expr.Any
	for _, o := range r.Owned {
		out = append(out, cat(iifnameNot("lo"), iifnameNot(o.Interface), daddr(o.Prefix), drop()))
	}
	for _, i := range r.Interfaces {
		out = append(out, cat(iifname(i), ctEstablished(), accept()))
		for _, t := range icmpTypes {
			out = append(out, cat(iifname(i), l4proto(unix.IPPROTO_ICMPV6),
				[]expr.Any{
					// icmpv6 type: first byte of the transport header.
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{t.typ}},
				}, accept()))
		}
		for _, p := range r.allow() {
			proto := byte(unix.IPPROTO_TCP)
			if p.Proto == spec.UDP {
				proto = unix.IPPROTO_UDP
			}
			port := make([]byte, 2)
			binary.BigEndian.PutUint16(port, p.Port)
			out = append(out, cat(iifname(i), l4proto(proto),
				[]expr.Any{
					// th dport: bytes 2-3 of the TCP and UDP headers.
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
				}, accept()))
		}
		out = append(out, cat(iifname(i), drop()))
	}
	return out
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// iifname matches the input interface name, NUL-padded to IFNAMSIZ as
// the kernel compares it.
func iifname(name string) []expr.Any { return iifnameCmp(expr.CmpOpEq, name) }

// iifnameNot is iifname != name.
func iifnameNot(name string) []expr.Any { return iifnameCmp(expr.CmpOpNeq, name) }

func iifnameCmp(op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// daddr is "ip daddr P" or "ip6 daddr P": the family first (an inet
// chain sees both), then the destination address masked to P's length.
func daddr(p netip.Prefix) []expr.Any {
	p = p.Masked()
	proto, off := byte(unix.NFPROTO_IPV4), uint32(16) // IPv4 header: daddr at byte 16
	if p.Addr().Is6() {
		proto, off = unix.NFPROTO_IPV6, 24 // IPv6 header: daddr at byte 24
	}
	addr := p.Addr().AsSlice()
	mask := make([]byte, len(addr))
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	n := uint32(len(addr))
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
	if p.Bits() < len(addr)*8 {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

func drop() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// ctEstablished is "ct state established,related".
func ctEstablished() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

func accept() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
}
