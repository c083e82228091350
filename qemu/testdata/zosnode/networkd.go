package main

// networkd stands in for 0-OS's networkd (zos etc/zinit/networkd.yaml:
// `exec: networkd --broker unix:///var/run/redis.sock --root
// /var/cache/modules/networkd`; zos cmds/modules/networkd/main.go, zosbase
// pkg/network) in what matters to netinit after the handoff. In
// main.go's order: it takes the node identity (from the seed file
// identityd writes, where the real one asks identityd over zbus), makes
// the ndmz network namespace as zosbase does (pkg/network/namespace
// Create: a netns bind-mounted on /var/run/netns/ndmz; ndmz.Create: lo
// up, IPv6 forwarding, npub4 on the management bridge — here a macvlan),
// gives npub4 an address (-static) or runs 0-OS's DHCP client there
// (-dhcp: `ip netns exec ndmz dhcpcd npub4 -B`, ndmz DHCPMon), writes
// the Yggdrasil config as zosbase's GenerateConfig does (the identity's
// key as is, TUN ygg0, listeners tcp 9943 and tls 9944, multicast on
// every link) to /var/cache/modules/networkd/yggdrasil.conf, writes the
// zinit service file for it as zinit.AddService does and runs Yggdrasil
// in ndmz with the same arguments, then serves its zbus module. Where
// 0-OS has zinit run `ip netns exec ndmz yggdrasil …`, the stand-in
// starts it itself from a thread in ndmz (the guest has no iproute2; the
// process lands in the same namespace with the same arguments) and leaves
// out the `ulimit -n 16384`. Everything it makes is kept when it stops,
// as networkd keeps it, and found again when it starts (zosbase creates
// what is missing); Yggdrasil and dhcpcd stop with it.
//
//	networkd [--broker URL] [--root DIR] [-uplink zos] [-seed PATH] [-peers URI,...] [-static CIDR] [-dhcp]
//
// In the QEMU boot, -peers and -static default to standin.networkd.peers=
// and standin.networkd.static= of the kernel command line.

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
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/identity"
)

const (
	ndmz     = "ndmz"           // zosbase pkg/network/ndmz DmzNamespace
	pub4     = "npub4"          // ndmz DmzPub4
	netnsDir = "/var/run/netns" // zosbase pkg/network/namespace netNSPath
	yggConf  = "/var/cache/modules/networkd/yggdrasil.conf"
	yggUnit  = "/etc/zinit/yggdrasil.yaml"
)

// yggConfig is yggdrasil-go 0.4.0's config.NodeConfig, which zosbase
// (go.mod: yggdrasil-go v0.4.0) JSON-encodes into the config file: the
// same fields, in the same order, with the same names.
type yggConfig struct {
	Peers               []string
	InterfacePeers      map[string][]string
	Listen              []string
	AdminListen         string
	MulticastInterfaces []yggMulticast
	AllowedPublicKeys   []string
	PublicKey           string
	PrivateKey          string
	IfName              string
	IfMTU               uint64
	NodeInfoPrivacy     bool
	NodeInfo            map[string]any
}

type yggMulticast struct {
	Regex  string
	Beacon bool
	Listen bool
	Port   uint16
}

// generateConfig is zosbase pkg/network/yggdrasil GenerateConfig, with the
// peers FindPeers would add.
func generateConfig(k ed25519.PrivateKey, peers []string) yggConfig {
	pub := k.Public().(ed25519.PublicKey)
	return yggConfig{
		Peers:               peers,
		Listen:              []string{"tcp://[::]:9943", "tls://[::]:9944"},
		MulticastInterfaces: []yggMulticast{{Regex: ".*", Beacon: true, Listen: true}},
		PublicKey:           hex.EncodeToString(pub),
		PrivateKey:          hex.EncodeToString(k),
		IfName:              "ygg0",
		IfMTU:               65535,
		// base58 of the public key's first characters in 0-OS; any name
		// will do here.
		NodeInfo: map[string]any{"name": hex.EncodeToString(pub)[:6]},
	}
}

type networkdFlags struct {
	uplink, seed, peers, static string
	dhcp                        bool
}

func networkd(args []string) int {
	fs := flag.NewFlagSet("networkd", flag.ContinueOnError)
	fs.String("broker", "", "the zbus broker (0-OS's flag; the stand-in registers as zbusdebug reads it)")
	fs.String("root", "", "networkd's directory (0-OS's flag; the Yggdrasil config goes where zosbase puts it)")
	var f networkdFlags
	fs.StringVar(&f.uplink, "uplink", "zos", "the link npub4 hangs off")
	fs.StringVar(&f.seed, "seed", "/var/cache/modules/identityd/seed.txt", "identityd's seed file")
	fs.StringVar(&f.peers, "peers", cmdlineValue("standin.networkd.peers"), "Yggdrasil peers, comma separated")
	fs.StringVar(&f.static, "static", cmdlineValue("standin.networkd.static"), "npub4's address (CIDR)")
	fs.BoolVar(&f.dhcp, "dhcp", false, "run 0-OS's DHCP client on npub4 (dhcpcd, through iproute2)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if err := runNetworkd(ctx, f); err != nil {
		say("networkd", "%v", err)
		return 1
	}
	return 0
}

func runNetworkd(ctx context.Context, f networkdFlags) error {
	say("networkd", "pid %d", os.Getpid())
	id, err := waitIdentity(ctx, f.seed)
	if err != nil {
		return err
	}
	say("networkd", "identity %s", id.Path)
	ns, err := makeNDMZ(f.uplink, f.static)
	if err != nil {
		return err
	}
	defer ns.Close()
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(unix.SIGTERM)
			_ = c.Wait()
		}
	}()
	if f.dhcp {
		c, err := startChild(exec.Command("ip", "netns", "exec", ndmz, "dhcpcd", pub4, "-B"))
		if err != nil {
			return err
		}
		children = append(children, c)
	}
	var peers []string
	if f.peers != "" {
		peers = strings.Split(f.peers, ",")
	}
	if err := writeYggConfig(generateConfig(id.Key, peers)); err != nil {
		return err
	}
	bin, err := exec.LookPath("yggdrasil")
	if err != nil {
		return err
	}
	// The exec line of 0-OS's zinit service (yygdrasil.go Ensure), for
	// whoever reads it; the stand-in runs the program itself.
	line := fmt.Sprintf("sh -c '\n\t\tulimit -n 16384\n\n\t\texec ip netns exec %s %s -loglevel error -useconffile %s\n\t'", ndmz, bin, yggConf)
	unit := fmt.Sprintf("exec: %q\nafter:\n  - node-ready\ntest: yggdrasilctl getself | grep -i coords\n", line)
	if err := os.MkdirAll(filepath.Dir(yggUnit), 0o755); err == nil {
		_ = os.WriteFile(yggUnit, []byte(unit), 0o644)
	}
	c := exec.Command(bin, "-loglevel", "error", "-useconffile", yggConf)
	if err := inNetns(ns, func() error { _, err := startChild(c); return err }); err != nil {
		return err
	}
	children = append(children, c)
	say("networkd", "yggdrasil started (pid %d) in netns %s", c.Process.Pid, ndmz)
	// main.go: the zbus server starts once the network is set up.
	if err := register("network")(); err != nil {
		return err
	}
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

// makeNDMZ makes ndmz as zosbase's ndmz.Create does what matters here,
// or finds it made by an earlier run: the namespace, lo up, IPv6
// forwarding on, npub4 (a macvlan on the uplink) up in it with static
// (when given).
func makeNDMZ(uplink, static string) (netns.NsHandle, error) {
	ns, err := namedNetns(ndmz)
	if err != nil {
		return ns, fmt.Errorf("netns %s: %w", ndmz, err)
	}
	fail := func(what string, err error) (netns.NsHandle, error) {
		ns.Close()
		return netns.None(), fmt.Errorf("netns %s: %s: %w", ndmz, what, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fail("netlink", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fail("lo", err)
	}
	// A sysctl of net/ is the one of the netns of the thread that opens it.
	if err := inNetns(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644)
	}); err != nil {
		return fail("IPv6 forwarding", err)
	}
	l, err := h.LinkByName(pub4)
	if err != nil {
		up, err := netlink.LinkByName(uplink)
		if err != nil {
			return fail(uplink, err)
		}
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: pub4, ParentIndex: up.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		if err := netlink.LinkAdd(mv); err != nil {
			return fail(pub4+" on "+uplink, err)
		}
		if err := netlink.LinkSetNsFd(mv, int(ns)); err != nil {
			return fail(pub4, err)
		}
		if l, err = h.LinkByName(pub4); err != nil {
			return fail(pub4, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fail(pub4, err)
	}
	if static != "" {
		a, err := netlink.ParseAddr(static)
		if err == nil {
			err = h.AddrReplace(l, a)
		}
		if err != nil {
			return fail(pub4+" "+static, err)
		}
	}
	say("networkd", "netns %s with %s on %s", ndmz, pub4, uplink)
	return ns, nil
}

// namedNetns opens the network namespace bound at netnsDir/name, making
// it first if there is none (zosbase namespace.Create: a new netns
// bind-mounted on an empty file there).
func namedNetns(name string) (netns.NsHandle, error) {
	path := filepath.Join(netnsDir, name)
	if ns, err := netns.GetFromPath(path); err == nil {
		return ns, nil
	}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return netns.None(), err
	}
	f, err := os.Create(path)
	if err != nil {
		return netns.None(), err
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		return unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
	})
	if err != nil {
		os.Remove(path)
		return netns.None(), err
	}
	return netns.GetFromPath(path)
}

// inNetns runs f on a thread that is in ns meanwhile: what f opens,
// creates or forks (a child inherits the thread's namespace) is in ns.
func inNetns(ns netns.NsHandle, f func() error) error {
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return err
		}
		return f()
	})
}

// onThread runs f locked to a thread whose network namespace it may
// change, and puts the thread back into this process's own namespace
// after it; a thread that cannot be put back dies with the goroutine
// (runtime.LockOSThread) rather than serve others.
func onThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		err = f()
		if rerr := netns.Set(orig); rerr != nil {
			done <- errors.Join(err, rerr)
			return // the thread exits with the goroutine
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// writeYggConfig writes the config as zosbase's writeConfig does.
func writeYggConfig(cfg yggConfig) error {
	if err := os.MkdirAll(filepath.Dir(yggConf), 0o770); err != nil {
		return err
	}
	f, err := os.Create(yggConf)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(cfg)
}

// startChild starts c with this process's output, killed if this process
// dies first.
func startChild(c *exec.Cmd) (*exec.Cmd, error) {
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	return c, nil
}
