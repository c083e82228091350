package firewall

import (
	"context"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/threefoldtech/netinit/boot/spec"
	"github.com/threefoldtech/netinit/internal/lab"
)

func TestDescribe(t *testing.T) {
	got := Describe(Rules{Interfaces: []string{"ygg0"}, Allow: []spec.Port{{Port: 9900, Proto: spec.TCP}, {Port: 53, Proto: spec.UDP}, {Port: 9900, Proto: spec.TCP}}})
	want := []string{
		"ygg0: accept established,related",
		"ygg0: accept icmpv6 destination-unreachable,packet-too-big,time-exceeded,parameter-problem,echo-request",
		"ygg0: accept 9900/tcp",
		"ygg0: accept 53/udp",
		"ygg0: drop everything else inbound",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Describe:\n%q\nwant\n%q", got, want)
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		r  Rules
		ok bool
	}{
		{Rules{Interfaces: []string{"ygg0", "wg0"}}, true},
		{Rules{}, false},
		{Rules{Interfaces: []string{""}}, false},
		{Rules{Interfaces: []string{"sixteen-chars-xx"}}, false},
		{Rules{Interfaces: []string{"ygg0"}, Allow: []spec.Port{{Port: 0, Proto: spec.TCP}}}, false},
		{Rules{Interfaces: []string{"ygg0"}, Allow: []spec.Port{{Port: 1, Proto: spec.UDP + 1}}}, false},
	} {
		if err := c.r.check(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.r, err)
		}
	}
}

// conn returns an nftables connection working inside ns.
func conn(t *testing.T, ns *lab.NS) *nftables.Conn {
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dial tries a TCP connection from ns and says what happened: "open",
// "refused" (the SYN got through, nothing listens: RST) or "timeout"
// (the SYN was dropped).
func dial(t *testing.T, ns *lab.NS, addr, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "timeout", "1.5",
		"bash", "-c", "exec 3<>/dev/tcp/"+addr+"/"+port).CombinedOutput()
	switch {
	case err == nil:
		return "open"
	case strings.Contains(string(out), "refused"):
		return "refused"
	default:
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 124 {
			return "timeout"
		}
		t.Fatalf("dial %s:%s: %v %s", addr, port, err, out)
	}
	return ""
}

// newLab is a host with two links to a peer: ovl0 (2001:db8:1::1, the
// overlay interface the rules guard) to p0 (2001:db8:1::2), and oth0
// (2001:db8:2::1, another link) to p1 (2001:db8:2::2).
func newLab(t *testing.T, tag string) (host, peer *lab.NS) {
	t.Helper()
	lab.Require(t, "nft", "bash", "timeout")
	lab.GuardResolvConf(t)
	host, peer = lab.NewNS(t, tag+"h"), lab.NewNS(t, tag+"p")
	lab.Link(t, host, "ovl0", []string{"2001:db8:1::1/64"}, peer, "p0", []string{"2001:db8:1::2/64"})
	lab.Link(t, host, "oth0", []string{"2001:db8:2::1/64"}, peer, "p1", []string{"2001:db8:2::2/64"})
	return host, peer
}

// expectDial fails the test unless a TCP connection from ns to addr:port
// ends as want (see dial); what says which path it is.
func expectDial(t *testing.T, ns *lab.NS, addr, port, want, what string) {
	t.Helper()
	if got := dial(t, ns, addr, port); got != want {
		t.Errorf("%s: %s, want %s", what, got, want)
	}
}

// listRules is the host's netinit table, each of want in it.
func listRules(t *testing.T, host *lab.NS, want ...string) string {
	t.Helper()
	listing := host.MustExec("nft", "list", "table", "inet", "netinit")
	t.Logf("%s", listing)
	for _, w := range want {
		if !strings.Contains(listing, w) {
			t.Errorf("rule set lacks %q", w)
		}
	}
	return listing
}

func TestApplyLab(t *testing.T) {
	host, peer := newLab(t, "fw")
	// The rules don't let neighbor discovery in (the overlay interfaces
	// are layer-3 TUNs without it), so pin the veth neighbors.
	pinOverlayNeighbors(t, host, peer)
	c := conn(t, host)

	r := Rules{Interfaces: []string{"ovl0", "wg0"}, Allow: []spec.Port{{Port: 9900, Proto: spec.TCP}}}
	if err := apply(c, r); err != nil {
		t.Fatal(err)
	}
	listRules(t, host,
		"type filter hook input priority filter; policy accept;",
		`iifname "ovl0" ct state established,related accept`,
		`iifname "ovl0" icmpv6 type echo-request accept`,
		`iifname "ovl0" icmpv6 type packet-too-big accept`,
		`iifname "ovl0" tcp dport 9900 accept`,
		`iifname "ovl0" drop`,
		`iifname "wg0" drop`)

	// Through the guarded interface: the allowed port reaches the
	// kernel (refused: nothing listens), another port is dropped.
	expectDial(t, peer, "2001:db8:1::1", "9900", "refused", "allowed port via ovl0 (reaches the host)")
	expectDial(t, peer, "2001:db8:1::1", "9901", "timeout", "other port via ovl0 (dropped)")
	// Another interface is untouched.
	expectDial(t, peer, "2001:db8:2::1", "9901", "refused", "other interface (not filtered)")
	// Connections the host opens through the guarded interface work:
	// output is untouched and the RST coming back is related/established.
	expectDial(t, host, "2001:db8:1::2", "9901", "refused", "outbound via ovl0 (reply let in)")

	// Replace: 9901 instead of 9900, in one batch; still one table.
	r.Allow = []spec.Port{{Port: 9901, Proto: spec.TCP}}
	if err := apply(c, r); err != nil {
		t.Fatal(err)
	}
	listing := host.MustExec("nft", "list", "ruleset")
	if strings.Count(listing, "table inet netinit") != 1 || strings.Contains(listing, "9900") || !strings.Contains(listing, "dport 9901 accept") {
		t.Errorf("after replace:\n%s", listing)
	}
	expectDial(t, peer, "2001:db8:1::1", "9901", "refused", "newly allowed port")
	expectDial(t, peer, "2001:db8:1::1", "9900", "timeout", "no longer allowed port")

	if err := remove(c); err != nil {
		t.Fatal(err)
	}
	if err := remove(c); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if out := host.MustExec("nft", "list", "ruleset"); strings.Contains(out, "netinit") {
		t.Errorf("table left after Remove:\n%s", out)
	}
	expectDial(t, peer, "2001:db8:1::1", "9900", "refused", "after remove")
}

// TestOwnedLab sends real packets for the overlay addresses to the host
// through its "Ethernet" (oth0), as a hostile neighbour routing 200::/7 to
// the node would: they are dropped, while the same address is reachable
// through the overlay interface and from the host itself.
func TestOwnedLab(t *testing.T) {
	host, peer := newLab(t, "fwo")
	host.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "oth0")
	peer.MustExec("ip", "addr", "add", "192.0.2.2/24", "dev", "p1")
	// The node's Yggdrasil address and its WireGuard address.
	host.MustExec("ip", "addr", "add", "201:db8::1/128", "dev", "ovl0", "nodad")
	host.MustExec("ip", "addr", "add", "198.51.100.7/32", "dev", "lo")
	peer.MustExec("ip", "route", "add", "198.51.100.7/32", "via", "192.0.2.1", "dev", "p1")
	c := conn(t, host)
	r := Rules{
		Interfaces: []string{"ovl0", "wgx0"},
		Allow:      []spec.Port{{Port: 9900, Proto: spec.TCP}},
		Owned: []Owned{
			{Interface: "ovl0", Prefix: netip.MustParsePrefix("200::/7")},
			{Interface: "wgx0", Prefix: netip.MustParsePrefix("198.51.100.7/32")},
		},
	}
	if err := apply(c, r); err != nil {
		t.Fatal(err)
	}
	listRules(t, host,
		`iifname != "lo" iifname != "ovl0" ip6 daddr 200::/7 drop`,
		`iifname != "lo" iifname != "wgx0" ip daddr 198.51.100.7 drop`)
	// From the Ethernet side: the allowed port too is dropped.
	peer.MustExec("ip", "route", "replace", "201:db8::1/128", "via", "2001:db8:2::1", "dev", "p1")
	expectDial(t, peer, "201:db8::1", "9900", "timeout", "Yggdrasil address via the Ethernet (dropped)")
	expectDial(t, peer, "198.51.100.7", "9900", "timeout", "WireGuard address via the Ethernet (dropped)")
	// The link's own address is not an overlay address: untouched.
	expectDial(t, peer, "2001:db8:2::1", "9901", "refused", "Ethernet address (not filtered)")
	// The node itself (lo) reaches its overlay addresses.
	expectDial(t, host, "201:db8::1", "9901", "refused", "own Yggdrasil address from the node")
	expectDial(t, host, "198.51.100.7", "9901", "refused", "own WireGuard address from the node")
	// Through the overlay interface the usual rules apply.
	peer.MustExec("ip", "route", "replace", "201:db8::1/128", "via", "2001:db8:1::1", "dev", "p0")
	pinOverlayNeighbors(t, host, peer)
	expectDial(t, peer, "201:db8::1", "9900", "refused", "allowed port via the overlay interface (reaches the host)")
	expectDial(t, peer, "201:db8::1", "9901", "timeout", "other port via the overlay interface")
}

// pinOverlayNeighbors pins the neighbours across the ovl0-p0 veth: the
// rules don't let neighbor discovery in (the overlay interfaces are
// layer-3 TUNs without it).
func pinOverlayNeighbors(t *testing.T, host, peer *lab.NS) {
	t.Helper()
	for _, n := range []struct {
		ns      *lab.NS
		dev     string
		addr    string
		peerNS  *lab.NS
		peerDev string
	}{
		{host, "ovl0", "2001:db8:1::2", peer, "p0"},
		{peer, "p0", "2001:db8:1::1", host, "ovl0"},
	} {
		l, err := n.peerNS.Handle().LinkByName(n.peerDev)
		if err != nil {
			t.Fatal(err)
		}
		n.ns.MustExec("ip", "neigh", "replace", n.addr, "lladdr", l.Attrs().HardwareAddr.String(), "dev", n.dev, "nud", "permanent")
	}
}
