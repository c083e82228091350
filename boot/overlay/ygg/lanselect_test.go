package ygg

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// farmKeys is n distinct pseudo-random keys (fixed seed: reproducible).
func farmKeys(seed uint64, n int) []key {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]key, n)
	for i := range out {
		for j := range out[i] {
			out[i][j] = byte(rng.Uint32())
		}
	}
	return out
}

// farmGraph is every node's choice when all heard all.
func farmGraph(keys []key, k int) map[key][]key {
	g := map[key][]key{}
	for _, x := range keys {
		g[x] = lanNeighbours(x, keys, k)
	}
	return g
}

// eccentricity is the longest shortest path from src (BFS), and how many
// nodes it reached.
func eccentricity(g map[key][]key, src key) (depth, reached int) {
	dist := map[key]int{src: 0}
	queue := []key{src}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, y := range g[x] {
			if _, ok := dist[y]; !ok {
				dist[y] = dist[x] + 1
				depth = max(depth, dist[y])
				queue = append(queue, y)
			}
		}
	}
	return depth, len(dist)
}

func TestLANNeighboursFarm(t *testing.T) {
	for _, c := range []struct {
		n, k, maxDiameter int
	}{
		{100, 8, 4}, {300, 8, 5}, {300, 2, 150}, {300, 3, 150}, {300, 4, 12}, {100, 16, 3}, {10, 8, 2},
	} {
		keys := farmKeys(uint64(c.n*100+c.k), c.n)
		g := farmGraph(keys, c.k)
		full, sum := 0, 0
		for x, ns := range g {
			sum += len(ns)
			if len(ns) > c.k {
				t.Fatalf("n=%d k=%d: %x has %d neighbours", c.n, c.k, x[:4], len(ns))
			}
			if len(ns) == c.k {
				full++
			}
			for _, y := range ns {
				if y == x {
					t.Fatalf("n=%d k=%d: %x chose itself", c.n, c.k, x[:4])
				}
				// Symmetric: the side that calls (the lower key) and
				// the side that waits agree on every edge.
				if !slices.Contains(g[y], x) {
					t.Fatalf("n=%d k=%d: %x chose %x but not the reverse", c.n, c.k, x[:4], y[:4])
				}
			}
		}
		// On a large LAN the budget is nearly used (two rings may give
		// the same neighbour; an odd k leaves a slot).
		mean := float64(sum) / float64(c.n)
		if c.n >= 10*c.k && mean < 0.9*float64(c.k-c.k%2) {
			t.Errorf("n=%d k=%d: mean degree %.2f", c.n, c.k, mean)
		}
		diameter := 0
		for _, x := range keys {
			d, reached := eccentricity(g, x)
			if reached != c.n {
				t.Fatalf("n=%d k=%d: from %x only %d of %d nodes reachable", c.n, c.k, x[:4], reached, c.n)
			}
			diameter = max(diameter, d)
		}
		if diameter > c.maxDiameter {
			t.Errorf("n=%d k=%d: diameter %d > %d", c.n, c.k, diameter, c.maxDiameter)
		}
		t.Logf("n=%d k=%d: diameter %d, mean degree %.2f, %d nodes with %d neighbours", c.n, c.k, diameter, mean, full, c.k)
	}
}

func TestLANNeighboursDeterministic(t *testing.T) {
	keys := farmKeys(7, 200)
	self := keys[42]
	want := lanNeighbours(self, keys, 8)
	for i := range 20 {
		shuffled := slices.Clone(keys)
		rand.New(rand.NewPCG(uint64(i), 2)).Shuffle(len(shuffled), func(a, b int) {
			shuffled[a], shuffled[b] = shuffled[b], shuffled[a]
		})
		// Duplicates and self in the heard list change nothing.
		shuffled = append(shuffled, self, keys[3], keys[3])
		if got := lanNeighbours(self, shuffled, 8); !slices.Equal(got, want) {
			t.Fatalf("order %d: %x, want %x", i, got, want)
		}
	}
	// A node coming changes the choice of at most 2 others per ring.
	more := append(slices.Clone(keys), farmKeys(8, 1)...)
	changed := 0
	for _, x := range keys {
		if !slices.Equal(lanNeighbours(x, keys, 8), lanNeighbours(x, more, 8)) {
			changed++
		}
	}
	if changed > 8 {
		t.Errorf("one node more: %d of %d nodes change a neighbour, want <= 8", changed, len(keys))
	}
}

func TestLANNeighboursSmall(t *testing.T) {
	keys := farmKeys(9, 9)
	for _, k := range []int{0, -1, 8, 100} {
		if got := lanNeighbours(keys[0], keys, k); len(got) != 8 || slices.Contains(got, keys[0]) {
			t.Errorf("k=%d, 9 nodes: %d neighbours, want all 8 others", k, len(got))
		}
	}
	if got := lanNeighbours(keys[0], nil, 8); len(got) != 0 {
		t.Errorf("alone: %x", got)
	}
	// k=1 is raised to the ring's 2.
	if got := lanNeighbours(keys[0], keys, 1); len(got) != 2 {
		t.Errorf("k=1: %d neighbours, want 2", len(got))
	}
}
