package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Dnsmasq starts dnsmasq as a DHCP (and optionally DHCPv6) server on iface
// in ns, with no DNS service (port 0) and no config file but args.
func Dnsmasq(t testing.TB, ns *NS, iface string, args ...string) *Proc {
	t.Helper()
	p := ns.Start(DnsmasqArgs(iface, t.TempDir(), args...)...)
	// Return once it listens: a client started at once would otherwise
	// lose its first DISCOVER and wait for the retransmission (2 s), which
	// turns tests that depend on who answers first into coin flips.
	ready := DnsmasqReady(args)
	if !Eventually(10*time.Second, func() bool { return strings.Contains(p.Output(), ready) }) {
		t.Logf("lab: dnsmasq in %s not ready after 10 s (going on):\n%s", ns.Name, p.Output())
	}
	return p
}

// DnsmasqArgs is the labs' dnsmasq command line: a DHCP (and optionally
// DHCPv6) server on iface, in the foreground, with no DNS service (port 0)
// and no config file but args; its lease and pid files in dir.
func DnsmasqArgs(iface, dir string, args ...string) []string {
	base := []string{"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=" + iface, "--bind-interfaces", "--log-dhcp", "--user=root", "--group=root",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=" + filepath.Join(dir, "pid")}
	return append(base, args...)
}

// DnsmasqReady is the line dnsmasq started with args logs once it serves.
func DnsmasqReady(args []string) string {
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--dhcp-range") }) {
		return "sockets bound exclusively"
	}
	return "dnsmasq: started"
}

// Radvd starts radvd in ns with the given config (the body of radvd.conf).
// It turns on IPv6 forwarding in ns, which radvd requires.
func Radvd(t testing.TB, ns *NS, conf string) *Proc {
	t.Helper()
	dir := t.TempDir()
	cf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.MustExec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	return ns.Start(RadvdArgs(cf, dir)...)
}

// RadvdArgs is the labs' radvd command line: in the foreground, logging
// to stderr, with the config file conf and its pid file in dir.
func RadvdArgs(conf, dir string) []string {
	return []string{"radvd", "--nodaemon", "--config=" + conf, "--pidfile=" + filepath.Join(dir, "pid"), "--logmethod=stderr"}
}

// RepoRoot is the directory holding go.mod, found from the test's working
// directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("lab: go.mod not found above the test directory")
		}
		dir = parent
	}
}

// BuildNetinit builds the netinit binary (static, as in the image) into a
// temporary directory and returns its path.
func BuildNetinit(t testing.TB) string {
	t.Helper()
	return BuildNetinitTo(t, filepath.Join(t.TempDir(), "netinit"))
}

// BuildNetinitTo builds the lab's netinit binary to out: tag netinit_lab,
// under which the documentation ranges the labs are numbered from count
// as public (cmd/netinit passes netprobe.Internet{Documentation: true}).
func BuildNetinitTo(t testing.TB, out string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "netinit_lab", "-o", out, "./cmd/netinit")
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab: building netinit: %v\n%s", err, b)
	}
	return out
}

// ValidateState checks a state document against docs/state.schema.json.
func ValidateState(t testing.TB, doc []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(filepath.Join(RepoRoot(t), "docs", "state.schema.json"))
	if err != nil {
		t.Fatalf("lab: state schema: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(doc)))
	if err != nil {
		t.Fatalf("lab: state is not JSON: %v", err)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("state does not match docs/state.schema.json: %v\n%s", err, doc)
	}
}

// Eventually polls cond every 50 ms until it holds or timeout passes.
func Eventually(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// NewLAN makes the usual two-host lab: a server namespace whose s0 holds
// 192.0.2.1/24 and 2001:db8:1::1/64, joined by veth to a client namespace
// whose eth0 is down, as a NIC is at boot.
func NewLAN(t testing.TB, tag string) (srv, cli *NS) {
	t.Helper()
	srv, cli = NewNS(t, tag+"s"), NewNS(t, tag+"c")
	// The router's link-local address is long established on a real
	// network: no DAD on its side when the client's link comes up (else
	// radvd cannot answer for the 1-2 s its fe80:: stays tentative).
	srv.MustExec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	Veth(t, srv, "s0", cli, "eth0")
	srv.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "s0")
	srv.MustExec("ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "s0", "nodad")
	cli.MustExec("ip", "link", "set", "eth0", "down")
	return srv, cli
}

// DHCPArgs is a dnsmasq DHCPv4 service on 192.0.2.0/24: router
// 192.0.2.1, DNS 192.0.2.53, MTU 1450, search v4.example, NTP
// 192.0.2.123, one-hour leases.
var DHCPArgs = []string{
	"--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h", "--no-ping",
	"--dhcp-option=option:router,192.0.2.1",
	"--dhcp-option=option:dns-server,192.0.2.53",
	"--dhcp-option=option:mtu,1450",
	"--dhcp-option=option:domain-search,v4.example",
	"--dhcp-option=option:ntp-server,192.0.2.123",
}

// LLDPAgent is Debian's lldpd running as a switch's LLDP agent.
type LLDPAgent struct {
	*Proc
	ns   *NS
	sock string
}

// LLDPD starts lldpd on iface in ns, announcing every interval seconds
// with the given lldpcli configuration lines (system name, port, custom
// TLVs), and returns once its interface is open.
func LLDPD(t testing.TB, ns *NS, iface string, interval int, conf ...string) LLDPAgent {
	t.Helper()
	Require(t, "lldpd", "lldpcli")
	// Its configuration step connects to its socket without root: not in
	// t.TempDir, whose parent only root may enter.
	dir, err := os.MkdirTemp("", "netinit-lldpd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, "lldpd.conf")
	conf = append([]string{fmt.Sprintf("configure lldp tx-interval %d", interval)}, conf...)
	if err := os.WriteFile(c, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// -d: foreground; -u: its own control socket, not the host's; -O:
	// this configuration, not /etc/lldpd.conf; -I: only this interface.
	sock := filepath.Join(dir, "ctl")
	p := ns.Start("lldpd", "-d", "-u", sock, "-O", c, "-I", iface)
	// Its interface is open once its configuration is applied: what a
	// peer sends before is lost.
	if !Eventually(10*time.Second, func() bool { return strings.Contains(p.Output(), "resume operations") }) {
		t.Fatalf("lab: lldpd did not start:\n%s", p.Output())
	}
	return LLDPAgent{p, ns, sock}
}

// Neighbours is what lldpd heard (lldpcli's key=value output; "" when
// nothing).
func (a LLDPAgent) Neighbours(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := a.ns.Exec(ctx, "lldpcli", "-u", a.sock, "show", "neighbors", "-f", "keyvalue")
	if err != nil {
		t.Fatalf("lab: lldpcli: %v\n%s", err, out)
	}
	return out
}
