package engine

import (
	"net/netip"
	"slices"
	"time"
)

// The uplink election (issue 11). A candidate is a link whose lease or RA
// brings a default router. The order is netinit.uplink= > BOOTIF > a
// candidate that proved it reaches the probe targets through its own
// gateway (then 0-OS's preference: a private gateway, then the lowest
// address) > the first candidate when none could prove anything (offline
// labs, no targets). While more than one link could be a candidate, no link
// installs a default route in the main table until the election is
// decided, and it is decided within a bounded time (electionWindow plus
// one probe).

// candidate is one link that can carry the default routes, with the
// evidence gathered for it.
type candidate struct {
	name     string
	addr     netip.Addr // its address: the IPv4 lease's, else its global IPv6 one
	gw4, gw6 netip.Addr // its routers
	dns      []netip.Addr
	probed   bool // a reachability check ran
	reach    bool // ... and connected to a probe target
	evidence []string
}

// election is what the uplink is chosen from.
type election struct {
	cmdline string      // netinit.uplink=
	bootif  string      // the managed link whose MAC is BOOTIF's, "" if none
	asked   []string    // links that asked to install a default route, in order
	cands   []candidate // what is known of each asking link (probe results)
	decided bool        // the wait for other candidates and their probes is over
	moved   string      // the link the daemon moved the uplink to (reelect)
	// kept is the uplink an earlier process elected (Config.Previous),
	// with its reason.
	kept, keptReason string
}

// Reasons for the uplink, as the state says them.
const (
	reasonCmdline   = "cmdline"
	reasonBootif    = "bootif"
	reasonReachable = "reachable"
	reasonFirst     = "first-default-route"
	reasonReelected = "reelected"
)

// elect chooses the uplink: netinit.uplink= first, then the BOOTIF link,
// then (once the election is decided) the best reachable candidate, then
// the first link whose client asked to install a default route. It
// returns "" while nothing can be chosen yet, and whether the choice is
// fixed (cmdline or BOOTIF: never changes, never re-elected).
func elect(in election) (link, reason string, fixed bool) {
	switch {
	case in.cmdline != "":
		return in.cmdline, reasonCmdline, true
	case in.bootif != "":
		return in.bootif, reasonBootif, true
	case in.moved != "":
		return in.moved, reasonReelected, false
	case in.kept != "":
		return in.kept, in.keptReason, false
	case !in.decided || len(in.asked) == 0:
		return "", "", false
	}
	if best, ok := bestReachable(in.cands, in.asked, ""); ok {
		return best, reasonReachable, false
	}
	return in.asked[0], reasonFirst, false
}

// bestReachable is the reachable candidate 0-OS would pick (zosbase
// SelectZOS): a private (RFC 1918 / ULA) gateway first, then the lowest
// address, then the order in which they asked. except is left out.
func bestReachable(cands []candidate, asked []string, except string) (string, bool) {
	var rs []candidate
	for _, c := range cands {
		if c.reach && c.name != except {
			rs = append(rs, c)
		}
	}
	if len(rs) == 0 {
		return "", false
	}
	rank := func(c candidate) int {
		if c.gw4.IsPrivate() || c.gw6.IsPrivate() {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(rs, func(a, b candidate) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		if d := a.addr.Compare(b.addr); d != 0 {
			if !a.addr.IsValid() || !b.addr.IsValid() {
				return -d // a known address before none
			}
			return d
		}
		return slices.Index(asked, a.name) - slices.Index(asked, b.name)
	})
	return rs[0].name, true
}

// Re-election after the handoff (issue 11 item 2), with hysteresis: the
// uplink must have been unhealthy (no carrier, no usable lease with a
// default route, or no longer reaching the probe targets) for
// reelectGrace, another candidate must reach the targets now, and the
// uplink never moves more than once per reelectGap.
const (
	reelectGrace = 30 * time.Second
	reelectGap   = time.Minute
)

// reelectDue says whether the uplink may move now: unhealthy for
// reelectGrace, and not moved within reelectGap. badSince is when the
// uplink was first seen unhealthy (zero: healthy), lastMove when the
// uplink last changed (zero: never after the boot).
func reelectDue(now, badSince, lastMove time.Time) bool {
	if badSince.IsZero() || now.Sub(badSince) < reelectGrace {
		return false
	}
	return lastMove.IsZero() || now.Sub(lastMove) >= reelectGap
}

// reelect returns the link the uplink should move to, or false to stay
// (reelectDue says when it may move).
func reelect(now time.Time, uplink string, badSince, lastMove time.Time, cands []candidate, asked []string) (string, bool) {
	if !reelectDue(now, badSince, lastMove) {
		return "", false
	}
	return bestReachable(cands, asked, uplink)
}
