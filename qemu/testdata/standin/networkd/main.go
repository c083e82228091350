// Command networkd stands in for 0-OS's networkd (zos
// cmds/modules/networkd/main.go, zosbase pkg/network) in what matters to
// netinit after the handoff: it takes the node identity (from the seed
// file identityd writes, where the real one asks identityd over zbus),
// makes the ndmz network namespace with its npub4 link on the management
// bridge and 0-OS's DHCP client in it (`ip netns exec ndmz dhcpcd npub4
// -B`, ndmz DHCPMon), writes the Yggdrasil config as zosbase's
// GenerateConfig does (the identity's key as is, TUN ygg0, listeners tcp
// 9943 and tls 9944, multicast on every link) to
// /var/cache/modules/networkd/yggdrasil.conf, and runs Yggdrasil in ndmz
// with the exec line of 0-OS's zinit service. It also writes that zinit
// service file, as zinit.AddService does. It runs until SIGTERM, and
// stops what it started.
//
//	networkd -uplink zos [-seed PATH] [-peers URI,...] [-static CIDR]
//
// -static gives npub4 an address instead of running dhcpcd.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/identity"
)

const (
	ns       = "ndmz"  // zosbase pkg/network/ndmz DmzNamespace
	pub4     = "npub4" // ndmz DmzPub4
	confPath = "/var/cache/modules/networkd/yggdrasil.conf"
	unitPath = "/etc/zinit/yggdrasil.yaml"
)

// nodeConfig is yggdrasil-go 0.4.0's config.NodeConfig, which zosbase
// (go.mod: yggdrasil-go v0.4.0) JSON-encodes into the config file: the
// same fields, in the same order, with the same names.
type nodeConfig struct {
	Peers               []string
	InterfacePeers      map[string][]string
	Listen              []string
	AdminListen         string
	MulticastInterfaces []multicastInterface
	AllowedPublicKeys   []string
	PublicKey           string
	PrivateKey          string
	IfName              string
	IfMTU               uint64
	NodeInfoPrivacy     bool
	NodeInfo            map[string]any
}

type multicastInterface struct {
	Regex  string
	Beacon bool
	Listen bool
	Port   uint16
}

// generateConfig is zosbase pkg/network/yggdrasil GenerateConfig, with the
// peers FindPeers would add.
func generateConfig(k ed25519.PrivateKey, peers []string) nodeConfig {
	pub := k.Public().(ed25519.PublicKey)
	return nodeConfig{
		Peers:               peers,
		Listen:              []string{"tcp://[::]:9943", "tls://[::]:9944"},
		MulticastInterfaces: []multicastInterface{{Regex: ".*", Beacon: true, Listen: true}},
		PublicKey:           hex.EncodeToString(pub),
		PrivateKey:          hex.EncodeToString(k),
		IfName:              "ygg0",
		IfMTU:               65535,
		// base58 of the public key's first characters in 0-OS; any name
		// will do here.
		NodeInfo: map[string]any{"name": hex.EncodeToString(pub)[:6]},
	}
}

func main() {
	uplink := flag.String("uplink", "zos", "the link npub4 hangs off")
	seed := flag.String("seed", "/var/cache/modules/identityd/seed.txt", "identityd's seed file")
	peers := flag.String("peers", "", "Yggdrasil peers, comma separated")
	static := flag.String("static", "", "npub4's address (else dhcpcd)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *uplink, *seed, *peers, *static); err != nil {
		fmt.Fprintln(os.Stderr, "networkd:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("NETWORKD "+format+"\n", args...) }

func run(ctx context.Context, uplink, seed, peers, static string) error {
	say("pid %d", os.Getpid())
	id, err := waitIdentity(ctx, seed)
	if err != nil {
		return err
	}
	say("identity %s", id.Path)
	if err := ndmz(uplink, static); err != nil {
		return err
	}
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(syscall.SIGTERM)
			_ = c.Wait()
		}
	}()
	if static == "" {
		c, err := start("ip", "netns", "exec", ns, "dhcpcd", pub4, "-B")
		if err != nil {
			return err
		}
		children = append(children, c)
	}
	var list []string
	if peers != "" {
		list = strings.Split(peers, ",")
	}
	if err := writeConfig(generateConfig(id.Key, list)); err != nil {
		return err
	}
	bin, err := exec.LookPath("yggdrasil")
	if err != nil {
		return err
	}
	// The exec line of 0-OS's zinit service (yygdrasil.go Ensure).
	line := fmt.Sprintf("sh -c '\n\t\tulimit -n 16384\n\n\t\texec ip netns exec %s %s -loglevel error -useconffile %s\n\t'", ns, bin, confPath)
	unit := fmt.Sprintf("exec: %q\nafter:\n  - node-ready\ntest: yggdrasilctl getself | grep -i coords\n", line)
	if err := os.MkdirAll(filepath.Dir(unitPath), 0o755); err == nil {
		_ = os.WriteFile(unitPath, []byte(unit), 0o644)
	}
	c, err := start("sh", "-c", fmt.Sprintf("ulimit -n 16384; exec ip netns exec %s %s -loglevel error -useconffile %s", ns, bin, confPath))
	if err != nil {
		return err
	}
	children = append(children, c)
	say("yggdrasil started (pid %d) in netns %s", c.Process.Pid, ns)
	<-ctx.Done()
	return nil
}

// waitIdentity waits (bounded) for identityd's seed file.
func waitIdentity(ctx context.Context, path string) (*identity.Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		id, err := identity.Read(path)
		if err == nil {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no node identity in %s: %v", path, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ndmz makes the namespace as zosbase's ndmz.Create does what matters
// here: lo up, IPv6 forwarding on, npub4 (a macvlan on the uplink) in it.
func ndmz(uplink, static string) error {
	cmds := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "link", "add", pub4, "link", uplink, "type", "macvlan", "mode", "bridge"},
		{"ip", "link", "set", pub4, "netns", ns},
		{"ip", "netns", "exec", ns, "ip", "link", "set", pub4, "up"},
	}
	if static != "" {
		cmds = append(cmds, []string{"ip", "netns", "exec", ns, "ip", "addr", "add", static, "dev", pub4})
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	say("netns %s with %s on %s", ns, pub4, uplink)
	return nil
}

// writeConfig writes the config as zosbase's writeConfig does.
func writeConfig(cfg nodeConfig) error {
	if err := os.MkdirAll(filepath.Dir(confPath), 0o770); err != nil {
		return err
	}
	f, err := os.Create(confPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(cfg)
}

// start starts a child whose output is this process's, killed if this
// process dies first.
func start(name string, args ...string) (*exec.Cmd, error) {
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		return nil, errors.New(name + ": " + err.Error())
	}
	return c, nil
}
