// Command farm runs farms of netinit daemons on one LAN (package
// internal/farm) for each size given and prints, and writes as CSV, what
// each node costs:
//
//	farm -netinit build/netinit -n 10,25,50 [-lan-peers K] [-public] [-csv farm.csv]
//
// It needs root (network namespaces) and dnsmasq. Everything it creates
// is removed on success, failure and SIGINT/SIGTERM.
package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/internal/farm"
)

func main() {
	sizes := flag.String("n", "10", "farm sizes, comma-separated (each 1.."+strconv.Itoa(farm.MaxNodes)+")")
	bin := flag.String("netinit", "build/netinit", "the netinit binary")
	lan := flag.Int("lan-peers", -1, "netinit.ygg.lan_peers= for every node (-1: the default)")
	out := flag.String("csv", "", "CSV file, one row per node (default: none)")
	sample := flag.Int("sample", 5, "nodes each node pings")
	settle := flag.Duration("settle", 20*time.Second, "wait between all-addressed and the ping sweep (then RSS and CPU are read)")
	keep := flag.Bool("keep", false, "keep the work directory (state files, logs)")
	gogc := flag.String("gogc", "", "GOGC for the daemons (e.g. 20 to see the live heap; default: the daemon's)")
	public := flag.Bool("public", false, "add a public Yggdrasil peer behind a NAT, configured on every node")
	neigh := flag.Int("neigh-table", 0, "raise the kernel's IPv6 neighbour table cap (net.ipv6.neigh.default.gc_thresh3, one for all namespaces) to this many entries for the run, restored after (a host-wide setting: 0, the default, leaves it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if flag.Arg(0) == publicPeerCmd {
		// The farm's public peer, run by the farm in its namespace.
		if err := publicPeer(ctx, flag.Arg(1), flag.Arg(2)); err != nil {
			fmt.Fprintf(os.Stderr, "farm: public peer: %v\n", err)
			os.Exit(1)
		}
		return
	}
	cfg := farm.Config{LANPeers: *lan, Netinit: *bin, Sample: *sample, Settle: *settle, Keep: *keep, GOGC: *gogc, NeighbourTable: *neigh,
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	if *public {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "farm: %v\n", err)
			os.Exit(1)
		}
		cfg.PublicPeer = []string{self, publicPeerCmd}
	}
	if err := run(ctx, *sizes, *out, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "farm: %v\n", err)
		os.Exit(1)
	}
}

// publicPeerCmd is the argument that makes farm the public peer.
const publicPeerCmd = "public-peer"

// publicPeer runs a Yggdrasil node listening on uri until ctx ends.
func publicPeer(ctx context.Context, uri, keyDir string) error {
	n, err := ygg.Start(ctx, ygg.Options{KeyDir: keyDir, Listen: []string{uri},
		Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return n.Close()
}

// run runs a farm of each size in sizes, each with cfg but its N and Dir.
func run(ctx context.Context, sizes, out string, cfg farm.Config) error {
	var ns []int
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > farm.MaxNodes {
			return fmt.Errorf("-n %q: want sizes 1..%d", s, farm.MaxNodes)
		}
		ns = append(ns, n)
	}
	var csvf *os.File
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		cw := csv.NewWriter(f)
		_ = cw.Write(farm.CSVHeader)
		if cw.Flush(); cw.Error() != nil {
			return cw.Error()
		}
		csvf = f
	}
	host, _ := os.Hostname()
	fmt.Printf("netinit farm on %s, %d CPUs, %s\n\n%s\n|---|---|---|---|---|---|---|---|---|---|\n",
		host, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339), farm.Header)
	for _, n := range ns {
		cfg.N, cfg.Dir = n, ""
		if cfg.Keep {
			cfg.Dir = fmt.Sprintf("build/farm-%d", n)
		}
		r, err := farm.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		fmt.Println(r.Summary())
		if csvf != nil {
			if err := r.WriteCSV(csvf); err != nil {
				return fmt.Errorf("%s: %w", out, err)
			}
		}
	}
	return nil
}
