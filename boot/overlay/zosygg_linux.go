package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

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
)

// findZOSYggdrasil looks for 0-OS's own Yggdrasil carrying addr: a link
// ygg0 in the ndmz or public namespace that holds addr. A TUN lives as
// long as the process that made it (yggdrasil-go's is not persistent), so
// the link is there exactly while that Yggdrasil runs, and only the key
// that gives addr can give its address: the same key as netinit's. It
// costs a stat per namespace while none exists, then a netlink socket in
// the namespace and two small dumps. ns is "" when there is none.
func findZOSYggdrasil(addr netip.Addr) (ns, ifname string, err error) {
	for _, name := range zosYggNamespaces {
		ok, err := holdsAddr(filepath.Join(zosNetnsDir, name), zosYggIf, addr)
		if err != nil {
			return "", "", fmt.Errorf("netns %s: %w", name, err)
		}
		if ok {
			return name, zosYggIf, nil
		}
	}
	return "", "", nil
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
