package overlay

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/kernel"
)

// Where 0-OS runs its own Yggdrasil. networkd (zos
// cmds/modules/networkd/main.go setupYgg) starts it in the ndmz network
// namespace, or in public when the farmer set a public config
// (public.HasPublicSetup), as the zinit service "yggdrasil": `ip netns
// exec NS yggdrasil -loglevel error -useconffile
// /var/cache/modules/networkd/yggdrasil.conf` (zosbase
// pkg/network/yggdrasil yygdrasil.go Ensure). Its config (config.go
// GenerateConfig) names the TUN "ygg0" and holds the node identity's
// ed25519 key as is, so its TUN carries address.AddrForKey of that key.
var zosYggNamespaces = []string{"ndmz", "public"}

const (
	// zosNetnsDir is where 0-OS names its network namespaces (zosbase
	// pkg/network/namespace netNSPath; /run is /var/run on 0-OS).
	zosNetnsDir = "/var/run/netns"
	// zosYggIf is 0-OS's Yggdrasil TUN (zosbase pkg/network/yggdrasil
	// YggIface).
	zosYggIf = "ygg0"
	// zosYggComm is the command name of 0-OS's Yggdrasil process: zinit
	// runs `ip netns exec NS yggdrasil …`, which execs the program under
	// that name (the kernel names a process after the file it ran).
	zosYggComm = "yggdrasil"
	// procRoot is where the process table is read.
	procRoot = "/proc"
)

// findZOSYggdrasil looks for 0-OS's own Yggdrasil carrying addr: a link
// ygg0 in the ndmz or public namespace that holds addr. A TUN lives as
// long as the process that made it (yggdrasil-go's is not persistent), so
// the link is there exactly while that Yggdrasil runs, and only the key
// that gives addr can give its address: the same key as netinit's. Once
// found, and when peering asks, it also says whether that instance is
// peered (yggPeered; with an error from that, it is returned as found and
// unpeered). It costs a stat per namespace while none exists, then a
// netlink socket in the namespace and two small dumps, and with peering a
// pass over /proc (not made for the polls while 0-OS's runs alone).
func findZOSYggdrasil(addr netip.Addr, peering bool) (zosYgg, error) {
	for _, name := range zosYggNamespaces {
		path := filepath.Join(zosNetnsDir, name)
		ok, err := holdsAddr(path, zosYggIf, addr)
		if err != nil {
			return zosYgg{}, fmt.Errorf("netns %s: %w", name, err)
		}
		if !ok {
			continue
		}
		z := zosYgg{NS: name, IfName: zosYggIf}
		if !peering {
			return z, nil
		}
		if z.Peered, err = yggPeered(procRoot, path); err != nil {
			// Found all the same: unpeered as far as netinit knows.
			return z, fmt.Errorf("netns %s: is its yggdrasil peered: %w", name, err)
		}
		return z, nil
	}
	return zosYgg{}, nil
}

// yggPeered reports whether a yggdrasil process in the network namespace
// bound at nsPath has a TCP connection established there: a peering,
// outbound to a configured peer (tcp://, tls://), inbound on its
// listeners or with a peer it found by multicast on the LAN. 0-OS's
// Yggdrasil has no admin socket (zosbase's config leaves AdminListen
// empty), so its sockets are what tells. Other programs in the namespace
// (0-OS runs Mycelium in ndmz too) are not counted: only the sockets among
// the yggdrasil process's own files. The table is the namespace's as the
// process sees it, /proc/PID/net/tcp{,6}, which needs no sock_diag module.
// A QUIC-only peering (UDP) is not seen: the handover then waits for its
// bound (HandoverUnpeered).
func yggPeered(proc, nsPath string) (bool, error) {
	var ns unix.Stat_t
	if err := unix.Stat(nsPath, &ns); err != nil {
		return false, err
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		dir := filepath.Join(proc, pid)
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != zosYggComm {
			continue // gone meanwhile, or another program
		}
		var pns unix.Stat_t
		if unix.Stat(filepath.Join(dir, "ns", "net"), &pns) != nil || pns.Dev != ns.Dev || pns.Ino != ns.Ino {
			continue
		}
		if established(dir) {
			return true, nil
		}
	}
	return false, nil
}

// established reports whether the process at dir (/proc/PID) holds a TCP
// socket in state ESTABLISHED.
func established(dir string) bool {
	conns := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join(dir, "net", table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			// (proc_net_tcp(5)); st 01 is TCP_ESTABLISHED.
			if cols := strings.Fields(sc.Text()); len(cols) >= 10 && cols[3] == "01" && cols[9] != "0" {
				conns["socket:["+cols[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(conns) == 0 {
		return false
	}
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && conns[l] {
			return true
		}
	}
	return false
}

// holdsAddr reports whether link ifname in the network namespace bound at
// path holds addr (false when the namespace or the link is not there).
func holdsAddr(path, ifname string, addr netip.Addr) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// Route netlink only: a handle asks for every family netlink knows
	// unless told (XFRM and netfilter too), and a kernel without
	// xfrm_user loaded refuses that socket (EPROTONOSUPPORT), so the
	// search would fail on every node whose kernel has XFRM as a module.
	h, err := netlink.NewHandleAt(netns.NsHandle(f.Fd()), unix.NETLINK_ROUTE)
	f.Close()
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return false, nil
		}
		return false, err
	}
	as, err := kernel.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V6) })
	if err != nil {
		return false, err
	}
	for _, a := range as {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}
