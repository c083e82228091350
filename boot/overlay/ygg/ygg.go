// Package ygg runs an in-process Yggdrasil node (yggdrasil-go used as a
// library) so that a node without public IPv6, e.g. behind IPv4 NAT at a
// farmer's home, still gets an end-to-end encrypted IPv6 address in
// 200::/7 that any other Yggdrasil node can reach.
//
// The node peers out to the configured peers (and, if asked, to nodes
// found by multicast on the LAN), creates a TUN interface (ygg0) holding
// its address with the 200::/7 on-link route, and keeps reconnecting
// until Close. Outbound peering is what makes a hidden node reachable:
// the NAT only ever sees an outgoing TCP/TLS/QUIC connection.
package ygg

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"time"

	// Must stay imported: it switches off yggdrasil-go's
	// environment-driven pprof server before core's init runs.
	_ "github.com/threefoldtech/netinit/boot/overlay/ygg/internal/noenv"

	"github.com/yggdrasil-network/yggdrasil-go/src/address"
	"github.com/yggdrasil-network/yggdrasil-go/src/config"
	"github.com/yggdrasil-network/yggdrasil-go/src/core"
	"github.com/yggdrasil-network/yggdrasil-go/src/ipv6rwc"
	"github.com/yggdrasil-network/yggdrasil-go/src/multicast"
	"github.com/yggdrasil-network/yggdrasil-go/src/tun"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/overlay/keys"
	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/boot/state"
)

// KeyFile is the name of the node's key file in Options.KeyDir.
const KeyFile = "yggdrasil.key"

// SeedLabel is the label given to keys.Ed25519FromSeed when the identity
// is derived from a seed file.
const SeedLabel = "yggdrasil"

// DefaultIfName is the TUN interface's name when Options.IfName is "".
const DefaultIfName = "ygg0"

// MaxBackoff caps the reconnection backoff of every peer whose URI does
// not set its own ?maxbackoff=. yggdrasil-go backs off exponentially up
// to 1h8m by default; a hidden node has no other way in, so after an
// outage it should be back within this time even if nobody calls Kick.
const MaxBackoff = 30 * time.Second

// Options configure a node.
type Options struct {
	// KeyDir holds the node's ed25519 key (file KeyFile, see package
	// keys). Seed, if set, is a seed file the key is derived from instead
	// (keys.Ed25519FromSeed with SeedLabel); then nothing is written.
	KeyDir string
	Seed   string
	// Key, if set, is the identity itself and wins over Seed and KeyDir:
	// the 0-OS node identity, used as is like 0-OS does (zosbase
	// pkg/network/yggdrasil GenerateConfig), so that the node's address
	// is address.AddrForKey of its on-chain public key.
	Key ed25519.PrivateKey

	// Peers are peering URIs: tls://host:port, tcp://host:port,
	// quic://host:port (yggdrasil-go's syntax, query options allowed).
	Peers []string
	// Listen are optional listener URIs (public nodes, tests).
	Listen []string

	// Multicast enables LAN peer discovery (beacon and listen) on the
	// links whose names match one of MulticastLinks (regular
	// expressions, anchored by the caller if needed; empty = ".*").
	Multicast      bool
	MulticastLinks []string
	// LANPeers bounds the peers found by multicast (see lanNeighbours for
	// whom); 0 peers with every node heard, as yggdrasil-go does alone.
	// Configured peers are not counted and always kept.
	LANPeers int

	// IfName is the TUN interface; default DefaultIfName.
	IfName string
	// MTU of the TUN; default (0) is yggdrasil-go's platform default
	// (65535 on Linux).
	MTU int

	// NodeInfo is published to any node of the network that asks; nothing
	// else is (yggdrasil-go's build name, version, OS and architecture are
	// not added: NodeInfoPrivacy).
	NodeInfo map[string]any

	// Logf receives yggdrasil-go's log at info level and above, and the
	// key events. Nil discards.
	Logf console.Logf
}

// Node is a running Yggdrasil node.
type Node struct {
	core  *core.Core
	tun   *tun.TunAdapter
	mc    *multicast.Multicast
	lan   *lan
	pub   ed25519.PublicKey
	peers []string          // as configured, in order
	orig  map[string]string // link name in core (URI without query) -> configured URI
	probs []string

	closeOnce    sync.Once // closes stop
	shutdownOnce sync.Once
	closeErr     error
	stop         chan struct{}
	done         chan struct{} // the ctx watcher has ended
}

// Start brings the node up: identity, core with peers and listeners, the
// TUN with the node's address, multicast discovery. The node runs until
// Close is called or ctx ends. Start does not wait for peers to connect.
func Start(ctx context.Context, o Options) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("yggdrasil: %w", err)
	}
	logf := o.Logf
	if logf == nil {
		logf = console.Discard
	}
	n := &Node{orig: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}

	priv, err := n.identity(o, logf)
	if err != nil {
		return nil, err
	}
	n.pub = priv.Public().(ed25519.PublicKey)

	cfg := config.NodeConfig{PrivateKey: config.KeyBytes(priv)}
	if err := cfg.GenerateSelfSignedCertificate(); err != nil {
		return nil, fmt.Errorf("yggdrasil: certificate: %w", err)
	}

	var opts []core.SetupOption
	for _, p := range o.Peers {
		eff, key, err := effectivePeer(p)
		if err != nil {
			return nil, fmt.Errorf("yggdrasil: peer %q: %w", spec.RedactURI(p), err)
		}
		n.peers = append(n.peers, p)
		n.orig[key] = p
		opts = append(opts, core.Peer{URI: eff})
	}
	if o.NodeInfo != nil {
		opts = append(opts, core.NodeInfo(o.NodeInfo))
	}
	opts = append(opts, core.NodeInfoPrivacy(true))
	lg := logger{logf}
	c, err := core.New(cfg.Certificate, lg, opts...)
	if err != nil {
		return nil, fmt.Errorf("yggdrasil: core: %w", err)
	}
	n.core = c
	// Listeners are started here rather than as core.ListenAddress
	// options, which only log a listener that fails to bind.
	for _, l := range o.Listen {
		u, err := url.Parse(l)
		if err == nil {
			_, err = c.Listen(u, "")
		}
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("yggdrasil: listen %q: %w", spec.RedactURI(l), err)
		}
	}

	ifname := o.IfName
	if ifname == "" {
		ifname = DefaultIfName
	}
	mtu := uint64(o.MTU)
	if mtu == 0 {
		mtu = tun.DefaultMTU()
	}
	rwc := ipv6rwc.NewReadWriteCloser(c)
	t, err := tun.New(rwc, lg, tun.InterfaceName(ifname), tun.InterfaceMTU(mtu))
	if err != nil {
		if t != nil {
			_ = t.Stop()
		}
		c.Stop()
		return nil, fmt.Errorf("yggdrasil: tun %s: %w", ifname, err)
	}
	n.tun = t

	if o.Multicast {
		links := o.MulticastLinks
		if len(links) == 0 {
			links = []string{".*"}
		}
		var mopts []multicast.SetupOption
		var res []*regexp.Regexp
		for _, l := range links {
			re, err := regexp.Compile(l)
			if err != nil {
				n.shutdown()
				return nil, fmt.Errorf("yggdrasil: multicast link pattern %q: %w", l, err)
			}
			res = append(res, re)
			// Bounded: yggdrasil-go only beacons and accepts; netinit
			// listens and chooses whom to call (lan.go).
			mopts = append(mopts, multicast.MulticastInterface{Regex: re, Beacon: true, Listen: o.LANPeers <= 0})
		}
		m, err := multicast.New(c, lg, mopts...)
		if err != nil {
			n.shutdown()
			return nil, fmt.Errorf("yggdrasil: multicast: %w", err)
		}
		n.mc = m
		if o.LANPeers > 0 {
			l, err := startLAN(c, o.LANPeers, res, n.orig, logf)
			if err != nil {
				n.shutdown()
				return nil, fmt.Errorf("yggdrasil: %w", err)
			}
			n.lan = l
			logf("yggdrasil: LAN peering bounded to %d peers", o.LANPeers)
		}
	}

	go func() {
		defer close(n.done)
		select {
		case <-ctx.Done():
			n.shutdown()
		case <-n.stop:
		}
	}()
	logf("yggdrasil: %s up, address %s, public key %s", ifname, c.Address(), hex.EncodeToString(n.pub))
	return n, nil
}

// identity loads or derives the node's key. Key events become problems.
func (n *Node) identity(o Options, logf console.Logf) (ed25519.PrivateKey, error) {
	o.Logf = logf
	k, probs, err := LoadKey(o)
	n.probs = append(n.probs, probs...)
	return k, err
}

// LoadKey is the node's key as Start takes it: Key when set, else derived
// from Seed, else loaded from KeyDir (made there on first use). probs are
// the key events a farmer should know about (a corrupt file moved aside),
// also given to o.Logf.
func LoadKey(o Options) (k ed25519.PrivateKey, probs []string, err error) {
	logf := o.Logf
	if logf == nil {
		logf = console.Discard
	}
	if len(o.Key) == ed25519.PrivateKeySize {
		return o.Key, nil, nil
	}
	if o.Seed != "" {
		k, err := keys.Ed25519FromSeed(o.Seed, SeedLabel)
		if err != nil {
			return nil, nil, fmt.Errorf("yggdrasil: identity: %w", err)
		}
		return k, nil, nil
	}
	if o.KeyDir == "" {
		return nil, nil, errors.New("yggdrasil: identity: no key directory or seed")
	}
	k, ev, err := keys.LoadEd25519(o.KeyDir, KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("yggdrasil: identity: %w", err)
	}
	if ev.Problem != "" {
		probs = append(probs, "yggdrasil: "+ev.Problem)
		logf("yggdrasil: WARNING: %s", ev.Problem)
	} else if ev.Created {
		logf("yggdrasil: new identity in %s", o.KeyDir)
	}
	return k, probs, nil
}

// AddressOf is the node address (200::/8) of key k, as every Yggdrasil
// node derives it (address.AddrForKey of the public key).
func AddressOf(k ed25519.PrivateKey) netip.Addr {
	a := address.AddrForKey(k.Public().(ed25519.PublicKey))
	return netip.AddrFrom16(*a)
}

// TreeEntry is one node of Yggdrasil's spanning tree as a node knows it
// (ironwood's router): its address, its parent's (its own when it claims
// to be the root) and the sequence number of its latest announcement.
type TreeEntry struct {
	Addr, Parent netip.Addr
	Seq          uint64
}

// Tree returns the spanning tree as this node knows it. The lab's peer
// outside (qemu/testdata/yggpeer) reports its changes: where a key moved
// between two instances, the new one announces above the old one's
// sequence number, which is when the network has settled on it.
func (n *Node) Tree() []TreeEntry {
	var out []TreeEntry
	for _, e := range n.core.GetTree() {
		out = append(out, TreeEntry{Addr: netip.AddrFrom16(*address.AddrForKey(e.Key)),
			Parent: netip.AddrFrom16(*address.AddrForKey(e.Parent)), Seq: e.Sequence})
	}
	return out
}

// effectivePeer is the URI given to core: the configured one with
// maxbackoff=MaxBackoff added unless it sets its own. key is how core
// names the link in GetPeers: the URI without its query.
func effectivePeer(p string) (eff, key string, err error) {
	u, err := url.Parse(p)
	if err != nil {
		return "", "", err
	}
	switch u.Scheme {
	case "tcp", "tls", "quic", "ws", "wss", "socks", "sockstls", "unix":
	default:
		return "", "", fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	k := *u
	k.RawQuery = ""
	q := u.Query()
	if q.Get("maxbackoff") == "" {
		q.Set("maxbackoff", MaxBackoff.String())
		u.RawQuery = q.Encode()
	}
	return u.String(), k.String(), nil
}

// Address is the node's overlay address (in 200::/7).
func (n *Node) Address() string { return n.core.Address().String() }

// State is the node's state for the state file: address, routed subnet
// (300::/64 form), public key (hex) and peers. Configured peers are
// listed in configuration order (down ones too), then inbound and
// multicast-found ones.
func (n *Node) State() *state.Yggdrasil {
	sub := n.core.Subnet()
	s := &state.Yggdrasil{
		Address:   n.core.Address().String(),
		Subnet:    sub.String(),
		PublicKey: hex.EncodeToString(n.pub),
		Peers:     []state.YggdrasilPeer{},
	}
	byURI := map[string]state.YggdrasilPeer{}
	var extra []state.YggdrasilPeer
	for _, p := range n.core.GetPeers() {
		sp := state.YggdrasilPeer{URI: p.URI, Up: p.Up}
		if p.Up {
			sp.LatencyMS = float64(p.Latency.Microseconds()) / 1000
		}
		if o, ok := n.orig[p.URI]; ok {
			sp.URI = o
			if prev, ok := byURI[o]; ok && prev.Up {
				continue
			}
			byURI[o] = sp
			continue
		}
		extra = append(extra, sp)
	}
	for _, p := range n.peers {
		sp, ok := byURI[p]
		if !ok {
			sp = state.YggdrasilPeer{URI: p}
		}
		s.Peers = append(s.Peers, sp)
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].URI < extra[j].URI })
	s.Peers = append(s.Peers, extra...)
	return s
}

// AnyPeerUp says whether a peer is up, as State's peers would, without
// building it: State lists every peer GetPeers reports (a configured
// peer's links as one, up when one of them is).
func (n *Node) AnyPeerUp() bool {
	for _, p := range n.core.GetPeers() {
		if p.Up {
			return true
		}
	}
	return false
}

// Problems are the things a farmer should know about (e.g. a corrupt key
// file that was moved aside), for the state's problems.
func (n *Node) Problems() []string { return append([]string(nil), n.probs...) }

// Kick makes every peer that is backing off retry at once. Call it when
// the uplink or its addresses change: after an outage yggdrasil-go may
// otherwise wait up to MaxBackoff.
func (n *Node) Kick() { n.core.RetryPeersNow() }

// Close stops the node and removes its TUN interface. It is safe to call
// more than once and after ctx has ended.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { close(n.stop) })
	<-n.done
	return n.shutdown()
}

// shutdown stops the modules in reverse order of start, once.
func (n *Node) shutdown() error {
	n.shutdownOnce.Do(n.doShutdown)
	return n.closeErr
}

func (n *Node) doShutdown() {
	var errs []error
	if n.lan != nil {
		n.lan.close()
	}
	if n.mc != nil {
		if err := n.mc.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("multicast: %w", err))
		}
	}
	if n.tun != nil {
		if err := n.tun.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("tun: %w", err))
		}
	}
	n.core.Stop()
	if err := errors.Join(errs...); err != nil {
		n.closeErr = fmt.Errorf("yggdrasil: close: %w", err)
	}
}
