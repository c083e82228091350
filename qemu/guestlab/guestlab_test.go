package guestlab

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/vishvananda/netlink"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/internal/lab"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// TestLibraries: dnsmasq's libraries as ldd lists them (its loader, libc,
// and what its libraries link in turn).
func TestLibraries(t *testing.T) {
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		lab.Missing(t, "dnsmasq is not installed (make test installs it)")
	}
	libs, err := Libraries(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Skipf("ldd: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "linux-vdso") {
			continue
		}
		name := filepath.Base(f[0])
		if !slices.ContainsFunc(libs, func(p string) bool { return filepath.Base(p) == name }) {
			t.Errorf("ldd lists %s, Libraries %v lacks it", name, libs)
		}
	}
	if !slices.ContainsFunc(libs, func(p string) bool { return strings.HasPrefix(filepath.Base(p), "ld-linux") }) {
		t.Errorf("no dynamic loader in %v", libs)
	}
	if _, err := Libraries("/nonexistent"); err == nil {
		t.Error("Libraries of a missing file: no error")
	}
}

// TestNetArgs: NICs on hubs and the user-mode network on one of them.
func TestNetArgs(t *testing.T) {
	got := strings.Join(netArgs(Config{NICs: []NIC{{Hub: 1, MAC: "m0"}, {Hub: 2, MAC: "m1"}}, SlirpHub: 2}), " ")
	want := "-netdev hubport,id=gl0,hubid=1 -device virtio-net-pci,netdev=gl0,mac=m0 " +
		"-netdev hubport,id=gl1,hubid=2 -device virtio-net-pci,netdev=gl1,mac=m1 " +
		"-netdev user,id=glslirp,ipv4=on,ipv6=on -netdev hubport,id=glslirphub,hubid=2,netdev=glslirp"
	if got != want {
		t.Errorf("netArgs:\n %s\nwant\n %s", got, want)
	}
}

// TestParseReport: a kernel line the console put in the middle of the
// report is dropped.
func TestParseReport(t *testing.T) {
	raw := "{\n \"error\": \"x\",\n[   12.345678] virtio_net virtio1: something\n \"uptime\": {\"init\": 3.5}\n}"
	rep, err := parseReport(raw)
	if err != nil || rep.Error != "x" || rep.Uptime["init"] != 3.5 {
		t.Fatalf("parseReport = %+v, %v", rep, err)
	}
	if _, err := parseReport("{"); err == nil {
		t.Error("a broken report parsed")
	}
}

// TestWithConfig: the boot's configuration is a second archive after the
// image, as the kernel reads them.
func TestWithConfig(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, []byte("base"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := withConfig(img, dir, guestConfig{Program: "p", Budget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !bytes.HasPrefix(b, []byte("base\x00")) || len(b)%4 != 0 {
		t.Fatalf("image %q...", b[:8])
	}
	r := cpio.Newc.Reader(bytes.NewReader(b[512:]))
	rec, err := r.ReadRecord()
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
	if rec.Name != "guestlab.json" || !strings.Contains(string(doc), `"program":"p"`) {
		t.Fatalf("record %s: %s", rec.Name, doc)
	}
}

// dhcp: the guest lab itself. NIC 1 shares hub 1 with NIC 0 and is moved
// into a "switch" namespace with dnsmasq on it; NIC 2 is on hub 2 with
// QEMU's user-mode network. `netinit up` (NodeUp) gets a lease on each.
var dhcp = Register(Program{
	Name: "guestlab-dhcp",
	Setup: func(g *Guest) error {
		sw, err := g.NewNS("switch")
		if err != nil {
			return err
		}
		if err := sw.Take(g.NIC(1), "sw0"); err != nil {
			return err
		}
		h, err := sw.Handle()
		if err != nil {
			return err
		}
		defer h.Close()
		l, err := h.LinkByName("sw0")
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := h.AddrAdd(l, a); err != nil {
			return err
		}
		return sw.Dnsmasq("dnsmasq", "sw0", lab.DHCPArgs...)
	},
	Check: func(g *Guest) (any, error) {
		st, err := g.State()
		if err != nil {
			return nil, err
		}
		doc := dhcpDoc{Phase: string(st.Phase), Addrs: map[int][]string{}}
		for _, i := range []int{0, 2} {
			l, err := netlink.LinkByName(g.NIC(i))
			if err != nil {
				return nil, err
			}
			as, err := kernel.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_V4) })
			if err != nil {
				return nil, err
			}
			for _, a := range as {
				doc.Addrs[i] = append(doc.Addrs[i], a.IPNet.String())
			}
		}
		return doc, nil
	},
})

type dhcpDoc struct {
	Phase string
	Addrs map[int][]string // IPv4 addresses by NIC
}

// TestGuestLab: hubs, a switch namespace with real dnsmasq (and its
// libraries) in the guest, the user-mode network on a hub, `netinit up`
// as the node: a lease from each.
func TestGuestLab(t *testing.T) {
	t.Parallel()
	var doc dhcpDoc
	res := Boot(t, Config{Program: dhcp, NICs: []NIC{{Hub: 1}, {Hub: 1}, {Hub: 2}}, SlirpHub: 2, Binaries: []string{"dnsmasq"},
		Node: NodeUp, Cmdline: "ip=dhcp netinit.uplink=eth0 netinit.ygg=off netinit.timeout=30s"}, &doc)
	if doc.Phase != "ready" {
		t.Errorf("phase %s, want ready", doc.Phase)
	}
	for i, prefix := range map[int]string{0: "192.0.2.0/24", 2: "10.0.2.0/24"} {
		if !slices.ContainsFunc(doc.Addrs[i], func(a string) bool {
			p, err := netip.ParsePrefix(a)
			return err == nil && netip.MustParsePrefix(prefix).Contains(p.Addr())
		}) {
			t.Errorf("NIC %d: addresses %v, want one in %s", i, doc.Addrs[i], prefix)
		}
	}
	if !strings.Contains(res.Logs["dnsmasq"], "DHCPACK(sw0)") {
		t.Errorf("dnsmasq acked nothing on sw0:\n%s", res.Logs["dnsmasq"])
	}
}

// stuck never ends its check.
var stuck = Register(Program{
	Name:  "guestlab-stuck",
	Check: func(g *Guest) (any, error) { <-make(chan struct{}); return nil, nil },
})

// TestGuestLabDeadline: a guest step that never ends is reported, by
// name, before QEMU is killed.
func TestGuestLabDeadline(t *testing.T) {
	t.Parallel()
	// The guest must reach its check before the deadline: on a loaded
	// host, power-on to /init has taken close to 40 s under TCG.
	cfg := defaults(t, Config{Program: stuck, Timeout: 90 * time.Second})
	res, rep, err := boot(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `passed in step "check"`; !strings.Contains(rep.Error, want) {
		t.Fatalf("report error %q, want %q", rep.Error, want)
	}
	if !res.QEMU.PoweredOff {
		t.Error("the guest did not power off after its report")
	}
}
