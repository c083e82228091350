// Command yggpeer is the host-side Yggdrasil peer of the QEMU overlay
// test: a real yggdrasil-go node (netinit's ygg package) that listens for
// the VM, and a dialer that checks what the VM answers over the overlay.
//
//	yggpeer -listen tcp://127.0.0.1:9943 -keydir DIR   run the node until killed; its events and the changes of its
//	                                                   spanning tree ("TREE ADDR parent ADDR seq N") stamped "[UNIX.MICROS] "
//	        [-below HEX]                               ... with a new key that sorts below public key HEX
//	        [-root]                                    ... with a mined key below any a test's node makes: the tree's root
//	yggpeer -dial [ADDR]:PORT                          connect once: "DIAL reached" (connected or refused) / "DIAL timeout"
//	yggpeer -probe [ADDR]:PORT [-every 150ms] [-for 2m] start a connect every -every until one is answered:
//	                                                   "PROBE reached UNIXNANO ..." (when the answer came) / "PROBE timeout"
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/overlay/ygg"
)

func main() {
	listen := flag.String("listen", "", "peer listener URI")
	keyDir := flag.String("keydir", "", "key directory")
	dial := flag.String("dial", "", "[addr]:port to connect to over the overlay")
	probeAddr := flag.String("probe", "", "[addr]:port to connect to repeatedly until one connect is answered")
	every := flag.Duration("every", 150*time.Millisecond, "interval between the -probe connects")
	bound := flag.Duration("for", 2*time.Minute, "how long -probe tries")
	below := flag.String("below", "", "hex public key the node's own key must sort below (the tree's root is the lowest key)")
	root := flag.Bool("root", false, "run with a mined key of 14 leading zero bits, below any key a test's node makes but 1 in 16384: the tree's root, as a long-lived node with a mined key is in the real network")
	flag.Parse()
	if *probeAddr != "" {
		probe(*probeAddr, *every, *bound)
		return
	}
	if *dial != "" {
		c, err := net.DialTimeout("tcp6", *dial, 3*time.Second)
		if how, ok := answered(c, err); ok {
			fmt.Println("DIAL reached", how)
		} else {
			fmt.Println("DIAL timeout:", err)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var key ed25519.PrivateKey
	if *root {
		*below = rootBelow
	}
	if *below != "" {
		var err error
		if key, err = keyBelow(*below); err != nil {
			fmt.Fprintln(os.Stderr, "yggpeer:", err)
			os.Exit(1)
		}
	}
	// Each event stamped with the time it was logged (Unix seconds), for
	// a test on the same machine to place it on its own clock.
	n, err := ygg.Start(ctx, ygg.Options{KeyDir: *keyDir, Key: key, Listen: []string{*listen}, Logf: func(f string, a ...any) {
		fmt.Printf("[%.6f] %s\n", float64(time.Now().UnixMicro())/1e6, fmt.Sprintf(f, a...))
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "yggpeer:", err)
		os.Exit(1)
	}
	defer n.Close()
	fmt.Println("ADDRESS", n.Address())
	reportTree(ctx, n)
}

// reportTree prints, until ctx ends, each change of the spanning tree as
// the node knows it, stamped as its events: "[UNIX.MICROS] TREE ADDR
// parent PARENT seq N" (PARENT is ADDR itself for a node that claims to
// be the root). It polls every 50 ms: ironwood announces once a second.
func reportTree(ctx context.Context, n *ygg.Node) {
	seen := map[netip.Addr]ygg.TreeEntry{}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, e := range n.Tree() {
			if seen[e.Addr] != e {
				seen[e.Addr] = e
				fmt.Printf("[%.6f] TREE %s parent %s seq %d\n", float64(time.Now().UnixMicro())/1e6, e.Addr, e.Parent, e.Seq)
			}
		}
	}
}

// rootBelow is what -root's key sorts below: 0x0004 then zeros, so its
// first 14 bits are zero (16384 tries on average).
const rootBelow = "0004000000000000000000000000000000000000000000000000000000000000"

// keyBelow returns a new key whose public key sorts below the hex public
// key other, byte by byte as ironwood compares keys. The root of
// Yggdrasil's spanning tree is the node with the lowest key; in the real
// network that is a long-lived node with a mined key, never a node that
// has just joined, so a test of a joining node gives its peer a lower key.
func keyBelow(other string) (ed25519.PrivateKey, error) {
	o, err := hex.DecodeString(other)
	if err != nil || len(o) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("-below %q: not a hex ed25519 public key", other)
	}
	for range 1 << 22 {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		if bytes.Compare(pub, o) < 0 {
			return priv, nil
		}
	}
	return nil, fmt.Errorf("-below %s: no key below it in %d tries", other, 1<<22)
}

// answered says whether a connect got an answer from the node: a
// connection, or a refusal (a TCP RST from the node's kernel has crossed
// the overlay just the same). It closes c.
func answered(c net.Conn, err error) (string, bool) {
	switch {
	case err == nil:
		c.Close()
		return "(connected)", true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "(refused by the node's kernel)", true
	}
	return "", false
}

// probe starts a connect to addr every interval, each with its own SYN
// (a single connect would wait for the kernel's SYN retransmissions, 1 s
// then 2 s apart, RFC 6298 section 5), until one is answered or bound
// has passed. It prints when the first answer came, so that a caller on
// the same machine can place it on its own clock.
func probe(addr string, every, bound time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	type answer struct {
		at  time.Time
		how string
	}
	got := make(chan answer, 1)
	var wg sync.WaitGroup
	defer wg.Wait() // the connects end with ctx
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var d net.Dialer
	for n := 1; ; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
			defer dcancel()
			c, err := d.DialContext(dctx, "tcp6", addr)
			if how, ok := answered(c, err); ok {
				select {
				case got <- answer{time.Now(), how}:
				default:
				}
			}
		}()
		select {
		case a := <-got:
			fmt.Printf("PROBE reached %d %s after %d connects\n", a.at.UnixNano(), a.how, n)
			return
		case <-ctx.Done():
			fmt.Printf("PROBE timeout after %d connects in %v\n", n, bound)
			return
		case <-tick.C:
		}
	}
}
