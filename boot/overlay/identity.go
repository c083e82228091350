package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/threefoldtech/netinit/boot/identity"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/boot/state"
)

// IdentityPoll is how often the daemon looks for the 0-OS node identity
// while Yggdrasil runs on a key of its own. 0-OS mounts the disk that
// holds the seed (and identityd writes a new one) after the handoff.
const IdentityPoll = 5 * time.Second

// DefaultListen are the Yggdrasil listeners of a node with public IPv6,
// on 0-OS's ports (zosbase pkg/network/yggdrasil: YggListenTCP,
// YggListenTLS), so that hidden nodes have public nodes to peer with.
var DefaultListen = []string{"tcp://[::]:9943", "tls://[::]:9944"}

// nodeIdentity finds the 0-OS node identity: netinit.identity= when given,
// else 0-OS's own seed paths (identity.Find). It returns nil when there is
// none (yet). A file that exists but cannot be used is a problem, said
// once per file version; the key in use stays.
func (m *Manager) nodeIdentity() *identity.Identity {
	m.mu.Lock()
	path := m.idPath
	m.mu.Unlock()
	if path == "" {
		path = m.cfg.Spec.Identity
	}
	if path == "" {
		path = identity.Find()
	}
	if path == "" {
		return nil
	}
	id, err := identity.Read(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		stamp := path
		if fi, serr := os.Stat(path); serr == nil {
			stamp = fmt.Sprintf("%s@%d", path, fi.ModTime().UnixNano())
		}
		m.mu.Lock()
		seen := m.idBad == stamp
		m.idBad = stamp
		m.mu.Unlock()
		if !seen {
			m.problem("yggdrasil: node identity not used: %v", err)
		}
		return nil
	}
	if id.Warning != "" {
		m.mu.Lock()
		seen := m.idWarned == path
		m.idWarned = path
		m.mu.Unlock()
		if !seen {
			m.problem("yggdrasil: %s", id.Warning)
		}
	}
	return id
}

// describeIdentity says where the Yggdrasil key came from, for the state
// (never the key itself).
func describeIdentity(id *identity.Identity, seed, keyDir string) string {
	switch {
	case id != nil:
		return fmt.Sprintf("0-os node identity %s (format %s)", id.Path, id.Format)
	case seed != "":
		return "derived from seed file " + seed
	default:
		return "own key in " + keyDir
	}
}

// identityLoop waits for the node identity while Yggdrasil runs on
// another key, then restarts Yggdrasil with it (once: the node's identity
// does not change while it runs).
func (m *Manager) identityLoop() {
	m.every(IdentityPoll, func() bool {
		id := m.nodeIdentity()
		if id == nil {
			return true
		}
		if err := m.useIdentity(id); err != nil {
			m.problem("yggdrasil: %v", err)
		}
		return false
	})
}

// SetIdentity makes Yggdrasil use the node identity in the seed file at
// path (the control socket's "identity" request, for a next stage that
// has the seed before netinit finds it).
func (m *Manager) SetIdentity(path string) error {
	id, err := identity.Read(path)
	if err != nil {
		return err
	}
	if id.Warning != "" {
		m.problem("yggdrasil: %s", id.Warning)
	}
	return m.useIdentity(id)
}

// useIdentity restarts Yggdrasil with the identity's key unless it runs
// with it already. The old and the new address go to the console and the
// state's problems are left alone: this is the expected course at a first
// boot, not a fault.
func (m *Manager) useIdentity(id *identity.Identity) error {
	m.yggMu.Lock()
	defer m.yggMu.Unlock()
	m.mu.Lock()
	old, opts := m.ygg, m.yggOpts
	if old == nil {
		// Not started (yet, or not at all): it starts with this one.
		m.idPath = id.Path
		m.mu.Unlock()
		m.cfg.Logf("yggdrasil: node identity %s will be used when Yggdrasil starts", id.Path)
		return nil
	}
	m.mu.Unlock()
	if opts.Key.Equal(id.Key) {
		return nil
	}
	before := old.Address()
	opts.Key = id.Key
	if err := old.Close(); err != nil {
		m.cfg.Logf("yggdrasil: %v", err)
	}
	n, err := ygg.Start(m.ctx, opts)
	if err != nil {
		// Back on the key it had: a node with the wrong address is
		// better than a node nobody can reach.
		n2, err2 := ygg.Start(m.ctx, m.yggOpts)
		m.mu.Lock()
		m.ygg = n2
		m.mu.Unlock()
		if err2 != nil {
			return fmt.Errorf("restart with identity %s: %v; and again with the old key: %v", id.Path, err, err2)
		}
		return fmt.Errorf("restart with identity %s: %w (still on the old key)", id.Path, err)
	}
	m.mu.Lock()
	m.ygg, m.yggOpts = n, opts
	m.yggIdentity = describeIdentity(id, "", "")
	m.mu.Unlock()
	m.cfg.Logf("yggdrasil: now the 0-OS node identity from %s: address %s -> %s", id.Path, before, n.Address())
	m.publish()
	return nil
}

// yggListen is what Yggdrasil listens on: netinit.ygg.listen= when given,
// else DefaultListen on a node with public IPv6 (a grid citizen: hidden
// nodes peer with it), else nothing.
func yggListen(listen []string, st *state.NetworkStatus) []string {
	if listen != nil {
		return listen
	}
	if st.PublicIPv6 {
		return DefaultListen
	}
	return nil
}

// peersOutsideOwn drops the peers whose address lies inside one of the
// node's own global IPv6 prefixes, as 0-OS does (zosbase
// pkg/network/yggdrasil EnsureYggdrasil: "so we do not just connect
// locally"). Host names are resolved with the lookup given, bounded by
// ctx; a name that does not resolve is kept (yggdrasil-go retries it).
func peersOutsideOwn(ctx context.Context, peers []string, own []netip.Prefix, lookup func(context.Context, string) ([]netip.Addr, error)) (kept, dropped []string) {
	if len(own) == 0 {
		return peers, nil
	}
next:
	for _, p := range peers {
		u, err := url.Parse(p)
		if err != nil {
			kept = append(kept, p)
			continue
		}
		host := u.Hostname()
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else if as, err := lookup(ctx, host); err == nil {
			addrs = as
		}
		for _, a := range addrs {
			for _, o := range own {
				if o.Contains(a.Unmap()) {
					dropped = append(dropped, p)
					continue next
				}
			}
		}
		kept = append(kept, p)
	}
	return kept, dropped
}

// ownPrefixes are the global IPv6 prefixes on the uplink.
func ownPrefixes(st *state.NetworkStatus) []netip.Prefix {
	var own []netip.Prefix
	for _, a := range st.UplinkAddrs() {
		if a.Prefix.Addr().Is6() && a.Public {
			own = append(own, a.Prefix.Masked())
		}
	}
	return own
}

// lookupHost resolves a peer's host name with the system resolver.
func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
