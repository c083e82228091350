package wg

import (
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func TestParsePeer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       Peer
		wantErr string
		host    string
		port    uint16
		literal bool
		ka      time.Duration
	}{
		{name: "ipv4", p: Peer{PublicKey: testKey, Endpoint: "203.0.113.1:51820"}, host: "203.0.113.1", port: 51820, literal: true, ka: DefaultKeepalive},
		{name: "ipv6", p: Peer{PublicKey: testKey, Endpoint: "[2001:db8::1]:1", Keepalive: 10 * time.Second}, host: "2001:db8::1", port: 1, literal: true, ka: 10 * time.Second},
		{name: "name", p: Peer{PublicKey: testKey, Endpoint: "gw.example.org:51820"}, host: "gw.example.org", port: 51820, ka: DefaultKeepalive},
		{name: "no endpoint", p: Peer{PublicKey: testKey, Keepalive: -1}, ka: -1},
		{name: "bad key", p: Peer{PublicKey: "abc"}, wantErr: "not 32 bytes"},
		{name: "no port", p: Peer{PublicKey: testKey, Endpoint: "gw.example.org"}, wantErr: "missing port"},
		{name: "port 0", p: Peer{PublicKey: testKey, Endpoint: "gw:0"}, wantErr: "want host:port"},
		{name: "keepalive too big", p: Peer{PublicKey: testKey, Keepalive: 70000 * time.Second}, wantErr: "above 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parsePeer(tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.host != tc.host || c.port != tc.port || c.ip.IsValid() != tc.literal || c.Keepalive != tc.ka {
				t.Fatalf("got host %q port %d literal %v ka %s", c.host, c.port, c.ip.IsValid(), c.Keepalive)
			}
		})
	}
}

func TestPeerUAPI(t *testing.T) {
	c, err := parsePeer(Peer{PublicKey: testKey, Endpoint: "gw:51820", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("10.1.2.3/8")}})
	if err != nil {
		t.Fatal(err)
	}
	got := peerUAPI(&c, netip.MustParseAddrPort("203.0.113.1:51820"))
	want := "public_key=" + hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef")) + "\n" +
		"endpoint=203.0.113.1:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=::/0\nallowed_ip=10.0.0.0/8\n"
	if got != want {
		t.Fatalf("uapi =\n%s\nwant\n%s", got, want)
	}
	if got := peerUAPI(&c, netip.AddrPort{}); strings.Contains(got, "endpoint=") {
		t.Fatalf("endpoint set without an address:\n%s", got)
	}
}

func TestParseGetAndState(t *testing.T) {
	priv := strings.Repeat("ab", 32)
	k1 := hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	k2 := strings.Repeat("01", 32)
	get := "private_key=" + priv + "\nlisten_port=51820\n" +
		"public_key=" + k2 + "\npreshared_key=" + strings.Repeat("0", 64) + "\nprotocol_version=1\n" +
		"last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=148\nrx_bytes=0\npersistent_keepalive_interval=25\n" +
		"public_key=" + k1 + "\nprotocol_version=1\nendpoint=203.0.113.1:51820\n" +
		"last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=1000\nrx_bytes=2000\n" +
		"persistent_keepalive_interval=25\nallowed_ip=::/0\n\n"
	peers, err := parseGet(get)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[1].rx != 2000 || peers[1].tx != 1000 || peers[1].endpoint != "203.0.113.1:51820" ||
		!peers[1].lastHandshake.Equal(time.Unix(1700000000, 5)) || !peers[0].lastHandshake.IsZero() {
		t.Fatalf("parseGet = %+v", peers)
	}
	c1, _ := parsePeer(Peer{PublicKey: testKey, Endpoint: "gw:1"})
	c2, _ := parsePeer(Peer{PublicKey: base64.StdEncoding.EncodeToString(bytesOf(k2)), Endpoint: "gw.invalid:51820"})
	c3, _ := parsePeer(Peer{PublicKey: base64.StdEncoding.EncodeToString(make([]byte, 32))})
	st := buildState("wg0", [32]byte{1}, []netip.Prefix{netip.MustParsePrefix("2001:db8:1::2/128")}, []peerConf{c1, c2, c3}, peers)
	if st.Interface != "wg0" || len(st.Peers) != 3 || st.Addresses[0] != "2001:db8:1::2/128" {
		t.Fatalf("state = %+v", st)
	}
	if p := st.Peers[0]; p.PublicKey != testKey || p.Endpoint != "203.0.113.1:51820" || p.LastHandshake == nil || p.RxBytes != 2000 {
		t.Fatalf("peer 0 = %+v", p)
	}
	if p := st.Peers[1]; p.Endpoint != "gw.invalid:51820" || p.LastHandshake != nil || p.TxBytes != 148 {
		t.Fatalf("peer 1 = %+v", p)
	}
	if p := st.Peers[2]; p.Endpoint != "" || p.LastHandshake != nil {
		t.Fatalf("peer 2 (not in the device) = %+v", p)
	}
}

func bytesOf(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	return b
}

func TestRedactor(t *testing.T) {
	var k [32]byte
	copy(k[:], "secretsecretsecretsecretsecret!!")
	r := newRedactor(k)
	for _, s := range r {
		out := r.clean("failed: " + s + " bad")
		if strings.Contains(out, s) || !strings.Contains(out, "(private key)") {
			t.Errorf("clean(%q) = %q", s, out)
		}
	}
}

func TestRateLimit(t *testing.T) {
	var n int
	f := rateLimit(func(string, ...any) { n++ }, time.Hour)
	for range 5 {
		f("same %d", 1)
	}
	f("other")
	if n != 2 {
		t.Fatalf("logged %d times, want 2", n)
	}
}
