package main

// yggdrasil stands in for the yggdrasil binary 0-OS runs (its zinit
// service "yggdrasil": `ip netns exec ndmz yggdrasil -loglevel error
// -useconffile /var/cache/modules/networkd/yggdrasil.conf`, zosbase
// pkg/network/yggdrasil yygdrasil.go). 0-OS ships yggdrasil-go 0.5's
// command, which cannot be built here; this is a node of the same library
// (netinit's boot/overlay/ygg) run from the same config file, read by
// yggdrasil-go's own config parser as that command reads it: the key in
// it (the node identity's), its peers and listeners, the TUN (IfName,
// IfMTU), multicast discovery, NodeInfo. It runs until SIGTERM or SIGINT,
// and its TUN goes with it.

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"os/signal"

	yggconfig "github.com/yggdrasil-network/yggdrasil-go/src/config"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/overlay/ygg"
)

func yggdrasil(args []string) int {
	fs := flag.NewFlagSet("yggdrasil", flag.ContinueOnError)
	conf := fs.String("useconffile", "", "read the HJSON/JSON config from this file")
	level := fs.String("loglevel", "info", "loglevel to enable (error: errors only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runYggdrasil(*conf, *level); err != nil {
		say("yggdrasil", "%v", err)
		return 1
	}
	return 0
}

func runYggdrasil(path, level string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	cfg := &yggconfig.NodeConfig{}
	_, err = cfg.ReadFrom(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(cfg.PrivateKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("config %s: no private key", path)
	}
	o := ygg.Options{Key: ed25519.PrivateKey(cfg.PrivateKey), Peers: cfg.Peers, Listen: cfg.Listen,
		IfName: cfg.IfName, MTU: int(cfg.IfMTU), NodeInfo: cfg.NodeInfo}
	for _, m := range cfg.MulticastInterfaces {
		// netinit's node beacons and listens on every link it matches,
		// as 0-OS's config asks for ({".*", Beacon, Listen}).
		if !m.Beacon || !m.Listen || m.Port != 0 || m.Password != "" {
			return fmt.Errorf("config %s: multicast %+v: only beacon+listen on any port is supported", path, m)
		}
		o.Multicast = true
		o.MulticastLinks = append(o.MulticastLinks, m.Regex)
	}
	if level != "error" {
		o.Logf = func(f string, a ...any) { say("yggdrasil", f, a...) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	n, err := ygg.Start(ctx, o)
	if err != nil {
		return err
	}
	say("yggdrasil", "%s up, address %s", o.IfName, n.Address())
	<-ctx.Done()
	return n.Close()
}
