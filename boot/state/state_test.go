package state

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/lease"
)

func sample() *State {
	return &State{
		Phase: PhaseReady, Uplink: "eth0", UplinkReason: "first-default-route",
		Interfaces: []Interface{{Name: "eth0", MAC: "52:54:00:12:34:56", MTU: 1500, Carrier: true,
			Addresses: []Address{{CIDR: "192.0.2.57/24", Source: lease.SourceDHCP4}, {CIDR: "2001:db8::5/64", Source: lease.SourceSLAAC, Public: true}}}},
		Routes: []Route{{Dst: "0.0.0.0/0", Via: "192.0.2.1", Dev: "eth0"}, {Dst: "::/0", Via: "fe80::1", Dev: "eth0"}},
		DNS:    []string{"192.0.2.53"}, Search: []string{}, NTP: []string{}, Problems: []string{},
		Hostname: "it's", TimingsMS: map[string]int64{"ready": 42}, UpdatedAt: time.Unix(1, 0).UTC(),
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := Write(p, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Schema != Schema || got.Phase != PhaseReady || got.Interfaces[0].Addresses[1].CIDR != "2001:db8::5/64" {
		t.Fatalf("read back %+v", got)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("files in the state dir: %v", ents)
	}
}

// TestWriteFailureKeepsOld: when the state directory is full (a tiny
// tmpfs, as root) or not writable (as another user), Write fails saying
// what it was doing and the previous file stays intact.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	s := sample()
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8k"); err != nil {
			t.Skipf("tmpfs: %v", err)
		}
		defer unix.Unmount(dir, unix.MNT_DETACH)
	}
	p := filepath.Join(dir, "state.json")
	if err := Write(p, s); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(p)
	s.Phase = PhaseOffline
	if os.Geteuid() == 0 {
		// Fill the file system so the new document cannot be written.
		for i := 0; i < 200; i++ {
			s.Problems = append(s.Problems, strings.Repeat("x", 100))
		}
	} else if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	} else {
		defer os.Chmod(dir, 0o755)
	}
	err := Write(p, s)
	if err == nil || !strings.Contains(err.Error(), "state: write") {
		t.Fatalf("write into a full/read-only dir: %v", err)
	}
	now, _ := os.ReadFile(p)
	if string(now) != string(old) {
		t.Fatal("the previous state file changed")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, doc := range []string{`{"schema":2,"phase":"ready"}`, `{"phase":"ready"}`, `{"schema":"1"}`, `[]`, ``} {
		if _, err := Decode([]byte(doc)); err == nil {
			t.Errorf("Decode(%q) accepted", doc)
		}
	}
}

// A newer daemon's file, with fields this reader does not know (at the top
// and inside objects), is read: fields are only added within a schema.
func TestDecodeNewerFile(t *testing.T) {
	doc := `{"schema":1,"phase":"ready","uplink":"zos","uplink_nic":"eth0","future":{"x":[1,2]},
		"interfaces":[{"name":"eth0","mtu":1500,"carrier":true,"addresses":[{"cidr":"192.0.2.10/24","source":"dhcp4","public":false,"new":1}],"bond":"x"}],
		"yggdrasil":{"address":"200::1","subnet":"300::/64","public_key":"ab","peers":[],"identity":"x","later":true}}`
	s, err := Decode([]byte(doc))
	if err != nil {
		t.Fatalf("a newer file: %v", err)
	}
	if s.Phase != PhaseReady || s.Uplink != "zos" || len(s.Interfaces) != 1 || s.Interfaces[0].Addresses[0].CIDR != "192.0.2.10/24" ||
		s.Yggdrasil == nil || s.Yggdrasil.Address != "200::1" {
		t.Fatalf("read %+v", s)
	}
}

// FuzzDecode: the reader never panics, and what it accepts survives a
// round trip unchanged.
func FuzzDecode(f *testing.F) {
	b, _ := json.Marshal(sample())
	f.Add(b)
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`{"schema":1,"interfaces":[{"addresses":[null]}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Decode(doc)
		if err != nil {
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b2, _ := json.Marshal(s2)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed:\n%s\n%s", b, b2)
		}
	})
}

// TestPeerSecretsRedacted: the state file never shows a peer's password
// (query or userinfo); the rest of the URI stays readable.
func TestPeerSecretsRedacted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	st := &State{Phase: PhaseReady, Yggdrasil: &Yggdrasil{Peers: []YggdrasilPeer{
		{URI: "tls://peer.example.org:443?password=hunter2&maxbackoff=30s", Up: true},
		{URI: "tcp://alice:s3cret@[2001:db8::1]:9943"},
		{URI: "quic://198.51.100.1:443?key=abcd"},
		{URI: "tcp://198.51.100.2:9943?maxbackoff=30s&b=1"},
		{URI: "tcp://%zz"},
	}}}
	if err := Write(path, st); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, secret := range []string{"hunter2", "alice", "s3cret", "abcd", "%zz"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("state file shows %q:\n%s", secret, b)
		}
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tls://peer.example.org:443?maxbackoff=30s&password=REDACTED",
		"tcp://REDACTED@[2001:db8::1]:9943",
		"quic://198.51.100.1:443?key=REDACTED",
		"tcp://198.51.100.2:9943?maxbackoff=30s&b=1",
		"REDACTED",
	}
	for i, p := range got.Yggdrasil.Peers {
		if p.URI != want[i] {
			t.Errorf("peer %d: %q, want %q", i, p.URI, want[i])
		}
	}
	if st.Yggdrasil.Peers[0].URI != "tls://peer.example.org:443?password=hunter2&maxbackoff=30s" {
		t.Errorf("the state in memory was changed: %q", st.Yggdrasil.Peers[0].URI)
	}
}

func TestRouteString(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Dst: "0.0.0.0/0", Via: "192.0.2.1", Dev: "eth0", Source: "dhcp4"}, "0.0.0.0/0 via 192.0.2.1 dev eth0 (dhcp4)"},
		{Route{Dst: "2001:db8:1::/64", Dev: "br0", Source: "ra"}, "2001:db8:1::/64 dev br0 (ra)"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.want)
		}
	}
}
