package lab

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLab checks the lab itself: two namespaces joined by veth can ping
// each other, the Go child runs inside the namespace, and the host's
// resolv.conf is untouched.
func TestLab(t *testing.T) {
	if Child() {
		out, err := run(context.Background(), "ip", "-o", "link", "show", "c0")
		ChildResult(t, map[string]any{"ok": err == nil, "out": out})
		return
	}
	Require(t, "ip")
	GuardResolvConf(t)
	a, b := NewNS(t, "laba"), NewNS(t, "labb")
	Veth(t, a, "s0", b, "c0")
	a.MustExec("ip", "addr", "add", "192.0.2.1/24", "dev", "s0")
	b.MustExec("ip", "addr", "add", "192.0.2.2/24", "dev", "c0")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := b.Exec(ctx, "ip", "neigh", "show"); err != nil {
		t.Fatalf("ping across veth: %v\n%s", err, out)
	}
	var res struct {
		OK  bool
		Out string
	}
	RunChild(t, b, 30*time.Second, nil, &res)
	if !res.OK || !strings.Contains(res.Out, "c0") {
		t.Fatalf("child did not run inside %s: %+v", b.Name, res)
	}
	links, err := b.Handle().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	if strings.Join(names, ",") != "lo,c0" {
		t.Fatalf("links in %s = %v, want lo,c0", b.Name, names)
	}
}
