package runmode

import (
	"net"
	"net/url"
	"testing"

	"github.com/threefoldtech/netinit/boot/dnsname"
)

// Every mode has peers and targets, and each is well formed (they are
// handed to yggdrasil-go and netprobe as they are).
func TestDefaultsWellFormed(t *testing.T) {
	for _, m := range Modes {
		d := For(m)
		if len(d.YggPeers) == 0 || len(d.ProbeTargets) == 0 || len(d.NTP) < 2 {
			t.Fatalf("%s: %d peers, %d targets, %d NTP servers", m, len(d.YggPeers), len(d.ProbeTargets), len(d.NTP))
		}
		for _, h := range d.NTP {
			if err := dnsname.CheckHost(h); err != nil {
				t.Errorf("%s: NTP server %q: %v", m, h, err)
			}
		}
		for _, p := range d.YggPeers {
			u, err := url.Parse(p)
			if err != nil || (u.Scheme != "tcp" && u.Scheme != "tls" && u.Scheme != "quic") || u.Port() == "" {
				t.Errorf("%s: peer %q: scheme %q port %q err %v", m, p, u.Scheme, u.Port(), err)
			}
		}
		for _, h := range d.ProbeTargets {
			if _, _, err := net.SplitHostPort(h); err != nil {
				t.Errorf("%s: target %q: %v", m, h, err)
			}
		}
	}
}

func TestParse(t *testing.T) {
	for _, v := range []string{"prod", "test", "qa", "dev"} {
		if m, err := Parse(v); err != nil || string(m) != v {
			t.Errorf("Parse(%q) = %q, %v", v, m, err)
		}
	}
	for _, v := range []string{"", "PROD", "main", "production", "dev\n"} {
		if _, err := Parse(v); err == nil {
			t.Errorf("Parse(%q) accepted", v)
		}
	}
	a, b := For(Prod), For(Prod)
	a.YggPeers[0] = "changed"
	if b.YggPeers[0] == "changed" {
		t.Fatal("For returns shared slices")
	}
}
