package farm

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Spread is the min, median and max of a per-node quantity.
type Spread struct{ Min, Median, Max float64 }

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Sorted(slices.Values(v))
	return Spread{s[0], s[len(s)/2], s[len(s)-1]}
}

func (s Spread) format(prec int) string {
	return fmt.Sprintf("%.*f / %.*f / %.*f", prec, s.Min, prec, s.Median, prec, s.Max)
}

// per is a per-node quantity's spread.
func (r *Result) per(f func(Node) float64) Spread {
	var v []float64
	for _, n := range r.Nodes {
		v = append(v, f(n))
	}
	return spread(v)
}

// Reach is the sweep's outcome: pairs that answered, pairs tried.
func (r *Result) Reach() (ok, total int) {
	for _, n := range r.Nodes {
		ok += n.PingOK
		total += n.PingTotal
	}
	return ok, total
}

// Header is the column line of Summary.
const Header = "| N | K | all addressed | sampled pairs reachable | RSS per node MiB (min / median / max) | live heap MiB | CPU s per node until addressed | CPU s per node at the end | LAN peers per node | neighbour table full |"

// Summary is one Markdown table row (see Header).
func (r *Result) Summary() string {
	ok, total := r.Reach()
	all := "not all: " + strconv.Itoa(r.Addressed)
	if r.AllAddressed > 0 {
		all = fmt.Sprintf("%.1f s", r.AllAddressed.Seconds())
	}
	k := "default"
	if r.LANPeers >= 0 {
		k = strconv.Itoa(r.LANPeers)
	}
	return fmt.Sprintf("| %d | %s | %s | %d/%d | %s | %s | %s | %s | %s | %d |", r.N, k, all, ok, total,
		r.per(func(n Node) float64 { return float64(n.RSSKiB) / 1024 }).format(1),
		r.per(func(n Node) float64 { return float64(n.LiveHeapMiB) }).format(0),
		r.per(func(n Node) float64 { return n.CPUAddr.Seconds() }).format(2),
		r.per(func(n Node) float64 { return n.CPU.Seconds() }).format(2),
		r.per(func(n Node) float64 { return float64(n.LANPeers) }).format(0), r.NeighbourOverflows)
}

// CSVHeader is the column line of WriteCSV.
var CSVHeader = []string{"n", "lan_peers", "node", "addressed_s", "all_addressed_s",
	"lan_peers_up", "rss_kib", "live_heap_mib", "cpu_addressed_s", "cpu_s", "ping_ok", "ping_total", "unreachable"}

// WriteCSV writes one row per node (CSVHeader's columns, without the
// header line).
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }
	for _, n := range r.Nodes {
		var un string
		for i, u := range n.Unreachable {
			if i > 0 {
				un += " "
			}
			un += strconv.Itoa(u)
		}
		_ = cw.Write([]string{strconv.Itoa(r.N), strconv.Itoa(r.LANPeers), strconv.Itoa(n.Index),
			secs(n.Addressed), secs(r.AllAddressed), strconv.Itoa(n.LANPeers), strconv.FormatInt(n.RSSKiB, 10), strconv.Itoa(n.LiveHeapMiB),
			secs(n.CPUAddr), secs(n.CPU), strconv.Itoa(n.PingOK), strconv.Itoa(n.PingTotal), un})
	}
	cw.Flush()
	return cw.Error()
}
