package farm

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/internal/lab"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture netinit runs on).
const clockTick = 100

// rss is the process's resident set (VmRSS, KiB).
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("reading RSS of %d: no VmRSS", pid)
}

// cpuTime is the process's user+system CPU time (/proc/PID/stat fields
// 14 and 15, proc(5)).
func cpuTime(pid int) (time.Duration, error) {
	fs, err := lab.ProcStat(pid)
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	if len(fs) < 13 {
		return 0, fmt.Errorf("reading CPU time of %d: %q", pid, fs)
	}
	// fs[0] is field 3 (state): utime is field 14, stime 15.
	u, err1 := strconv.ParseInt(fs[11], 10, 64)
	s, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("reading CPU time of %d: %q", pid, fs)
	}
	return time.Duration(u+s) * time.Second / clockTick, nil
}

// The IPv6 neighbour table (ndisc_cache) is one for the whole kernel,
// shared by every namespace, and holds at most
// net.ipv6.neigh.default.gc_thresh3 entries (1024 by default; only the
// host can raise it). Each node takes one per LAN neighbour's link-local
// address and a few for the multicast groups it sends to (beacons, MLD
// reports, DAD, router solicitation). While a farm boots, a node holds
// many more than its K peers: until it has heard the whole LAN its
// choices change, and every node it called or that called it keeps an
// entry until the kernel's collector ages it out (measured: up to half
// the LAN, about 45 entries a node at 100 nodes). A real farm has one
// table per node; a farm of namespaces on one kernel that overflows it
// loses beacons ("sendmsg: invalid argument") and peerings.
const neighboursPerNode = 6 // besides the LAN neighbours

// neighbourBudget warns when the farm may not fit in the neighbour table.
func neighbourBudget(n, lanPeers int) string {
	limit, err := readNeigh("gc_thresh3")
	if err != nil {
		return ""
	}
	peers := lanPeers
	if peers < 0 {
		peers = 8 // the daemon's default
	}
	if peers == 0 || peers > n-1 {
		peers = n - 1 // yggdrasil-go alone: every other node
	}
	need := n * (min(n-1, max(peers, n/2)) + neighboursPerNode)
	if need <= limit*9/10 {
		return ""
	}
	return fmt.Sprintf("%d nodes need about %d IPv6 neighbour entries; this kernel holds %d for all namespaces "+
		"(net.ipv6.neigh.default.gc_thresh3): expect lost beacons and peerings (NeighbourOverflows); "+
		"-neigh-table=%d raises it for the run", n, need, limit, roundUp(need*5/4))
}

// roundUp is n rounded up to a multiple of 1024.
func roundUp(n int) int { return (n + 1023) / 1024 * 1024 }

// The neighbour table's thresholds (ndisc_cache): gc_thresh3 is the hard
// cap, the table is collected above gc_thresh2 (after 5 s) and never
// below gc_thresh1.
const neighPath = "/proc/sys/net/ipv6/neigh/default/"

// readNeigh reads the neighbour table setting name (gc_thresh3, ...).
func readNeigh(name string) (int, error) {
	b, err := os.ReadFile(neighPath + name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// growNeighbourTable raises the kernel's IPv6 neighbour table cap to
// entries (gc_thresh3; gc_thresh2 to half of it) when it is lower, and
// returns what puts the old values back. This is a host-wide setting —
// the one thing the farm changes outside its namespaces — so it is only
// done when asked (-neigh-table), never lowered, and restored when the
// run ends (success, failure, SIGINT/SIGTERM; not after SIGKILL).
func growNeighbourTable(entries int, logf console.Logf) (restore func(), err error) {
	old3, err := readNeigh("gc_thresh3")
	if err != nil {
		return nil, fmt.Errorf("reading the neighbour table cap: %w", err)
	}
	old2, err := readNeigh("gc_thresh2")
	if err != nil {
		return nil, fmt.Errorf("reading the neighbour table cap: %w", err)
	}
	if entries <= old3 {
		return func() {}, nil
	}
	write := func(name string, v int) error {
		return os.WriteFile(neighPath+name, []byte(strconv.Itoa(v)+"\n"), 0o644)
	}
	restore = func() {
		// gc_thresh2 may not exceed gc_thresh3 on the way down: 2 first.
		e2, e3 := write("gc_thresh2", old2), write("gc_thresh3", old3)
		if e2 != nil || e3 != nil {
			logf("farm: WARNING: could not restore net.ipv6.neigh.default.gc_thresh2/3 to %d/%d: %v %v", old2, old3, e2, e3)
			return
		}
		logf("farm: neighbour table cap restored to %d", old3)
	}
	if err := write("gc_thresh3", entries); err != nil {
		return nil, fmt.Errorf("raising the neighbour table cap to %d: %w", entries, err)
	}
	if err := write("gc_thresh2", max(old2, entries/2)); err != nil {
		restore()
		return nil, fmt.Errorf("raising the neighbour table cap to %d: %w", entries, err)
	}
	logf("farm: neighbour table cap (net.ipv6.neigh.default.gc_thresh3) raised from %d to %d for this run", old3, entries)
	return restore, nil
}

// neighbourOverflows is the kernel's count of full-table failures in the
// IPv6 neighbour table (/proc/net/stat/ndisc_cache, column table_fulls,
// summed over CPUs), or 0 if unknown.
func neighbourOverflows() int64 {
	b, err := os.ReadFile("/proc/net/stat/ndisc_cache")
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	col := slices.Index(strings.Fields(lines[0]), "table_fulls")
	if col < 0 {
		return 0
	}
	var sum int64
	for _, l := range lines[1:] {
		if fs := strings.Fields(l); col < len(fs) {
			v, _ := strconv.ParseInt(fs[col], 16, 64)
			sum += v
		}
	}
	return sum
}

// gcLine is the heap part of a GODEBUG=gctrace=1 line (runtime package
// doc): heap at GC start -> at GC end -> live, in MB.
var gcLine = regexp.MustCompile(`^gc \d+ @.* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// liveHeap is the live heap (MB) of the last GC in a daemon's log, -1
// if there is none.
func liveHeap(logPath string) int {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return -1
	}
	live := -1
	for _, l := range strings.Split(string(b), "\n") {
		if m := gcLine.FindStringSubmatch(l); m != nil {
			live, _ = strconv.Atoi(m[3])
		}
	}
	return live
}
