package qemu_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/l2"
	"github.com/threefoldtech/netinit/qemu/guestlab"
)

// LACP from a real Linux bond (issue 27), in the guest lab (the host's
// kernel has no bonding): the switch is a namespace with an 802.3ad bond
// (lacp_rate fast) of two ports, s0 and s1, and a plain port s2; veth
// pairs join them to the node's n0, n1, n2 (a veth says 10 Gb/s full
// duplex, which the bond's key needs: virtio-net's NICs say no speed, and
// a bond port without full duplex sends no LACPDU). The check runs
// l2.HearLACP on the node's links: the bond's LACPDUs are parsed, n0 and
// n1 share its partner, n2 hears nothing.

// lacpDoc is what the check found.
type lacpDoc struct {
	Heard      map[string]string // link: partner
	Groups     []string          // "n0,n1: partner"
	Console    []string
	TookS      float64 // HearLACP on n0, n1, n2 (n2 is silent: the window)
	EarlyS     float64 // HearLACP on n0, n1 only
	WindowS    float64
	BondMAC    string
	BondProc   string // /proc/net/bonding/bond0 in the switch
	Frame      string // one LACPDU as n0 received it, hex
	FrameError string
}

const lacpWindow = 5 * time.Second

var lacpBond = guestlab.Register(guestlab.Program{Name: "lacp-bond", Setup: lacpSwitch, Check: lacpCheck})

// lacpSwitch makes the switch namespace, its bond and the veth pairs.
func lacpSwitch(g *guestlab.Guest) error {
	sw, err := g.NewNS("switch")
	if err != nil {
		return err
	}
	ns, err := netns.GetFromName(sw.Name)
	if err != nil {
		return err
	}
	defer ns.Close()
	for i := range 3 {
		node, port := fmt.Sprintf("n%d", i), fmt.Sprintf("s%d", i)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: node}, PeerName: port, PeerNamespace: netlink.NsFd(ns)}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("veth %s-%s: %w", node, port, err)
		}
	}
	h, err := sw.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "bond0"
	bond := netlink.NewLinkBond(attrs)
	bond.Mode = netlink.BOND_MODE_802_3AD
	bond.LacpRate = netlink.BOND_LACP_RATE_FAST
	bond.Miimon = 100
	if err := h.LinkAdd(bond); err != nil {
		return fmt.Errorf("bond0: %w", err)
	}
	b, err := h.LinkByName("bond0")
	if err != nil {
		return err
	}
	for _, port := range []string{"s0", "s1", "s2"} {
		l, err := h.LinkByName(port)
		if err != nil {
			return err
		}
		if port != "s2" {
			if err := h.LinkSetMaster(l, b); err != nil {
				return fmt.Errorf("%s into bond0: %w", port, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
	}
	return h.LinkSetUp(b)
}

// setLinks sets the node's links up or down.
func setLinks(up bool, links ...string) error {
	for _, n := range links {
		l, err := netlink.LinkByName(n)
		if err == nil && up {
			err = netlink.LinkSetUp(l)
		} else if err == nil {
			err = netlink.LinkSetDown(l)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

// lacpCheck brings the node's links up and listens, as netinit does at
// boot: from the moment the links come up (the bond sends when its port
// does, then every 30 s: the node, silent, is a defaulted partner whose
// timeout is long, 802.1AX-2014 section 6.4.13).
func lacpCheck(g *guestlab.Guest) (any, error) {
	links := []string{"n0", "n1", "n2"}
	doc := lacpDoc{Heard: map[string]string{}, WindowS: lacpWindow.Seconds()}
	// One LACPDU as it comes, for the parser's tests: the socket is
	// open before n0 comes up.
	frame := make(chan string, 1)
	ctx, cancel := context.WithTimeout(g.Context(), 4*lacpWindow)
	defer cancel()
	if ifi, err := net.InterfaceByName("n0"); err != nil {
		doc.FrameError = err.Error()
		close(frame)
	} else if c, err := packet.Listen(ifi, packet.Raw, l2.SlowProtocolsEtherType, nil); err != nil {
		doc.FrameError = err.Error()
		close(frame)
	} else {
		go func() {
			defer close(frame)
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
			buf := make([]byte, 1518)
			n, _, err := c.ReadFrom(buf)
			if errors.Is(err, unix.ENETDOWN) { // n0 was down when bound; once
				n, _, err = c.ReadFrom(buf)
			}
			if err != nil {
				frame <- "error: " + err.Error()
				return
			}
			frame <- hex.EncodeToString(buf[:n])
		}()
	}

	var (
		mu      sync.Mutex
		console []string
	)
	logf := func(format string, args ...any) { // called by HearLACP's listeners
		s := fmt.Sprintf(format, args...)
		g.Logf("%s", s)
		mu.Lock()
		console = append(console, s)
		mu.Unlock()
	}
	// The bond's two links: back as soon as both heard.
	if err := setLinks(true, links[:2]...); err != nil {
		return nil, err
	}
	start := time.Now()
	early := l2.HearLACP(g.Context(), links[:2], lacpWindow, logf)
	doc.EarlyS = time.Since(start).Seconds()
	if len(early) != 2 {
		doc.EarlyS = -1
	}
	// The three, up again: the silent n2 takes the whole window.
	if err := setLinks(false, links...); err != nil {
		return nil, err
	}
	if err := setLinks(true, links...); err != nil {
		return nil, err
	}
	start = time.Now()
	heard := l2.HearLACP(g.Context(), links, lacpWindow, logf)
	doc.TookS = time.Since(start).Seconds()
	for link, p := range heard {
		doc.Heard[link] = p.String()
	}
	for _, gr := range l2.Groups(heard) {
		doc.Groups = append(doc.Groups, strings.Join(gr.Links, ",")+": "+gr.Partner.String())
	}
	mu.Lock()
	doc.Console = slices.Clone(console)
	mu.Unlock()
	if f, ok := <-frame; ok {
		if strings.HasPrefix(f, "error: ") {
			doc.FrameError = f
		} else {
			doc.Frame = f
		}
	}
	sw := g.NS("switch")
	err := sw.Do(func() error {
		b, err := netlink.LinkByName("bond0")
		if err != nil {
			return err
		}
		doc.BondMAC = b.Attrs().HardwareAddr.String()
		// /proc/net is the process's namespace; the thread's is here.
		p, err := os.ReadFile("/proc/thread-self/net/bonding/bond0")
		doc.BondProc = string(p)
		return err
	})
	return doc, err
}

// TestLACPFromLinuxBond: the node hears the switch's bond on n0 and n1
// (its system is the bond's MAC, its key the one the bond says) when
// they come up and returns at once; up again with n2, it groups them and
// hears nothing on n2 (after the whole window).
func TestLACPFromLinuxBond(t *testing.T) {
	var doc lacpDoc
	guestlab.Boot(t, guestlab.Config{Program: lacpBond, NICs: []guestlab.NIC{{Hub: 1}},
		Modules: []string{"bonding", "veth"}, Node: guestlab.NodeNone}, &doc)
	t.Logf("console:\n%s", strings.Join(doc.Console, "\n"))
	t.Logf("one LACPDU from the bond: %s %s", doc.Frame, doc.FrameError)
	// The bond's own words for its actor key: "details actor lacp pdu:"
	// ... "port key: 15".
	m := regexp.MustCompile(`(?s)details actor lacp pdu:.*?port key: (\d+)`).FindStringSubmatch(doc.BondProc)
	if m == nil || doc.BondMAC == "" {
		t.Fatalf("no bond key or MAC in the switch: %q\n%s", doc.BondMAC, doc.BondProc)
	}
	partner := doc.BondMAC + " key " + m[1]
	want := map[string]string{"n0": partner, "n1": partner}
	if !maps.Equal(doc.Heard, want) {
		t.Errorf("heard %v, want %v\n%s", doc.Heard, want, doc.BondProc)
	}
	if !slices.Equal(doc.Groups, []string{"n0,n1: " + partner}) {
		t.Errorf("groups %q", doc.Groups)
	}
	if doc.TookS < doc.WindowS-0.1 || doc.TookS > doc.WindowS+3 {
		t.Errorf("HearLACP with a silent link took %.2f s, want the window %.0f s", doc.TookS, doc.WindowS)
	}
	// The bond sends when its port comes up (with miimon 100, within
	// 100 ms of the carrier).
	if doc.EarlyS < 0 || doc.EarlyS > 2.5 {
		t.Errorf("HearLACP on the bond's two links took %.2f s (-1: not both heard)", doc.EarlyS)
	}
	for _, n := range []string{"n0", "n1"} {
		line := n + ": LACP partner " + partner
		if !slices.ContainsFunc(doc.Console, func(s string) bool { return strings.HasPrefix(s, line) }) {
			t.Errorf("console lacks %q", line)
		}
	}
	if doc.Frame == "" {
		t.Errorf("no LACPDU captured: %s", doc.FrameError)
	}
}
