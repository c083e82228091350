package wg

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/lease"
	"github.com/threefoldtech/netinit/boot/overlay/keys"
	"github.com/threefoldtech/netinit/boot/route"
	"github.com/threefoldtech/netinit/boot/state"
)

// Tunables, variables so that tests can shorten them.
var (
	// resolveTimeout bounds one resolution of an endpoint name.
	resolveTimeout = 2 * time.Second
	// retryMin and retryMax bound the backoff for a name that does not
	// resolve.
	retryMin, retryMax = time.Second, 2 * time.Minute
	// tick is how often the background loop looks at the peers.
	tick = time.Second
	// staleAfter is StaleAfter.
	staleAfter = StaleAfter
)

// Tunnel is a running WireGuard interface.
type Tunnel struct {
	ifName string
	addrs  []netip.Prefix
	pub    [32]byte
	peers  []peerConf
	dev    *device.Device
	logf   console.Logf
	red    redactor
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	keyProblem string // from the key store, "" when none

	mu       sync.Mutex
	eps      []endpointState // per peer, guarded by mu
	problems map[int]string  // per peer, guarded by mu
}

// endpointState is what the background loop knows about a peer's endpoint.
type endpointState struct {
	addr    netip.AddrPort // current endpoint (invalid: none)
	nextTry time.Time      // resolve again no earlier than this
	backoff time.Duration  // after a failure (0 after a success)
}

// Start creates the interface, configures the device and the kernel
// (addresses, routes) and starts the handshakes. It does not wait for a
// handshake and resolves endpoint names with a short bound
// (resolveTimeout, in parallel), so it returns within a few seconds even
// when no peer answers. The tunnel runs until Close or until ctx is done.
func Start(ctx context.Context, o Options) (*Tunnel, error) {
	if o.IfName == "" {
		o.IfName = DefaultIfName
	}
	if o.MTU == 0 {
		o.MTU = DefaultMTU
	}
	logf := o.Logf
	if logf == nil {
		logf = console.Discard
	}
	if o.ListenPort < 0 || o.ListenPort > 65535 {
		return nil, fmt.Errorf("wireguard %s: listen port %d out of range", o.IfName, o.ListenPort)
	}
	var peers []peerConf
	for _, p := range o.Peers {
		c, err := parsePeer(p)
		if err != nil {
			return nil, fmt.Errorf("wireguard %s: %w", o.IfName, err)
		}
		peers = append(peers, c)
	}

	priv, ev, err := keys.LoadCurve25519Pinned(o.PinDir, o.KeyDir, KeyName)
	if err != nil {
		return nil, fmt.Errorf("wireguard %s: key: %w", o.IfName, err)
	}
	red := newRedactor(priv)
	clean := func(f string, a ...any) { logf("%s", red.clean(fmt.Sprintf(f, a...))) }
	if ev.Problem != "" {
		clean("wireguard %s: key: %s", o.IfName, ev.Problem)
	}
	xk, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return nil, fmt.Errorf("wireguard %s: key: not a valid X25519 key", o.IfName)
	}
	t := &Tunnel{
		ifName:   o.IfName,
		addrs:    slices.Clone(o.Addresses),
		peers:    peers,
		logf:     clean,
		red:      red,
		lookup:   lookupHost,
		eps:      make([]endpointState, len(peers)),
		problems: map[int]string{},
		done:     make(chan struct{}),
	}
	if ev.Problem != "" {
		t.keyProblem = "wireguard " + o.IfName + ": key: " + ev.Problem
	}
	copy(t.pub[:], xk.PublicKey().Bytes())
	if ev.Created {
		clean("wireguard %s: new key, public key %s", o.IfName, t.publicKey())
	}

	// Resolve endpoints first (bounded, in parallel) so that the device
	// starts with every endpoint that can be had now.
	t.resolveAll(ctx)

	td, err := tun.CreateTUN(o.IfName, o.MTU)
	if err != nil {
		return nil, fmt.Errorf("wireguard %s: create tun: %w", o.IfName, err)
	}
	// Verbose lines (one per keepalive) are dropped; errors are logged.
	t.dev = device.NewDevice(td, conn.NewDefaultBind(), &device.Logger{
		Verbosef: device.DiscardLogf,
		Errorf:   rateLimit(func(f string, a ...any) { clean("wireguard "+o.IfName+": "+f, a...) }, time.Minute),
	})
	fail := func(err error) (*Tunnel, error) {
		t.dev.Close()
		return nil, errors.New(red.clean(err.Error()))
	}

	// The private key goes alone into its own set operation, so that no
	// error about another line can quote it.
	if err := t.dev.IpcSet("private_key=" + hex.EncodeToString(priv[:]) + "\n"); err != nil {
		return fail(fmt.Errorf("wireguard %s: set private key: %w", o.IfName, err))
	}
	if o.ListenPort != 0 {
		if err := t.dev.IpcSet(fmt.Sprintf("listen_port=%d\n", o.ListenPort)); err != nil {
			return fail(fmt.Errorf("wireguard %s: listen port %d: %w", o.IfName, o.ListenPort, err))
		}
	}
	for i := range t.peers {
		if err := t.dev.IpcSet(peerUAPI(&t.peers[i], t.eps[i].addr)); err != nil {
			return fail(fmt.Errorf("wireguard %s: peer %s: %w", o.IfName, t.peers[i].PublicKey, err))
		}
	}
	if err := t.configureKernel(); err != nil {
		return fail(err)
	}
	if err := t.dev.Up(); err != nil {
		return fail(fmt.Errorf("wireguard %s: up: %w", o.IfName, err))
	}
	clean("wireguard %s: up, public key %s, %d peer(s)", o.IfName, t.publicKey(), len(t.peers))

	ctx, t.cancel = context.WithCancel(ctx)
	go t.run(ctx)
	return t, nil
}

func (t *Tunnel) publicKey() string { return base64.StdEncoding.EncodeToString(t.pub[:]) }

// configureKernel brings the link up and installs addresses and routes.
func (t *Tunnel) configureKernel() error {
	link, err := netlink.LinkByName(t.ifName)
	if err != nil {
		return fmt.Errorf("wireguard %s: find link: %w", t.ifName, err)
	}
	for _, a := range t.addrs {
		na := &netlink.Addr{IPNet: prefixNet(a)}
		if a.Addr().Is6() {
			// A tun link is NOARP, which skips DAD anyway; say so
			// explicitly so the address is usable at once.
			na.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(link, na); err != nil {
			return fmt.Errorf("wireguard %s: address %s: %w", t.ifName, a, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("wireguard %s: link up: %w", t.ifName, err)
	}
	// The allowed prefixes, on-link through the tunnel (boot/route: the
	// overlay's own routes, configured, not judged as learnt ones are).
	var want []route.Route
	for _, p := range t.peers {
		for _, a := range p.AllowedIPs {
			r := route.Route{Dst: a.Masked()}
			if r.Dst.Bits() == 0 {
				r.Metric = DefaultRouteMetric
			}
			if !slices.Contains(want, r) {
				want = append(want, r)
			}
		}
	}
	if _, err := route.New(route.Config{Logf: t.logf}).Apply(t.ifName, link.Attrs().Index, lease.SourceWireGuard, want); err != nil {
		return fmt.Errorf("wireguard %s: %w", t.ifName, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// lookupHost resolves a name with the system resolver.
func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolveAll resolves every peer's endpoint at once, bounded by
// resolveTimeout.
func (t *Tunnel) resolveAll(ctx context.Context) {
	var wg sync.WaitGroup
	now := time.Now()
	for i := range t.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, err := t.resolve(ctx, &t.peers[i])
			t.mu.Lock()
			defer t.mu.Unlock()
			t.noteResolve(i, ep, err, now)
		}()
	}
	wg.Wait()
}

// noteResolve records the outcome of resolving peer i. Called with mu held.
func (t *Tunnel) noteResolve(i int, ep netip.AddrPort, err error, now time.Time) {
	s := &t.eps[i]
	p := &t.peers[i]
	if err != nil {
		if s.backoff == 0 {
			s.backoff = retryMin
		} else {
			s.backoff = min(2*s.backoff, retryMax)
		}
		s.nextTry = now.Add(s.backoff)
		msg := fmt.Sprintf("wireguard %s: peer %s endpoint %s: %v (retrying)", t.ifName, p.PublicKey, p.Endpoint, err)
		if t.problems[i] != msg {
			t.logf("%s", msg)
		}
		t.problems[i] = msg
		return
	}
	s.backoff = 0
	s.nextTry = now.Add(staleAfter)
	if _, had := t.problems[i]; had {
		t.logf("wireguard %s: peer %s endpoint %s resolved to %s", t.ifName, p.PublicKey, p.Endpoint, ep)
		delete(t.problems, i)
	}
	s.addr = ep
}

// resolve returns the peer's endpoint address (invalid when it has none).
// Among several addresses of a name it prefers the first one the kernel
// has a route to, so that an IPv4-only node picks an IPv4 address.
func (t *Tunnel) resolve(ctx context.Context, p *peerConf) (netip.AddrPort, error) {
	if p.host == "" {
		return netip.AddrPort{}, nil
	}
	if p.ip.IsValid() {
		return netip.AddrPortFrom(p.ip, p.port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := t.lookup(ctx, p.host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve: %w", err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve: no addresses")
	}
	for _, a := range addrs {
		if _, err := netlink.RouteGet(a.Unmap().AsSlice()); err == nil {
			return netip.AddrPortFrom(a.Unmap(), p.port), nil
		}
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), p.port), nil
}

// run retries names that did not resolve and re-resolves named endpoints
// of peers without a recent handshake. It closes the device when ctx ends.
func (t *Tunnel) run(ctx context.Context) {
	defer close(t.done)
	defer t.dev.Close()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		t.checkEndpoints(ctx)
	}
}

func (t *Tunnel) checkEndpoints(ctx context.Context) {
	var got []uapiPeer
	if s, err := t.dev.IpcGet(); err == nil {
		got, _ = parseGet(s)
	}
	now := time.Now()
	for i := range t.peers {
		p := &t.peers[i]
		if p.host == "" {
			continue
		}
		t.mu.Lock()
		s := t.eps[i]
		t.mu.Unlock()
		// A name that did not resolve is retried with backoff. A peer
		// that has had no handshake for staleAfter gets its name
		// resolved again and a new handshake (then at most once per
		// staleAfter, or with backoff while resolution fails).
		if now.Before(s.nextTry) {
			continue
		}
		if s.addr.IsValid() {
			var last time.Time
			for _, u := range got {
				if u.hexKey == p.hexKey() {
					last = u.lastHandshake
				}
			}
			if now.Sub(last) <= staleAfter {
				continue
			}
		}
		ep, err := t.resolve(ctx, p)
		if ctx.Err() != nil {
			return
		}
		t.mu.Lock()
		old := t.eps[i].addr
		t.noteResolve(i, ep, err, now)
		t.mu.Unlock()
		if err != nil {
			continue
		}
		if ep != old {
			if err := t.dev.IpcSet(fmt.Sprintf("public_key=%s\nupdate_only=true\nendpoint=%s\n", p.hexKey(), ep)); err != nil {
				t.logf("wireguard %s: peer %s: set endpoint %s: %v", t.ifName, p.PublicKey, ep, err)
				continue
			}
			if old.IsValid() {
				t.logf("wireguard %s: peer %s: no handshake for %s, endpoint %s now %s (was %s)", t.ifName, p.PublicKey, staleAfter, p.Endpoint, ep, old)
			}
		}
		// wireguard-go gives up a handshake after MaxTimerHandshakes
		// (about 90 s) and the persistent keepalive timer only runs
		// once a session exists, so with no traffic of our own the node
		// would never try again and the gateway could never reach it:
		// start a new handshake.
		if peer := t.dev.LookupPeer(device.NoisePublicKey(p.key)); peer != nil {
			peer.SendKeepalive()
		}
	}
}

// State is the tunnel's current state, read from the device (UAPI get).
func (t *Tunnel) State() *state.WireGuard {
	var got []uapiPeer
	if s, err := t.dev.IpcGet(); err == nil {
		got, _ = parseGet(s)
	}
	return buildState(t.ifName, t.pub, t.addrs, t.peers, got)
}

// Problems are the things a farmer should know about (endpoint names that
// do not resolve, a key that could not be stored), for the state's
// problems. Empty when all is well; they never hold the private key.
func (t *Tunnel) Problems() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	if t.keyProblem != "" {
		out = append(out, t.keyProblem)
	}
	for i := range t.peers {
		if p, ok := t.problems[i]; ok {
			out = append(out, p)
		}
	}
	return out
}

// Close stops the tunnel and removes the interface (with its addresses
// and routes). It waits for the background work to end.
func (t *Tunnel) Close() error {
	t.closeOnce.Do(func() {
		t.cancel()
		<-t.done
	})
	return nil
}
