package engine_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tyler-smith/go-bip39"
	"github.com/yggdrasil-network/yggdrasil-go/src/address"

	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

// zosAddress is the Yggdrasil address 0-OS gives a node whose identity
// seed is seed: GenerateConfig uses the identity key as is.
func zosAddress(seed []byte) string {
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	a := address.AddrForKey(pub)
	return net.IP(a[:]).String()
}

// writeSeed writes a seed file as 0-OS's identityd does (zosbase
// versioned.WriteFile): version "1.0.0" + the binary seed, or "1.1.0" +
// the mnemonic JSON.
func writeSeed(t *testing.T, path, version string, seed []byte) {
	t.Helper()
	data := seed
	if version == "1.1.0" {
		m, err := bip39.NewMnemonic(seed)
		if err != nil {
			t.Fatal(err)
		}
		data = []byte(`{"mnemonic":"` + m + `"}`)
	}
	if err := os.WriteFile(path, append([]byte(`"`+version+`"`), data...), 0o400); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonZOSIdentity: the Yggdrasil address is the one 0-OS derives
// from the node identity — taken from netinit.identity= at start, or
// picked up when the seed appears later (0-OS mounts its disk after the
// handoff), or handed over on the control socket. A malformed seed is
// refused with a reason that does not quote it, and the key in use stays.
func TestDaemonZOSIdentity(t *testing.T) {
	lab.Require(t, "ip", "dnsmasq")
	lab.GuardResolvConf(t)
	bin := netinitBin(t)
	seedA := bytes.Repeat([]byte{0xa1}, 32)
	seedB := bytes.Repeat([]byte{0xb2}, 32)
	seedC := bytes.Repeat([]byte{0xc3}, 32)

	daemon := func(t *testing.T, tag, seedPath string) (statePath, sock string, out func() string) {
		srv, cli := lab.NewLAN(t, tag)
		lab.Dnsmasq(t, srv, "s0", lab.DHCPArgs...)
		dir := t.TempDir()
		statePath = filepath.Join(dir, "state.json")
		d := cli.Start(bin, "up", "--state", statePath, "--cmdline",
			"ip=dhcp netinit.ygg=on netinit.ygg.multicast=off netinit.identity="+seedPath, "eth0")
		return statePath, filepath.Join(dir, "ctl.sock"), d.Output
	}
	waitAddr := func(t *testing.T, statePath, want, what string, out func() string) *state.State {
		t.Helper()
		st := waitState(t, statePath, 30*time.Second, what+": yggdrasil not at "+want, out,
			func(s *state.State) bool { return s.Yggdrasil != nil && s.Yggdrasil.Address == want })
		b, _ := os.ReadFile(statePath)
		lab.ValidateState(t, b)
		return st
	}

	t.Run("at-start", func(t *testing.T) {
		seedPath := filepath.Join(t.TempDir(), "seed.txt")
		writeSeed(t, seedPath, "1.1.0", seedA)
		statePath, _, out := daemon(t, "zida", seedPath)
		st := waitAddr(t, statePath, zosAddress(seedA), "1.1.0 seed at start", out)
		if !strings.Contains(st.Yggdrasil.Identity, "0-os node identity "+seedPath+" (format 1.1.0)") {
			t.Fatalf("identity %q", st.Yggdrasil.Identity)
		}
		raw, _ := os.ReadFile(statePath)
		m, _ := bip39.NewMnemonic(seedA)
		if bytes.Contains(raw, []byte(strings.Fields(m)[0]+" ")) || strings.Contains(out(), strings.Fields(m)[1]+" "+strings.Fields(m)[2]) {
			t.Fatal("the mnemonic leaked into the state or the log")
		}
	})

	t.Run("later", func(t *testing.T) {
		seedPath := filepath.Join(t.TempDir(), "seed.txt")
		statePath, sock, out := daemon(t, "zidb", seedPath)
		var own string
		if !lab.Eventually(30*time.Second, func() bool {
			s, err := state.Read(statePath)
			if err == nil && s.Yggdrasil != nil {
				own = s.Yggdrasil.Address
			}
			return own != ""
		}) {
			t.Fatalf("yggdrasil never started\n%s", out())
		}
		if own == zosAddress(seedB) {
			t.Fatal("own key equals the identity before the seed exists")
		}
		// The seed appears (0-OS mounted its disk): picked up by itself.
		writeSeed(t, seedPath, "1.0.0", seedB)
		waitAddr(t, statePath, zosAddress(seedB), "seed written after start", out)
		if !strings.Contains(out(), "address "+own+" -> "+zosAddress(seedB)) {
			t.Errorf("the console does not say old -> new address:\n%s", out())
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		bad := filepath.Join(t.TempDir(), "bad.txt")
		if err := os.WriteFile(bad, []byte("\"1.0.0\"tooshort\n"), 0o400); err != nil {
			t.Fatal(err)
		}
		_, err := control.Do(ctx, sock, control.Request{Cmd: "identity", Path: bad})
		if err == nil || !strings.Contains(err.Error(), "seed is 9 bytes, want 32") || strings.Contains(err.Error(), "tooshort") {
			t.Fatalf("malformed seed over the socket: %v", err)
		}
		if st, _ := state.Read(statePath); st.Yggdrasil == nil || st.Yggdrasil.Address != zosAddress(seedB) {
			t.Fatalf("key changed after a refused seed: %+v", st.Yggdrasil)
		}
		good := filepath.Join(t.TempDir(), "seed.txt")
		writeSeed(t, good, "1.0.0", seedC)
		if _, err := control.Do(ctx, sock, control.Request{Cmd: "identity", Path: good}); err != nil {
			t.Fatalf("identity over the socket: %v", err)
		}
		waitAddr(t, statePath, zosAddress(seedC), "identity over the control socket", out)
	})
}
