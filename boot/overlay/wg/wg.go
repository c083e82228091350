// Package wg runs a userspace WireGuard tunnel (wireguard-go's device
// package, in-process) from an IPv4-only node behind NAT to a public
// gateway, so that the node reaches the IPv6 internet and private
// overlays.
//
// The node always dials out: every peer gets a PersistentKeepalive (25 s
// by default, the value the WireGuard documentation recommends for NAT
// traversal, wg(8) "PersistentKeepalive") so that the NAT mapping stays
// open and the gateway can reach the node at any time.
//
// The clock must be right before Start (see boot/clock): a peer drops a
// handshake initiation whose TAI64N timestamp is not newer than the last
// one it saw from the same key (WireGuard paper §5.1).
//
// Routes: every allowed prefix is routed via the tunnel interface. A
// default prefix (0.0.0.0/0 or ::/0) is routed with metric
// DefaultRouteMetric, higher than the kernel's default of 1024 for IPv6
// and than what DHCP/RA install, so it never replaces an uplink's default
// route of the same family: it only carries traffic when the uplink has no
// default of that family (the case it exists for: ::/0 on an IPv4-only
// node). Because of that, the packets of the tunnel itself never loop into
// the tunnel (the endpoint is reached by the uplink's more specific or
// better default route) and no policy routing (fwmark) is needed.
//
// Endpoint names are resolved at Start with a short bound; a name that
// does not resolve is reported (Problems, Logf) and retried in the
// background with exponential backoff. A peer that has had no handshake
// for StaleAfter gets its name resolved again, its endpoint updated if
// the address changed (as wireguard-tools' reresolve-dns.sh does), and a
// new handshake started (wireguard-go stops retrying after ~90 s).
//
// The private key never appears in State, logs or errors.
package wg

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/state"
)

const (
	// DefaultIfName is the tunnel interface's name.
	DefaultIfName = "wg0"
	// DefaultMTU is wg-quick's default: 1500 minus the 80 bytes of an
	// IPv6 + UDP + WireGuard header.
	DefaultMTU = 1420
	// DefaultKeepalive is the persistent keepalive interval for NAT.
	DefaultKeepalive = 25 * time.Second
	// DefaultRouteMetric is the metric of a default route via the tunnel
	// (see the package comment).
	DefaultRouteMetric = 4096
	// KeyName is the key file's name in Options.KeyDir.
	KeyName = "wireguard.key"
	// StaleAfter is how long a peer with a named endpoint may go without a
	// handshake before its name is resolved again. A session is rekeyed
	// every 2 minutes (REKEY_AFTER_TIME) while it is used, and with
	// keepalives it always is, so 3 minutes without one means the peer
	// is not reachable where we think it is.
	StaleAfter = 3 * time.Minute
)

// Peer is one WireGuard peer.
type Peer struct {
	// PublicKey is the peer's public key, base64 as wg(8) prints it.
	PublicKey string
	// Endpoint is host:port; host may be a name.
	Endpoint string
	// AllowedIPs are the prefixes routed to the peer (and accepted from it).
	AllowedIPs []netip.Prefix
	// Keepalive is the persistent keepalive interval (DefaultKeepalive when
	// 0; negative turns it off).
	Keepalive time.Duration
}

// Options configure Start.
type Options struct {
	// KeyDir holds the private key file (KeyName), made on first use.
	KeyDir string
	// PinDir, if set, holds this boot's copy of the key, read first
	// (keys.LoadCurve25519Pinned): a restart keeps the key even when
	// KeyDir has been mounted over since.
	PinDir string
	// IfName is the interface's name (DefaultIfName when empty).
	IfName string
	// Addresses are put on the interface.
	Addresses []netip.Prefix
	Peers     []Peer
	// ListenPort is the UDP port (random when 0).
	ListenPort int
	// MTU of the interface (DefaultMTU when 0).
	MTU int
	// Logf receives log lines (none when nil). They never hold the
	// private key.
	Logf console.Logf
}

// peerConf is a validated Peer.
type peerConf struct {
	Peer
	key  [32]byte
	host string // the endpoint's host ("" when there is no endpoint)
	port uint16
	ip   netip.Addr // set when host is an address literal
}

func (p *peerConf) hexKey() string { return hex.EncodeToString(p.key[:]) }

// parsePeer validates p and fills in defaults.
func parsePeer(p Peer) (peerConf, error) {
	c := peerConf{Peer: p}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p.PublicKey))
	if err != nil || len(k) != 32 {
		return c, fmt.Errorf("peer public key %q: not 32 bytes of base64", p.PublicKey)
	}
	copy(c.key[:], k)
	c.PublicKey = base64.StdEncoding.EncodeToString(k)
	if c.Keepalive == 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.Keepalive > 0 && c.Keepalive < time.Second {
		c.Keepalive = time.Second
	}
	if c.Keepalive > 65535*time.Second {
		return c, fmt.Errorf("peer %s: keepalive %s above 65535s", c.PublicKey, c.Keepalive)
	}
	for _, a := range c.AllowedIPs {
		if !a.IsValid() {
			return c, fmt.Errorf("peer %s: invalid allowed prefix", c.PublicKey)
		}
	}
	if p.Endpoint != "" {
		host, port, err := net.SplitHostPort(p.Endpoint)
		if err != nil {
			return c, fmt.Errorf("peer %s: endpoint %q: %w", c.PublicKey, p.Endpoint, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 || host == "" {
			return c, fmt.Errorf("peer %s: endpoint %q: want host:port", c.PublicKey, p.Endpoint)
		}
		c.host, c.port = host, uint16(n)
		if ip, err := netip.ParseAddr(host); err == nil {
			c.ip = ip.Unmap()
		}
	}
	return c, nil
}

// peerUAPI is the UAPI "set" text for one peer (without an endpoint when
// ep is invalid). See https://www.wireguard.com/xplatform/.
func peerUAPI(p *peerConf, ep netip.AddrPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "public_key=%s\n", p.hexKey())
	if ep.IsValid() {
		fmt.Fprintf(&b, "endpoint=%s\n", ep)
	}
	ka := 0
	if p.Keepalive > 0 {
		ka = int(p.Keepalive / time.Second)
	}
	fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", ka)
	b.WriteString("replace_allowed_ips=true\n")
	for _, a := range p.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", a.Masked())
	}
	return b.String()
}

// uapiPeer is one peer as the UAPI "get" reports it.
type uapiPeer struct {
	hexKey        string
	endpoint      string
	lastHandshake time.Time // zero when none
	rx, tx        int64
}

// parseGet parses the UAPI "get" text. It skips private_key (and every
// other device-level line) so the key can't leak from here.
func parseGet(s string) ([]uapiPeer, error) {
	var peers []uapiPeer
	var cur *uapiPeer
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.lastHandshake = time.Unix(sec, nsec).UTC()
			}
			peers = append(peers, *cur)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("uapi get: malformed line")
		}
		if k == "public_key" {
			flush()
			cur = &uapiPeer{hexKey: v}
			continue
		}
		if cur == nil {
			continue // device lines: private_key, listen_port, fwmark
		}
		var err error
		switch k {
		case "endpoint":
			cur.endpoint = v
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			cur.rx, err = strconv.ParseInt(v, 10, 64)
		case "tx_bytes":
			cur.tx, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("uapi get: %s: %w", k, err)
		}
	}
	flush()
	return peers, sc.Err()
}

// buildState turns the UAPI peers into the state's form, in the configured
// order, with the configured endpoint when the device has none yet.
func buildState(ifName string, pub [32]byte, addrs []netip.Prefix, conf []peerConf, got []uapiPeer) *state.WireGuard {
	st := &state.WireGuard{
		Interface: ifName,
		PublicKey: base64.StdEncoding.EncodeToString(pub[:]),
		Addresses: []string{},
		Peers:     []state.WireGuardPeer{},
	}
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, a.String())
	}
	byKey := map[string]uapiPeer{}
	for _, p := range got {
		byKey[p.hexKey] = p
	}
	for i := range conf {
		c := &conf[i]
		sp := state.WireGuardPeer{PublicKey: c.PublicKey, Endpoint: c.Endpoint}
		if u, ok := byKey[c.hexKey()]; ok {
			if u.endpoint != "" {
				sp.Endpoint = u.endpoint
			}
			if !u.lastHandshake.IsZero() {
				t := u.lastHandshake
				sp.LastHandshake = &t
			}
			sp.RxBytes, sp.TxBytes = u.rx, u.tx
		}
		st.Peers = append(st.Peers, sp)
	}
	return st
}

// redactor removes every spelling of the private key from text.
type redactor []string

func newRedactor(priv [32]byte) redactor {
	return redactor{
		hex.EncodeToString(priv[:]),
		strings.ToUpper(hex.EncodeToString(priv[:])),
		base64.StdEncoding.EncodeToString(priv[:]),
		base64.RawStdEncoding.EncodeToString(priv[:]),
		base64.URLEncoding.EncodeToString(priv[:]),
	}
}

func (r redactor) clean(s string) string {
	for _, k := range r {
		s = strings.ReplaceAll(s, k, "(private key)")
	}
	return s
}

// rateLimit passes on a message of a given format at most once per every:
// a peer without a reachable endpoint makes wireguard-go log the same
// failed handshake every 5 seconds.
func rateLimit(logf console.Logf, every time.Duration) console.Logf {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return func(f string, a ...any) {
		mu.Lock()
		now := time.Now()
		ok := now.Sub(last[f]) >= every
		if ok {
			last[f] = now
		}
		mu.Unlock()
		if ok {
			logf(f, a...)
		}
	}
}
