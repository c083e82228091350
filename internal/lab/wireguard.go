package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BuildWireguardGo builds the real wireguard-go command at the version
// go.mod pins (its main package is the module root).
func BuildWireguardGo(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "wireguard-go")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "golang.zx2c4.com/wireguard")
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab: building wireguard-go: %v\n%s", err, b)
	}
	return out
}

// Gateway is a WireGuard gateway: wireguard-go in a namespace, configured
// with wg(8) from Debian's wireguard-tools over its UAPI socket.
type Gateway struct {
	NS     *NS
	If     string // interface name (unique: the UAPI socket dir is shared)
	Public string // base64 public key
	Proc   *Proc
}

// NewGateway starts wireguard-go in ns listening on port, with addr
// (CIDR) on its interface.
func NewGateway(t testing.TB, ns *NS, wggo string, port int, addr string) *Gateway {
	t.Helper()
	g := &Gateway{NS: ns, If: fmt.Sprintf("wgg%d-%d", os.Getpid()%100000, seq.Add(1))}
	g.Proc = ns.Start(wggo, "-f", g.If)
	sock := filepath.Join("/var/run/wireguard", g.If+".sock")
	t.Cleanup(func() { os.Remove(sock) })
	if !Eventually(10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatalf("lab: wireguard-go did not start:\n%s", g.Proc.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	priv, err := exec.CommandContext(ctx, "wg", "genkey").Output()
	if err != nil {
		t.Fatalf("lab: wg genkey: %v", err)
	}
	key := filepath.Join(t.TempDir(), "gw.key")
	if err := os.WriteFile(key, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	pub := exec.CommandContext(ctx, "wg", "pubkey")
	pub.Stdin = strings.NewReader(string(priv))
	out, err := pub.Output()
	if err != nil {
		t.Fatalf("lab: wg pubkey: %v", err)
	}
	g.Public = strings.TrimSpace(string(out))
	ns.MustExec("wg", "set", g.If, "private-key", key, "listen-port", fmt.Sprint(port))
	ns.MustExec("ip", "addr", "add", addr, "dev", g.If, "nodad")
	ns.MustExec("ip", "link", "set", g.If, "up")
	return g
}

// AddPeer lets a node's key in, with the given allowed IPs.
func (g *Gateway) AddPeer(t testing.TB, public, allowed string) {
	t.Helper()
	g.NS.MustExec("wg", "set", g.If, "peer", public, "allowed-ips", allowed)
}
