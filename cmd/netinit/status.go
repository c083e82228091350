package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/l2"
	"github.com/threefoldtech/netinit/boot/state"
)

// cmdStatus is `netinit status`: the live state from the daemon's control
// socket, or the state file when no daemon answers (marked stale when the
// process that wrote it is gone).
func cmdStatus(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the state document (schema in docs/state.md)")
	path := fs.String("state", state.DefaultPath, "state file to read when no daemon answers")
	socket := fs.String("socket", "", "control socket (default: ctl.sock beside the state file)")
	timeline := fs.Bool("timeline", false, "print the boot timeline")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *socket == "" {
		*socket = filepath.Join(filepath.Dir(*path), "ctl.sock")
	}
	st, source := liveState(*socket, *path)
	if st == nil {
		fmt.Fprintf(os.Stderr, "netinit status: %s\n", source)
		return 1
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	case *timeline:
		renderTimeline(os.Stdout, st)
	default:
		fmt.Fprintf(os.Stdout, "source:      %s\n", source)
		render(os.Stdout, st, time.Now())
	}
	return 0
}

// liveState asks the daemon, then falls back to the file. The second
// value says where the state came from (or why there is none).
func liveState(socket, path string) (*state.State, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := control.Call(ctx, socket, "status")
	if err == nil && r.State != nil {
		return r.State, "live, from the network daemon (" + socket + ")"
	}
	st, ferr := state.Read(path)
	if ferr != nil {
		return nil, fmt.Sprintf("no daemon answers on %s (%v) and %v", socket, err, ferr)
	}
	if st.PID > 0 && unix.Kill(st.PID, 0) != nil {
		return st, fmt.Sprintf("STALE: %s, written by pid %d which is no longer running", path, st.PID)
	}
	return st, path + " (no daemon answers on " + socket + ")"
}

// renderTimeline prints the milestones in order, with the time between
// them.
func renderTimeline(w io.Writer, st *state.State) {
	type ev struct {
		name string
		ms   int64
	}
	var evs []ev
	for k, v := range st.TimingsMS {
		evs = append(evs, ev{k, v})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].ms != evs[j].ms {
			return evs[i].ms < evs[j].ms
		}
		return evs[i].name < evs[j].name
	})
	fmt.Fprintf(w, "%-12s %9s %9s\n", "MILESTONE", "AT", "+DELTA")
	var prev int64
	for _, e := range evs {
		fmt.Fprintf(w, "%-12s %7dms %+7dms\n", e.name, e.ms, e.ms-prev)
		prev = e.ms
	}
}

// render prints the state for a farmer, 80 columns wide; ages are as of
// now.
func render(w io.Writer, st *state.State, now time.Time) {
	pub := "no"
	if st.PublicIPv6 {
		pub = "yes"
	}
	fmt.Fprintf(w, "phase:       %s (updated %s)\n", st.Phase, st.UpdatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "uplink:      %s (%s)\n", orNone(st.Uplink), st.UplinkReason)
	for _, c := range st.Candidates {
		reach := "not reachable"
		if c.Reachable {
			reach = "reachable"
		}
		fmt.Fprintf(w, "  candidate %s (%s, gateways %s): %s %q\n", c.Name, orNone(c.Address), strings.Join(c.Gateways, " "), reach, c.Evidence)
	}
	if st.NAT64Prefix != "" {
		fmt.Fprintf(w, "NAT64:       %s (PREF64 from the uplink's router)\n", st.NAT64Prefix)
	}
	fmt.Fprintf(w, "public IPv6: %s — %s\n", pub, st.PublicIPv6Reason)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nLINK\tCARRIER\tMTU\tADDRESS\tSOURCE\tLIFETIME")
	for _, ifc := range st.Interfaces {
		car := "no"
		if ifc.Carrier {
			car = "yes"
		}
		if len(ifc.Addresses) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\n", ifc.Name, car, ifc.MTU)
		}
		for i, a := range ifc.Addresses {
			name, c, mtu := ifc.Name, car, fmt.Sprint(ifc.MTU)
			if i > 0 {
				name, c, mtu = "", "", ""
			}
			life := "forever"
			if a.ValidLifetimeS > 0 {
				life = (time.Duration(a.ValidLifetimeS) * time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, c, mtu, a.CIDR, a.Source, life)
		}
	}
	tw.Flush()
	renderBonds(w, st.Bonds)
	renderSwitch(w, st)
	fmt.Fprintln(w, "\nroutes:")
	for _, r := range st.Routes {
		fmt.Fprintf(w, "  %s\n", r)
	}
	fmt.Fprintf(w, "dns:         %s\n", strings.Join(st.DNS, " "))
	if len(st.Search) > 0 {
		fmt.Fprintf(w, "search:      %s\n", strings.Join(st.Search, " "))
	}
	if len(st.NTP) > 0 {
		fmt.Fprintf(w, "ntp:         %s\n", strings.Join(st.NTP, " "))
	}
	if st.Hostname != "" {
		fmt.Fprintf(w, "hostname:    %s\n", st.Hostname)
	}
	fmt.Fprintln(w)
	renderConnectivity(w, st.Connectivity)
	renderOverlays(w, st, now)
	renderClock(w, st.Clock, now)
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem:     %s\n", p)
	}
}

// renderBonds prints each bond with its ports and their LACP state:
// "bond:        bond0 802.3ad (auto), partner 00:11:22:33:44:55 key 7"
// and one line per port.
func renderBonds(w io.Writer, bonds []state.Bond) {
	for _, b := range bonds {
		partner := ""
		if b.PartnerSystem != "" {
			partner = fmt.Sprintf(", partner %s key %d", b.PartnerSystem, b.PartnerKey)
		}
		fmt.Fprintf(w, "bond:        %s %s (%s)%s\n", b.Name, b.Mode, b.Origin, partner)
		for _, p := range b.Ports {
			carrier := "no carrier"
			if p.Carrier {
				carrier = "carrier"
			}
			line := fmt.Sprintf("  port %s %s: %s, %s, mii %s", p.Name, p.MAC, carrier, p.State, p.MIIStatus)
			if b.Mode == "802.3ad" {
				bundled := "not bundled"
				if p.Bundled {
					bundled = "bundled"
				}
				line += fmt.Sprintf(", aggregator %d, %s; actor %s; partner %s", p.AggregatorID, bundled,
					orNone(strings.Join(p.ActorState, ",")), orNone(strings.Join(p.PartnerState, ",")))
			}
			fmt.Fprintln(w, line)
		}
	}
}

// renderSwitch prints what each link's switch said: its LLDP neighbour
// and its spanning tree.
func renderSwitch(w io.Writer, st *state.State) {
	for _, ifc := range st.Interfaces {
		if n := ifc.LLDP; n != nil {
			fmt.Fprintf(w, "lldp:        %s: %s (heard %ds ago, holds %ds)\n", ifc.Name, l2.FromState(n), n.AgeS, n.TTLS)
		}
		if t := ifc.SpanningTree; t != nil {
			fwd := ""
			if t.Forwarding {
				fwd = ", forwarding"
			}
			fmt.Fprintf(w, "stp:         %s: %s, forward delay %ds, root %s%s (first BPDU at %ds, last %ds ago)\n",
				ifc.Name, t.Protocol, t.ForwardDelayS, t.Root, fwd, t.FirstS, t.AgeS)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// renderConnectivity prints the probed verdict per family, with its
// evidence.
func renderConnectivity(w io.Writer, c *state.Connectivity) {
	if c == nil {
		fmt.Fprintln(w, "verdict:     not probed (only the network daemon probes)")
		return
	}
	how := "from the addresses only"
	if c.Probed {
		how = fmt.Sprintf("probed in %s", time.Duration(c.TookMS)*time.Millisecond)
	}
	node := "reachable node"
	if c.Hidden {
		node = "hidden node (no public IPv6)"
	}
	fmt.Fprintf(w, "verdict:     %s, %s\n", node, how)
	for _, f := range []struct {
		name string
		f    state.Family
	}{{"ipv4", c.IPv4}, {"ipv6", c.IPv6}} {
		ev := ""
		if len(f.f.Evidence) > 0 {
			ev = " — " + strings.Join(f.f.Evidence, "; ")
		}
		fmt.Fprintf(w, "%s:        %s%s\n", f.name, orNone(f.f.Verdict), ev)
	}
}

// renderHandover says that 0-OS's own Yggdrasil carries the node's key
// and netinit's stepped aside.
func renderHandover(w io.Writer, h *state.YggdrasilHandover) {
	fmt.Fprintf(w, "yggdrasil:   handed to %s (%s in netns %s, since %s)\n",
		h.To, h.Interface, h.Namespace, h.Since.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  it holds the node's address %s\n", h.Address)
	if !h.Peered {
		fmt.Fprintf(w, "  no peering of it seen (no TCP connection of its yggdrasil)\n")
	}
	if g := h.GoneSince; g != nil {
		back := g.Add(time.Duration(h.TakeBackAfterS) * time.Second)
		fmt.Fprintf(w, "  gone since %s; taken back at %s\n", g.UTC().Format(time.RFC3339), back.UTC().Format(time.RFC3339))
	}
}

// renderOverlays prints Yggdrasil, WireGuard and the overlay firewall:
// what runs, its peers, and whether inbound traffic is filtered.
func renderOverlays(w io.Writer, st *state.State, now time.Time) {
	d := st.Overlays
	switch y := st.Yggdrasil; {
	case st.YggdrasilHandover != nil:
		renderHandover(w, st.YggdrasilHandover)
	case y != nil:
		up := 0
		for _, p := range y.Peers {
			if p.Up {
				up++
			}
		}
		fmt.Fprintf(w, "yggdrasil:   %s, subnet %s, peers %d/%d up\n", y.Address, y.Subnet, up, len(y.Peers))
		if y.Identity != "" {
			fmt.Fprintf(w, "  key: %s\n", y.Identity)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range y.Peers {
			if p.Up {
				fmt.Fprintf(tw, "  %s\tup\t%.1f ms\n", p.URI, p.LatencyMS)
			} else {
				fmt.Fprintf(tw, "  %s\tdown\n", p.URI)
			}
		}
		tw.Flush()
	case d != nil:
		fmt.Fprintf(w, "yggdrasil:   off (%s)\n", d.YggdrasilReason)
	default:
		fmt.Fprintln(w, "yggdrasil:   not running (no overlay decision: a oneshot run, or the daemon has not decided yet)")
	}
	switch g := st.WireGuard; {
	case g != nil:
		fmt.Fprintf(w, "wireguard:   %s %s\n", g.Interface, strings.Join(g.Addresses, " "))
		for _, p := range g.Peers {
			hs := "no handshake yet"
			if p.LastHandshake != nil {
				hs = "handshake " + now.Sub(*p.LastHandshake).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(w, "  peer %s at %s\n", p.PublicKey, orNone(p.Endpoint))
			fmt.Fprintf(w, "       %s, received %s, sent %s\n", hs, bytesIEC(p.RxBytes), bytesIEC(p.TxBytes))
		}
	case d != nil:
		fmt.Fprintf(w, "wireguard:   off (%s)\n", d.WireGuardReason)
	default:
		fmt.Fprintln(w, "wireguard:   not running")
	}
	switch f := st.FirewallStatus; {
	case f == nil && st.Yggdrasil == nil && st.WireGuard == nil:
		fmt.Fprintln(w, "firewall:    none (no overlay of netinit's runs)")
	case f == nil:
		fmt.Fprintln(w, "firewall:    unknown (the state does not say)")
	case !f.Applied:
		fmt.Fprintf(w, "firewall:    NOT applied on %s: %s — inbound traffic on the overlays is NOT filtered\n",
			strings.Join(f.Interfaces, " "), f.Error)
	default:
		open := "no ports"
		if len(f.Allow) > 0 {
			open = strings.Join(f.Allow, " ")
		}
		fmt.Fprintf(w, "firewall:    applied on %s: open %s, the rest dropped\n",
			strings.Join(f.Interfaces, " "), open)
	}
}

// renderClock prints the clock loop's last round in one line.
func renderClock(w io.Writer, c *state.Clock, now time.Time) {
	if c == nil {
		fmt.Fprintln(w, "clock:       not kept by netinit (only the network daemon keeps it)")
		return
	}
	last, next := "never", ""
	if c.LastSync != nil {
		last = now.Sub(*c.LastSync).Round(time.Second).String() + " ago"
	}
	if c.NextSync != nil {
		next = "; next in " + max(c.NextSync.Sub(now), 0).Round(time.Second).String()
	}
	if c.Owner != "" {
		// After the handoff: 0-OS's ntpd keeps the clock (issue 26).
		fmt.Fprintf(w, "clock:       left to %s; measured %s off by ntp %s%s\n",
			c.Owner, time.Duration(c.OffsetMS)*time.Millisecond, orNone(c.Server), next)
		return
	}
	if c.Measured {
		fmt.Fprintf(w, "clock:       measured %s off by ntp %s, left to this host (netinit up sets no clock)%s\n",
			time.Duration(c.OffsetMS)*time.Millisecond, c.Server, next)
		return
	}
	if !c.Set {
		fmt.Fprintf(w, "clock:       NOT synced (last sync %s%s): %s\n", last, next, orNone(c.Error))
		return
	}
	how := map[string]string{"slew": "slewed", "step": "stepped"}[c.Method]
	pool := ""
	if c.Pool {
		pool = " (pool)"
	}
	fmt.Fprintf(w, "clock:       %s %s by %s%s, %s%s\n", orNone(how), time.Duration(c.OffsetMS)*time.Millisecond, c.Server, pool, last, next)
}

// bytesIEC is n bytes in IEC units: "512 B", "1.5 KiB", "3.2 MiB".
func bytesIEC(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
