package ygg

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
)

// MinLANPeers is the smallest bound that keeps the LAN connected: the two
// ring neighbours.
const MinLANPeers = 2

// key is an ed25519 public key, usable as a map key.
type key [ed25519.PublicKeySize]byte

// lanNeighbours returns the nodes self peers with among those heard on the
// LAN (self and duplicates in heard are ignored), at most k of them, in key
// order. k <= 0 means every node heard (yggdrasil-go's own multicast
// behaviour); 0 < k < MinLANPeers is taken as MinLANPeers.
//
// The choice is a function of the set of keys alone, so every node that
// heard the same set computes the same graph, and it is symmetric: y is
// among x's neighbours exactly when x is among y's. The graph is the union
// of c = k/2 rings (Hamiltonian cycles) over the nodes heard, each node
// joined to its predecessor and successor in each:
//
//   - ring 0 orders the nodes by key: the nearest in key space;
//   - ring j >= 1 orders them by sha256(j || key): a pseudo-random cycle.
//
// One ring alone is connected whatever the set, so the LAN stays one
// Yggdrasil network with any k >= 2. The pseudo-random rings keep the
// path length near log(N) rather than N/2: the union of a few random
// Hamiltonian cycles is an expander with high probability. A node that
// comes or goes changes the neighbours of at most 2 nodes per ring.
// Each node has at most 2c <= k neighbours (an odd k leaves one slot
// unused; fewer when two rings give the same neighbour). When the LAN has
// k+1 nodes or fewer every node peers with every other.
func lanNeighbours(self key, heard []key, k int) []key {
	all := []key{self}
	all = append(all, heard...)
	slices.SortFunc(all, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	all = slices.Compact(all)
	n := len(all)
	if k <= 0 || n-1 <= k {
		return slices.DeleteFunc(all, func(x key) bool { return x == self })
	}
	set := map[key]bool{}
	for j := range max(k, MinLANPeers) / 2 {
		order := all
		if j > 0 {
			order = ringOrder(all, j)
		}
		i := slices.Index(order, self)
		set[order[(i+1)%n]] = true
		set[order[(i-1+n)%n]] = true
	}
	out := make([]key, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// ringOrder is the order of the j-th ring: the keys sorted by
// sha256(j || key), ties (never seen in practice) broken by the key.
func ringOrder(all []key, j int) []key {
	type hk struct {
		h [sha256.Size]byte
		k key
	}
	hs := make([]hk, len(all))
	for i, x := range all {
		hs[i] = hk{sha256.Sum256(append([]byte{byte(j >> 8), byte(j)}, x[:]...)), x}
	}
	slices.SortFunc(hs, func(a, b hk) int {
		if c := bytes.Compare(a.h[:], b.h[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.k[:], b.k[:])
	})
	out := make([]key, len(hs))
	for i, x := range hs {
		out[i] = x.k
	}
	return out
}
