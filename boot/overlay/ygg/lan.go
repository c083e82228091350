package ygg

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/yggdrasil-network/yggdrasil-go/src/core"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Bounded LAN peering. yggdrasil-go's multicast module calls every node
// whose beacon it hears (multicast.go, listen: core.CallPeer for each),
// so on a farm of N nodes each keeps N-1 peers. It has no hook to choose,
// so netinit runs it with Beacon on and Listen off (it still announces
// the node and accepts calls on its link-local TLS listener) and listens
// to the beacons itself: it keeps the nodes heard, chooses at most k of
// them (lanNeighbours) and calls those.
const (
	// beaconGroup is yggdrasil-go's multicast group and port
	// (multicast.New's default GroupAddress).
	beaconGroup = "ff02::114"
	beaconPort  = 9001
	// beaconHeader is the fixed part of a beacon: major and minor
	// version, public key, TLS port, hash length (advertisement.go).
	beaconHeader = 2 + 2 + ed25519.PublicKeySize + 2 + 2
	// heardFor is how long a node stays known after its last beacon.
	// yggdrasil-go beacons every 1 s at first, slowing to every 15 s.
	heardFor = 60 * time.Second
	// maxHeard bounds the nodes kept (a LAN can send any number of keys).
	maxHeard = 4096
	// recallAfter is the pause before calling a chosen node again.
	recallAfter = 5 * time.Second
	// dropAfter is how long a LAN peer must stay unchosen before it is
	// dropped: nodes hear a newcomer within a beacon or two, and until
	// they all have, their choices differ.
	dropAfter = 10 * time.Second
	lanTick   = time.Second
	// lanLogEvery spaces the "nodes heard" lines while a farm boots.
	lanLogEvery = 10 * time.Second
)

// beacon is a validated multicast beacon: who and where to call.
type beacon struct {
	key  key
	addr netip.AddrPort // link-local, with the zone of the link it came in on
}

// parseBeacon validates a beacon received from src on a LAN link (every
// byte is the LAN's: checked here, once). The hash is yggdrasil-go's
// blake2b-512 keyed by the (empty) multicast password over the key: it
// proves nothing but that the sender knows the password.
func parseBeacon(b []byte, src netip.AddrPort) (beacon, error) {
	var bc beacon
	if len(b) < beaconHeader {
		return bc, fmt.Errorf("%d bytes, want at least %d", len(b), beaconHeader)
	}
	major, minor := binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
	if major != core.ProtocolVersionMajor || minor != core.ProtocolVersionMinor {
		return bc, fmt.Errorf("protocol version %d.%d, want %d.%d", major, minor,
			core.ProtocolVersionMajor, core.ProtocolVersionMinor)
	}
	copy(bc.key[:], b[4:4+ed25519.PublicKeySize])
	port := binary.BigEndian.Uint16(b[4+ed25519.PublicKeySize:])
	hl := int(binary.BigEndian.Uint16(b[6+ed25519.PublicKeySize:]))
	if len(b) < beaconHeader+hl {
		return bc, fmt.Errorf("hash of %d bytes in a %d-byte beacon", hl, len(b))
	}
	h, _ := blake2b.New512(nil)
	h.Write(bc.key[:])
	if !bytes.Equal(h.Sum(nil), b[beaconHeader:beaconHeader+hl]) {
		return bc, errors.New("hash does not match the key (another multicast password?)")
	}
	if port == 0 {
		return bc, errors.New("TLS port 0")
	}
	a := src.Addr()
	if !a.Is6() || !a.IsLinkLocalUnicast() || a.Zone() == "" {
		return bc, fmt.Errorf("source %s is not an IPv6 link-local address", src)
	}
	bc.addr = netip.AddrPortFrom(a, port)
	return bc, nil
}

// heard is a node known from its beacons.
type heard struct {
	addr netip.AddrPort
	last time.Time
}

// lan chooses and calls the LAN peers. Its two goroutines (beacon reader
// and reconciler) are owned by it and end at close.
type lan struct {
	core   *core.Core
	self   key
	k      int
	links  []*regexp.Regexp
	static map[string]string // configured peers, by core's link name (Node.orig, read only)
	logf   console.Logf
	sock   *ipv6.PacketConn
	joined map[string]int // the links the beacon group is joined on, by name: their ifindex (run's)

	beacons chan beacon
	stop    chan struct{}
	done    chan struct{}
}

// startLAN opens the beacon socket beside yggdrasil-go's (both bind the
// port with SO_REUSEADDR, as multicast_unix.go does) and starts choosing.
func startLAN(c *core.Core, k int, links []*regexp.Regexp, static map[string]string, logf console.Logf) (*lan, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", beaconPort))
	if err != nil {
		return nil, fmt.Errorf("LAN beacons: %w", err)
	}
	l := &lan{
		core: c, k: k, links: links, static: static, logf: logf,
		sock:    ipv6.NewPacketConn(conn),
		beacons: make(chan beacon, 64),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	copy(l.self[:], c.PublicKey())
	if err := l.sock.SetControlMessage(ipv6.FlagDst, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("LAN beacons: %w", err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		l.read()
	}()
	go func() {
		defer close(l.done)
		l.run()
		l.sock.Close()
		<-readDone
	}()
	return l, nil
}

func (l *lan) close() {
	close(l.stop)
	<-l.done
}

// linkWanted reports whether name is one of the multicast links.
func (l *lan) linkWanted(name string) bool {
	return slices.ContainsFunc(l.links, func(re *regexp.Regexp) bool { return re.MatchString(name) })
}

// join joins the beacon group on the wanted multicast links that are up
// and not joined yet (joinNew).
func (l *lan) join() {
	group := &net.UDPAddr{IP: net.ParseIP(beaconGroup)}
	l.joined = joinNew(sysClassNet, l.linkWanted, l.joined, func(index int, name string) error {
		return l.sock.JoinGroup(&net.Interface{Index: index, Name: name}, group)
	})
}

// sysClassNet is where the links are listed.
const sysClassNet = "/sys/class/net"

// joinNew calls join for every link under sys (a /sys/class/net) that is
// wanted, up and multicast and not in joined (name -> ifindex) with its
// current index, and returns the links joined now: those of joined that
// still exist, with the new ones. The kernel keeps a socket's IPv6 groups
// on a link through a flap until the link is deleted, so a link is joined
// once per index. Only the wanted links are read: the listing runs every
// second, and net.Interfaces (a netlink dump of every link, read whole)
// takes ~6 ms on a node with 300 links (its VMs' taps, its containers'
// veths); yggdrasil-go's own multicast module already does that each
// second.
func joinNew(sys string, wanted func(string) bool, joined map[string]int, join func(index int, name string) error) map[string]int {
	ents, err := os.ReadDir(sys)
	if err != nil {
		return joined
	}
	now := map[string]int{}
	for _, e := range ents {
		name := e.Name()
		if !wanted(name) {
			continue
		}
		index, flags, ok := linkIndexFlags(filepath.Join(sys, name))
		if !ok {
			continue
		}
		if i, ok := joined[name]; ok && i == index {
			now[name] = index // down or up: still a member
			continue
		}
		if flags&unix.IFF_UP == 0 || flags&unix.IFF_MULTICAST == 0 {
			continue
		}
		if join(index, name) == nil {
			now[name] = index
		}
	}
	return now
}

// linkIndexFlags reads a link's ifindex and flags from its sysfs
// directory.
func linkIndexFlags(dir string) (index int, flags uint64, ok bool) {
	read := func(f string) (uint64, bool) {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 64)
		return v, err == nil
	}
	i, ok1 := read("ifindex")
	f, ok2 := read("flags")
	return int(i), f, ok1 && ok2 && i > 0 && i <= math.MaxInt32
}

// read passes the valid beacons to run until the socket is closed.
func (l *lan) read() {
	buf := make([]byte, 2048)
	group := netip.MustParseAddr(beaconGroup)
	var lastBad time.Time
	for {
		n, cm, from, err := l.sock.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || (cm != nil && !cm.Dst.Equal(group.AsSlice())) || !l.linkWanted(ua.Zone) {
			continue
		}
		bc, err := parseBeacon(buf[:n], ua.AddrPort())
		if err != nil {
			// One line a minute at most: a LAN can send anything.
			if time.Since(lastBad) > time.Minute {
				lastBad = time.Now()
				l.logf("yggdrasil: LAN: ignoring a beacon from %s: %v (%q)", ua, err, buf[:min(n, 48)])
			}
			continue
		}
		if bc.key == l.self {
			continue
		}
		select {
		case l.beacons <- bc:
		case <-l.stop:
			return
		}
	}
}

// run keeps the nodes heard, and each tick calls the chosen ones that are
// not peers yet and drops the unchosen ones it called.
func (l *lan) run() {
	known := map[key]heard{}
	var chosen []key
	dirty := true
	lastCall := map[key]time.Time{}
	unchosen := map[key]time.Time{}
	full := false
	logged, loggedAt := -1, time.Time{}
	tick := time.NewTicker(lanTick)
	defer tick.Stop()
	l.join()
	for {
		select {
		case <-l.stop:
			return
		case bc := <-l.beacons:
			h, ok := known[bc.key]
			if !ok && len(known) >= maxHeard {
				if !full {
					full = true
					l.logf("yggdrasil: LAN: %d nodes heard, ignoring more", maxHeard)
				}
				continue
			}
			h.addr, h.last = bc.addr, time.Now()
			known[bc.key] = h
			if ok {
				continue
			}
			// A newcomer: choose and call now, not at the next tick.
			dirty = true
		case <-tick.C:
		}
		now := time.Now()
		for k, h := range known {
			if now.Sub(h.last) > heardFor {
				delete(known, k)
				dirty = true
			}
		}
		if dirty {
			keys := make([]key, 0, len(known))
			for k := range known {
				keys = append(keys, k)
			}
			chosen = lanNeighbours(l.self, keys, l.k)
			dirty = false
		}
		if len(known) != logged && now.Sub(loggedAt) >= lanLogEvery {
			logged, loggedAt = len(known), now
			l.logf("yggdrasil: LAN: %d nodes heard, peering with %d of them", len(known), len(chosen))
		}
		l.join()
		l.reconcile(now, known, chosen, lastCall, unchosen)
	}
}

// lanPeer is a LAN peering that is up: its key, direction and how to
// remove it.
type lanPeer struct {
	key     key
	inbound bool
	uri     *url.URL
	zone    string
}

// lanPeers are the peerings that are up over IPv6 link-local addresses
// (found by multicast, either direction), configured peers excepted.
func (l *lan) lanPeers() []lanPeer {
	var out []lanPeer
	for _, p := range l.core.GetPeers() {
		if !p.Up || len(p.Key) != ed25519.PublicKeySize {
			continue
		}
		u, zone, ok := lanLink(p.URI, l.static)
		if !ok {
			continue
		}
		lp := lanPeer{inbound: p.Inbound, uri: u, zone: zone}
		copy(lp.key[:], p.Key)
		out = append(out, lp)
	}
	slices.SortFunc(out, func(a, b lanPeer) int { return bytes.Compare(a.key[:], b.key[:]) })
	return out
}

// lanLink reports whether uri, a link as core names it, is a LAN peering:
// to or from an IPv6 link-local address, and not one of the configured
// peers (static, by the same name), which are never counted or dropped.
func lanLink(uri string, static map[string]string) (u *url.URL, zone string, ok bool) {
	if _, ok := static[uri]; ok {
		return nil, "", false
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, "", false
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil || !ap.Addr().IsLinkLocalUnicast() || ap.Addr().Zone() == "" {
		return nil, "", false
	}
	return u, ap.Addr().Zone(), true
}

// reconcile makes the LAN peerings follow the choice. Of each chosen
// pair, the node with the lower key calls (one connection, not two: both
// compute the same pair, see lanNeighbours; the higher calls only if no
// call came, and drops its own if both did), and it is the caller that
// drops a peering once it has stayed unchosen for dropAfter, so that
// views that differ while a newcomer is being heard do not make peerings
// flap. (yggdrasil-go cannot remove an inbound link: RemovePeer is for
// the links it dialled.) A LAN peer's inbound calls that netinit did not
// choose, e.g. from a stock Yggdrasil node that calls everyone, stay.
func (l *lan) reconcile(now time.Time, known map[key]heard, chosen []key, lastCall, unchosen map[key]time.Time) {
	peers := l.lanPeers()
	up, in := map[key]bool{}, map[key]bool{}
	for _, p := range peers {
		up[p.key] = true
		in[p.key] = in[p.key] || p.inbound
	}
	for _, c := range chosen {
		if up[c] || now.Sub(lastCall[c]) < recallAfter {
			continue
		}
		if _, ok := lastCall[c]; !ok && bytes.Compare(l.self[:], c[:]) > 0 {
			// The lower key calls; this side calls too only if that
			// call has not come within recallAfter (the other node
			// may not have heard this one's beacon yet: they slow
			// down to one every 15 s).
			lastCall[c] = now
			continue
		}
		lastCall[c] = now
		h := known[c]
		q := url.Values{"key": {hex.EncodeToString(c[:])}}
		u := &url.URL{Scheme: "tls", Host: h.addr.String(), RawQuery: q.Encode()}
		if err := l.core.CallPeer(u, h.addr.Addr().Zone()); err != nil && !errors.Is(err, core.ErrLinkAlreadyConfigured) {
			l.logf("yggdrasil: LAN: calling %s at %s: %v", hex.EncodeToString(c[:8]), h.addr, err)
		}
	}
	for k := range lastCall {
		if !slices.Contains(chosen, k) {
			delete(lastCall, k)
		}
	}
	if l.k <= 0 {
		return
	}
	seen := map[key]bool{}
	for _, p := range peers {
		if p.inbound {
			continue
		}
		seen[p.key] = true
		if slices.Contains(chosen, p.key) {
			if in[p.key] && bytes.Compare(l.self[:], p.key[:]) > 0 {
				// Both called: the lower key's call stays.
				_ = l.core.RemovePeer(p.uri, p.zone)
			}
			continue
		}
		since, ok := unchosen[p.key]
		if !ok {
			unchosen[p.key] = now
			continue
		}
		if now.Sub(since) < dropAfter {
			continue
		}
		l.logf("yggdrasil: LAN: dropping peer %s at %s: not among the %d chosen of %d nodes heard",
			hex.EncodeToString(p.key[:8]), p.uri.Host, len(chosen), len(known))
		if err := l.core.RemovePeer(p.uri, p.zone); err != nil {
			l.logf("yggdrasil: LAN: dropping peer %s: %v", hex.EncodeToString(p.key[:8]), err)
		}
	}
	for k := range unchosen {
		if !seen[k] || slices.Contains(chosen, k) {
			delete(unchosen, k)
		}
	}
}
