package dnsname

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"example.com", true},
		{"example.com.", true},
		{"3com.example", true},
		{"a-b.c", true},
		{"Lab.Example", true},
		{long + ".example", true},
		{long + "a.example", false},
		{strings.Repeat(long+".", 4)[:254], false},
		{"", false},
		{".", false},
		{"a..b", false},
		{"-a.b", false},
		{"a-.b", false},
		{"under_score.example", false},
		{"sp ace.example", false},
		{"nul\x00.example", false},
		{"é.example", false},
		// resolv.conf injection (issue 13): a newline or a tab must never
		// get through, nor a terminal escape.
		{"x\nnameserver\t6.6.6.6", false},
		{"lab.example\noptions rotate", false},
		{"\x1b[2Jlab.example", false},
		{"lab.example\r", false},
	} {
		err := Check(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, not ErrInvalid", tc.name, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\t\x1b\r\x00") {
			t.Errorf("Check(%q): the error %q carries a control character", tc.name, err)
		}
	}
	if err := CheckHost(strings.Repeat("a", 40) + "." + strings.Repeat("b", 30)); err == nil {
		t.Error("CheckHost accepted a 71-character hostname")
	}
}

func TestCheckServer6(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"2001:db8::53", true},
		{"fd00::53", true},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"::1", false},
		{"::", false},
		{"ff02::1", false},
		{"::ffff:192.0.2.53", false},
		{"192.0.2.53", false},
	} {
		if err := CheckServer6(netip.MustParseAddr(tc.addr)); (err == nil) != tc.ok {
			t.Errorf("CheckServer6(%s) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestList(t *testing.T) {
	var dropped []string
	got := List([]string{"Lab.Example.", "x\nnameserver\t6.6.6.6", "lab.example", "b.example", "c.example"}, 2,
		func(n string, err error) { dropped = append(dropped, n) })
	if want := []string{"lab.example", "b.example"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if want := []string{"x\nnameserver\t6.6.6.6"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
}

// FuzzCheck: whatever Check accepts is printable ASCII without blanks, so
// it can be written to resolv.conf, the state file and the console as is.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"lab.example", "x\nnameserver\t6.6.6.6", "a-.b", "3com.example."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		if n == "" || len(n) > MaxName || strings.ContainsFunc(n, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.')
		}) {
			t.Fatalf("Normalize(%q) = %q", s, n)
		}
	})
}
