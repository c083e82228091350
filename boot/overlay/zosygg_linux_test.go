package overlay

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/internal/lab"
)

const peerHelperEnv = "NETINIT_PEER_HELPER"

// TestHelperPeer is a process for TestYggPeered, run under the name the
// test gives it: it listens on loopback and, when its mode says so (at
// once, "connect", or once the file named by the mode exists), connects
// to itself, then holds its sockets until killed.
func TestHelperPeer(t *testing.T) {
	mode := os.Getenv(peerHelperEnv)
	if mode == "" {
		t.Skip("helper process for TestYggPeered")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fmt.Println("LISTENING")
	if mode != "listen" {
		for deadline := time.Now().Add(time.Minute); mode != "connect" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(mode); err == nil {
				break
			}
		}
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fmt.Println("CONNECTED")
	}
	time.Sleep(90 * time.Second)
}

// TestYggPeered: 0-OS's Yggdrasil counts as peered when a process named
// yggdrasil in that namespace holds an established TCP connection: not
// while it only listens, not for another program's connection in the
// namespace (0-OS runs Mycelium in ndmz too), not for a yggdrasil
// process's connection in another namespace; and it does once its own
// connection is up. Real processes, their sockets read from /proc.
func TestYggPeered(t *testing.T) {
	lab.Require(t, "ip", "env")
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"yggdrasil", "mycelium"} {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := lab.NewNS(t, "peeredA"), lab.NewNS(t, "peeredB")
	// start starts a helper under name in ns and waits until it says
	// ready.
	start := func(ns *lab.NS, name, mode, ready string) {
		p := ns.Start("env", peerHelperEnv+"="+mode, filepath.Join(dir, name), "-test.run=^TestHelperPeer$", "-test.v")
		if !lab.Eventually(20*time.Second, func() bool { return strings.Contains(p.Output(), ready) }) {
			t.Fatalf("%s in %s did not say %s:\n%s", name, ns.Name, ready, p.Output())
		}
	}
	peered := func(ns *lab.NS) bool {
		t.Helper()
		ok, err := yggPeered(procRoot, "/run/netns/"+ns.Name)
		if err != nil {
			t.Fatalf("yggPeered(%s): %v", ns.Name, err)
		}
		return ok
	}
	go1 := filepath.Join(dir, "go")
	start(a, "yggdrasil", go1, "LISTENING")       // connects once go1 exists
	start(a, "mycelium", "connect", "CONNECTED")  // another program's connection in a
	start(b, "yggdrasil", "connect", "CONNECTED") // a yggdrasil's connection in b
	if peered(a) {
		t.Errorf("%s: peered while its yggdrasil only listens", a.Name)
	}
	if !peered(b) {
		t.Errorf("%s: not peered while its yggdrasil holds a connection", b.Name)
	}
	if err := os.WriteFile(go1, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !lab.Eventually(10*time.Second, func() bool { return peered(a) }) {
		t.Errorf("%s: not peered after its yggdrasil connected", a.Name)
	}
}
