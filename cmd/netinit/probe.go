package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/threefoldtech/netinit/boot/cmdline"
	"github.com/threefoldtech/netinit/netprobe"
)

// listFlag is a repeatable flag; each use may also hold a comma list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			if _, _, err := net.SplitHostPort(x); err != nil {
				return fmt.Errorf("%q is not HOST:PORT", x)
			}
			*l = append(*l, x)
		}
	}
	return nil
}

const probeUsage = `usage: netinit probe [--json] [--reflector HOST:PORT]... [--target HOST:PORT]...
                     [--timeout DUR] [--dns-name NAME --resolver IP[:PORT]...]
                     [--cmdline STRING]

Probes this network namespace's connectivity from the addresses on its
links and prints a verdict per family (none, private, public-unverified,
public-outbound, public-inbound) with the evidence. Without --target and
--reflector, netinit.probe.targets= and netinit.probe.reflectors= are taken
from the kernel command line (or --cmdline). See docs/probe-protocol.md.
Exit: 0 done, 1 no addresses could be read, 2 usage.
`

// cmdProbe is `netinit probe`.
func cmdProbe(args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), probeUsage) }
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var cfg netprobe.Config
	var refl, targets, resolvers listFlag
	fs.Var(&refl, "reflector", "probe server HOST:PORT (repeatable)")
	fs.Var(&targets, "target", "outbound TCP target HOST:PORT (repeatable)")
	fs.Var(&resolvers, "resolver", "DNS resolver IP:PORT for --dns-name (repeatable)")
	fs.StringVar(&cfg.DNSName, "dns-name", "", "name to resolve through --resolver")
	fs.DurationVar(&cfg.Timeout, "timeout", netprobe.DefaultTimeout, "bound for the whole probe")
	line := fs.String("cmdline", "", "kernel command line to take probe targets from (default /proc/cmdline)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || cfg.Timeout <= 0 {
		fs.Usage()
		return 2
	}
	cfg.Reflectors, cfg.Targets, cfg.Resolvers, cfg.Internet = refl, targets, resolvers, internet
	if len(refl)+len(targets) == 0 {
		if *line == "" {
			b, _ := os.ReadFile("/proc/cmdline")
			*line = string(b)
		}
		spec, _ := cmdline.Parse(*line) // problems are netinit up's business
		cfg.Targets, cfg.Reflectors = spec.ProbeTargets, spec.ProbeReflectors
	}
	addrs, err := hostAddrs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "netinit probe: %v\n", err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	rep := netprobe.Probe(ctx, addrs, cfg)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return 0
	}
	renderProbe(os.Stdout, rep)
	return 0
}

// hostAddrs are the addresses on the links of this namespace that are up.
func hostAddrs() ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []netip.Addr
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr())
			}
		}
	}
	return out, nil
}

// renderProbe prints the report for a farmer.
func renderProbe(w io.Writer, r netprobe.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FAMILY\tVERDICT\tINBOUND\tADDRESSES")
	for _, f := range []struct {
		name string
		fam  netprobe.Family
	}{{"IPv4", r.IPv4}, {"IPv6", r.IPv6}} {
		addrs := strings.Join(f.fam.Addresses, " ")
		if addrs == "" {
			addrs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.name, f.fam.Verdict, f.fam.Inbound, addrs)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "hidden: %v (probed: %v, %d ms)\n", r.Hidden, r.Probed, r.TookMS)
	for _, f := range []struct {
		name string
		fam  netprobe.Family
	}{{"IPv4", r.IPv4}, {"IPv6", r.IPv6}} {
		fmt.Fprintf(w, "\n%s evidence:\n", f.name)
		for _, e := range f.fam.Evidence {
			fmt.Fprintf(w, "  - %s\n", e)
		}
	}
}

const probeServerUsage = `usage: netinit probe-server --listen ADDR [--listen ADDR]... [--rate N/min]
                            [--burst N] [--window DUR] [--max-conns N]

Runs the reflector of docs/probe-protocol.md until SIGTERM: for each
request it connects back to the request's source address (never to an
address named in it) on the requested port and answers OK or FAIL.
ADDR is HOST:PORT, e.g. [::]:7007 (IPv6 and IPv4) or 198.51.100.2:7007.
Exit: 0 on SIGTERM, 1 listen or serve error, 2 usage.
`

// cmdProbeServer is `netinit probe-server`.
func cmdProbeServer(args []string) int {
	fs := flag.NewFlagSet("probe-server", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), probeServerUsage) }
	var listen listFlag
	fs.Var(&listen, "listen", "address to listen on, HOST:PORT (repeatable)")
	rate := fs.String("rate", "5/min", "requests per minute per source (IPv4 address or IPv6 /64)")
	burst := fs.Int("burst", 0, "burst per source (default: the rate)")
	window := fs.Duration("window", time.Second, "connect-back window (connect + nonce echo)")
	maxConns := fs.Int("max-conns", 64, "requests handled at once")
	quiet := fs.Bool("quiet", false, "do not log requests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	perMin, err := parseRate(*rate)
	if err != nil || len(listen) == 0 || fs.NArg() > 0 || *window <= 0 || *maxConns <= 0 || *burst < 0 {
		if err != nil {
			fmt.Fprintf(os.Stderr, "netinit probe-server: %v\n", err)
		}
		fs.Usage()
		return 2
	}
	srv := &netprobe.Server{PerMinute: perMin, Burst: *burst, Window: *window, MaxConns: *maxConns}
	if !*quiet {
		srv.Logf = func(format string, a ...any) {
			fmt.Fprintf(os.Stderr, time.Now().UTC().Format(time.RFC3339)+" "+format+"\n", a...)
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	// Listen on everything first, so a bad address fails before serving.
	var lc net.ListenConfig
	var lns []net.Listener
	for _, addr := range listen {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "netinit probe-server: %v\n", err)
			for _, l := range lns {
				l.Close()
			}
			return 1
		}
		fmt.Fprintf(os.Stderr, "netinit probe-server: listening on %s\n", ln.Addr())
		lns = append(lns, ln)
	}
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errs <- srv.Serve(ctx, ln) }()
	}
	rc := 0
	for range lns {
		if err := <-errs; err != nil {
			fmt.Fprintf(os.Stderr, "netinit probe-server: %v\n", err)
			rc = 1
			cancel() // one listener failing stops the others
		}
	}
	return rc
}

// parseRate parses "N/min", "N/m" or "N" (per minute).
func parseRate(s string) (int, error) {
	n, unit, _ := strings.Cut(s, "/")
	switch unit {
	case "", "min", "m", "minute":
	default:
		return 0, fmt.Errorf("--rate %q: the unit is per minute (N/min)", s)
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("--rate %q: want a positive number per minute", s)
	}
	return v, nil
}
