package lease

import (
	"net/netip"
	"testing"
)

func TestHasDefault(t *testing.T) {
	routes := func(ps ...string) *Report {
		l := &Report{}
		for _, p := range ps {
			l.Routes = append(l.Routes, Route{Dst: netip.MustParsePrefix(p)})
		}
		return l
	}
	for _, c := range []struct {
		l    *Report
		want bool
	}{
		{nil, false},
		{routes(), false},
		{routes("0.0.0.0/0"), true},
		{routes("::/0"), true},
		{routes("192.0.2.0/24", "10.0.0.0/8"), false},
		{routes("0.0.0.0/1", "128.0.0.0/1"), true},
		{routes("::/1", "8000::/1"), true},
		{routes("0.0.0.0/1"), false},
		{routes("128.0.0.0/1", "::/1"), false},
	} {
		if got := c.l.HasDefault(); got != c.want {
			t.Errorf("HasDefault(%v) = %v, want %v", c.l, got, c.want)
		}
	}
}
