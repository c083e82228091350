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
	"path/filepath"
	"time"

	"github.com/threefoldtech/netinit/boot/identity"
	"github.com/threefoldtech/netinit/boot/overlay/keys"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/boot/spec"
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

// describeIdentity says where the node identity's key came from, for the
// state (never the key itself).
func describeIdentity(id *identity.Identity) string {
	return fmt.Sprintf("0-os node identity %s (format %s)", id.Path, id.Format)
}

// pinDir is where this boot's keys are pinned ("" = nowhere: no pin
// directory, or the key directory itself).
func (m *Manager) pinDir() string {
	if p := m.cfg.PinDir; p != "" && filepath.Clean(p) != filepath.Clean(m.cfg.KeyDir) {
		return p
	}
	return ""
}

// yggKey sets opts.Key to the key Yggdrasil runs with and says where it
// came from: the node identity id when there is one; else the key pinned
// for this boot by an earlier start (a worker restarted: the key dir, or
// the disk the identity's seed file is on, may be mounted over since);
// else a seed file (netinit.ygg.seed=) or the key dir. A key not read
// from the pin is pinned for the rest of the boot.
func (m *Manager) yggKey(opts *ygg.Options, id *identity.Identity) (string, error) {
	pin := m.pinDir()
	var origin string
	pinned := false
	switch {
	case id != nil:
		opts.Key, origin = id.Key, describeIdentity(id)
	default:
		k, o, ev, ok := keys.PinnedEd25519(pin, ygg.KeyFile)
		if ev.Problem != "" {
			m.problem("yggdrasil: %s", ev.Problem)
		}
		if ok {
			opts.Key, origin, pinned = k, o, true
			break
		}
		k, probs, err := ygg.LoadKey(ygg.Options{KeyDir: m.cfg.KeyDir, Seed: m.cfg.Spec.YggSeed, Logf: m.cfg.Logf})
		if err != nil {
			return "", err
		}
		m.mu.Lock()
		m.problems = append(m.problems, probs...)
		m.mu.Unlock()
		opts.Key, origin = k, "own key in "+m.cfg.KeyDir
		if s := m.cfg.Spec.YggSeed; s != "" {
			origin = "derived from seed file " + s
		}
	}
	if pinned {
		return origin + ", pinned for this boot in " + pin, nil
	}
	if err := keys.PinEd25519(pin, ygg.KeyFile, opts.Key, origin); err != nil {
		m.problem("yggdrasil: key not pinned for this boot (%v): a restart after a mount over %s may change the node's address", err, m.cfg.KeyDir)
	}
	return origin, nil
}

// watchIdentity starts the identity watch once; the caller holds yggMu.
func (m *Manager) watchIdentity() {
	m.mu.Lock()
	on := m.idWatching
	m.idWatching = true
	m.mu.Unlock()
	if !on {
		m.spawn("identity watch", m.identityLoop)
	}
}

// identityLoop waits for the node identity while Yggdrasil runs on another
// key, then restarts Yggdrasil with it (once: the node's identity does not
// change while it runs).
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
	if opts.Key != nil && opts.Key.Equal(id.Key) {
		m.mu.Unlock()
		return nil
	}
	if old == nil {
		// Not started (yet, or not at all, or handed over): it starts
		// with this one.
		m.idPath = id.Path
		m.mu.Unlock()
		m.cfg.Logf("yggdrasil: node identity %s will be used when Yggdrasil starts", id.Path)
		return nil
	}
	m.mu.Unlock()
	before := old.Address()
	if h, _ := m.zosHolds(ygg.AddressOf(id.Key), true); h != nil {
		// 0-OS's own Yggdrasil runs with the identity's key already (its
		// networkd started before this poll found the seed). Of two
		// instances with one key, the one that joins later wins:
		// ironwood keeps one entry per key, a peer resends to a new link
		// of a key what that key announced before (network/router.go
		// addPeer), and a node that hears its own key announced with a
		// higher sequence number numbers its next announcement above it
		// (_handleAnnounce: "our seq reset when we came back"). Started
		// now with the node's key, netinit's would win for the second
		// the handover takes, and leave 0-OS's announcements older than
		// its own: ignored as stale until those expire (routerTimeout,
		// 5 min), the node's address unreachable meanwhile
		// (qemu/TestBootZOSGraph/handover saw it). So netinit's, on its
		// own key, steps aside without ever running the node's.
		m.mu.Lock()
		m.yggOpts.Key, m.yggAddr, m.yggIdentity = id.Key, ygg.AddressOf(id.Key), describeIdentity(id)
		m.mu.Unlock()
		m.pinIdentity(id)
		m.stepAside(h, fmt.Sprintf(" with the node identity %s, which netinit's (address %s) had not switched to yet", id.Path, before))
		return nil
	}
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
	origin := describeIdentity(id)
	m.mu.Lock()
	m.ygg, m.yggOpts, m.yggAddr = n, opts, ygg.AddressOf(id.Key)
	m.yggIdentity = origin
	m.mu.Unlock()
	m.pinIdentity(id)
	m.cfg.Logf("yggdrasil: now the 0-OS node identity from %s: address %s -> %s", id.Path, before, n.Address())
	m.publish()
	return nil
}

// pinIdentity pins the identity's key for this boot: a worker restarted
// after the seed's disk is mounted over (or gone) keeps the node's
// address.
func (m *Manager) pinIdentity(id *identity.Identity) {
	if err := keys.PinEd25519(m.pinDir(), ygg.KeyFile, id.Key, describeIdentity(id)); err != nil {
		m.problem("yggdrasil: node identity not pinned for this boot (%v)", err)
	}
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

// redactAll is spec.RedactURI of each peer or listener URI, for the log.
func redactAll(uris []string) []string {
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = spec.RedactURI(u)
	}
	return out
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
