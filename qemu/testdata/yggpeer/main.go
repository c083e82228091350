// Command yggpeer is the host-side Yggdrasil peer of the QEMU overlay
// test: a real yggdrasil-go node (netinit's ygg package) that listens for
// the VM, and a dialer that checks what the VM answers over the overlay.
//
//	yggpeer -listen tcp://127.0.0.1:9943 -keydir DIR   run the node until killed
//	yggpeer -dial [ADDR]:PORT                          connect once: "DIAL reached" (connected or refused) / "DIAL timeout"
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/overlay/ygg"
)

func main() {
	listen := flag.String("listen", "", "peer listener URI")
	keyDir := flag.String("keydir", "", "key directory")
	dial := flag.String("dial", "", "[addr]:port to connect to over the overlay")
	flag.Parse()
	if *dial != "" {
		c, err := net.DialTimeout("tcp6", *dial, 3*time.Second)
		switch {
		case err == nil:
			c.Close()
			fmt.Println("DIAL reached (connected)")
		case errors.Is(err, syscall.ECONNREFUSED):
			fmt.Println("DIAL reached (refused by the node's kernel)")
		default:
			fmt.Println("DIAL timeout:", err)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n, err := ygg.Start(ctx, ygg.Options{KeyDir: *keyDir, Listen: []string{*listen}, Logf: func(f string, a ...any) {
		fmt.Printf(f+"\n", a...)
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "yggpeer:", err)
		os.Exit(1)
	}
	defer n.Close()
	fmt.Println("ADDRESS", n.Address())
	<-ctx.Done()
}
