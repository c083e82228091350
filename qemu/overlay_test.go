package qemu_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
	"github.com/threefoldtech/netinit/qemu"
)

// TestBootHiddenNodeYggdrasil is the seed's promise: a VM on IPv4-only
// user-mode networking boots, finds no public IPv6, starts Yggdrasil by
// itself, peers with a Yggdrasil node the test runs on the host side
// (reachable from the VM at 10.0.2.2), and the host side reaches the VM's
// Yggdrasil address — on an allowed port, while another port is dropped
// by the overlay firewall.
func TestBootHiddenNodeYggdrasil(t *testing.T) {
	e := requireEnv(t)
	lab.Require(t, "ip")
	t.Parallel()
	img := imageWithNextStage(t, e)
	dir := t.TempDir()
	peer := buildYggPeer(t)
	// QEMU and the host-side peer share a namespace with only loopback:
	// the guest's 10.0.2.2:9943 is the peer's 127.0.0.1:9943.
	ns := lab.NewNS(t, "vmygg")
	if _, err := startYggPeer(t, ns, peer); err != nil {
		t.Fatal(err)
	}

	pr, pw := io.Pipe()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "NEXTSTAGE ygg-address="); i >= 0 {
				select {
				case addrc <- strings.TrimSpace(sc.Text()[i+len("NEXTSTAGE ygg-address="):]):
				default:
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*bootTimeout)
	defer cancel()
	opts := hiddenNode(e, img, ns.Name, "")
	opts.Console = pw
	opts.LogFile = filepath.Join(dir, "console.log")
	done := bootAsync(ctx, opts, func() { pw.Close() })
	var addr string
	select {
	case addr = <-addrc:
	case b := <-done:
		if b.res != nil {
			t.Logf("console:\n%s", tail(b.res.Console, 80))
		}
		t.Fatalf("the VM ended without a Yggdrasil address: %v", b.err)
	case <-time.After(2 * bootTimeout):
		t.Fatal("no Yggdrasil address from the VM in time")
	}
	t.Logf("the VM's Yggdrasil address: %s", addr)
	dial := func(port string) string {
		dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer dcancel()
		out, err := ns.Exec(dctx, peer, "-dial", "["+addr+"]:"+port)
		if err != nil {
			t.Fatalf("dial: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	var got string
	for i := 0; i < 5; i++ { // the route over the tree may take a moment
		if got = dial("9900"); strings.HasPrefix(got, "DIAL reached") {
			break
		}
	}
	if !strings.HasPrefix(got, "DIAL reached") {
		t.Errorf("allowed port 9900 over Yggdrasil: %s", got)
	}
	if got := dial("9901"); !strings.HasPrefix(got, "DIAL timeout") {
		t.Errorf("port 9901 (not allowed) over Yggdrasil: %s, want dropped", got)
	}
	cancel()
	b := <-done
	st := b.res.State
	if st == nil {
		t.Fatalf("no state from the VM")
	}
	if st.PublicIPv6 || st.Yggdrasil == nil || st.Yggdrasil.Address != addr {
		t.Errorf("state: public_ipv6=%v yggdrasil=%+v", st.PublicIPv6, st.Yggdrasil)
	}
	if st.Overlays == nil || !st.Overlays.Yggdrasil || !strings.Contains(st.Overlays.YggdrasilReason, "no public IPv6") {
		t.Errorf("overlay decision %+v", st.Overlays)
	}
	if len(st.Firewall) == 0 {
		t.Errorf("no firewall rules in the state")
	}
	t.Logf("overlays %+v; firewall %q", st.Overlays, st.Firewall)
}

// hiddenNode is the boot of the hidden node (this test's and the
// bench's): nextstage reporting Yggdrasil, slirp's IPv4-only NAT, the
// Yggdrasil peer of the host side at 10.0.2.2:9943, 9900/tcp open on the
// overlay; extra is appended to the cmdline.
func hiddenNode(e env, img, netns, extra string) qemu.Options {
	return qemu.Options{
		Kernel:      e.kernel,
		Initramfs:   img,
		NetNS:       netns,
		NetDev:      "user,id=n0,ipv4=on,ipv6=off",
		Append:      "netinit.next=/sbin/nextstage nextstage.ygg=1 netinit.ygg.peers=tcp://10.0.2.2:9943 netinit.ygg.multicast=off netinit.allow=9900/tcp" + extra,
		Timeout:     2 * bootTimeout,
		AfterResult: 90 * time.Second,
	}
}

var yggPeerBin built

// buildYggPeer builds qemu/testdata/yggpeer, the host-side Yggdrasil node,
// once.
func buildYggPeer(t *testing.T) string {
	t.Helper()
	return yggPeerBin.get(t, "the Yggdrasil peer", func(dir string) (string, error) {
		peer := filepath.Join(dir, "yggpeer")
		return peer, goCmd(t, "build", "-trimpath", "-o", peer, "./qemu/testdata/yggpeer")
	})
}

// startYggPeer runs the host-side Yggdrasil node in ns, listening on
// 127.0.0.1:9943 (a guest behind slirp reaches it at its gateway's
// address, port 9943), until it is stopped or the test ends; args are
// more of yggpeer's flags.
func startYggPeer(t *testing.T, ns *lab.NS, peer string, args ...string) (*lab.Proc, error) {
	p := ns.Start(append([]string{peer, "-listen", "tcp://127.0.0.1:9943", "-keydir", t.TempDir()}, args...)...)
	if !lab.Eventually(20*time.Second, func() bool { return strings.Contains(p.Output(), "ADDRESS ") }) {
		return p, fmt.Errorf("host-side Yggdrasil peer did not start:\n%s", p.Output())
	}
	return p, nil
}
