package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
)

// cmdStatus is `netinit status`: the state file as a table or as JSON.
func cmdStatus(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the state document (schema in docs/state.md)")
	path := fs.String("state", state.DefaultPath, "state file to read")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	st, err := state.Read(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "netinit status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	render(os.Stdout, st)
	return 0
}

// render prints the state for a farmer, 80 columns wide.
func render(w io.Writer, st *state.State) {
	pub := "no"
	if st.PublicIPv6 {
		pub = "yes"
	}
	fmt.Fprintf(w, "phase:       %s (updated %s)\n", st.Phase, st.UpdatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "uplink:      %s (%s)\n", orNone(st.Uplink), st.UplinkReason)
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
	fmt.Fprintln(w, "\nroutes:")
	for _, r := range st.Routes {
		via := ""
		if r.Via != "" {
			via = " via " + r.Via
		}
		fmt.Fprintf(w, "  %s%s dev %s (%s)\n", r.Dst, via, r.Dev, r.Source)
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
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem:     %s\n", p)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
