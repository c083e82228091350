package netprobe

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	nonce := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		line string
		want Request
		err  error
	}{
		{"NETINIT-PROBE 1 40000 " + nonce + "\n", Request{40000, nonce}, nil},
		{"NETINIT-PROBE 1 40000 " + nonce + "\r\n", Request{40000, nonce}, nil},
		{"NETINIT-PROBE 1 65535 " + nonce, Request{65535, nonce}, nil},
		{"NETINIT-PROBE  1\t1024  " + nonce, Request{1024, nonce}, nil},
		{"GET / HTTP/1.1", Request{}, ErrNotProbe},
		{"", Request{}, ErrNotProbe},
		{"netinit-probe 1 40000 " + nonce, Request{}, ErrNotProbe},
		{"NETINIT-PROBE 2 40000 " + nonce, Request{}, ErrVersion},
		{"NETINIT-PROBE", Request{}, ErrVersion},
		{"NETINIT-PROBE 1 40000", Request{}, ErrFields},
		{"NETINIT-PROBE 1 40000 " + nonce + " extra", Request{}, ErrFields},
		{"NETINIT-PROBE 1 0 " + nonce, Request{}, ErrPort},
		{"NETINIT-PROBE 1 65536 " + nonce, Request{}, ErrPort},
		{"NETINIT-PROBE 1 -1 " + nonce, Request{}, ErrPort},
		{"NETINIT-PROBE 1 +4000 " + nonce, Request{}, ErrPort},
		{"NETINIT-PROBE 1 0000040000 " + nonce, Request{}, ErrPort},
		{"NETINIT-PROBE 1 22 " + nonce, Request{}, ErrLowPort},
		{"NETINIT-PROBE 1 40000 short", Request{}, ErrNonce},
		{"NETINIT-PROBE 1 40000 " + strings.Repeat("a", 65), Request{}, ErrNonce},
		{"NETINIT-PROBE 1 40000 " + nonce[:20] + "!" + nonce[21:], Request{}, ErrNonce},
		// Requests naming an address are refused, wherever it is.
		{"NETINIT-PROBE 1 198.51.100.7:40000 " + nonce, Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 1 [2001:db8::7]:40000 " + nonce, Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 1 40000 " + nonce + " 198.51.100.7", Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 1 40000 " + nonce + " 2001:db8::7", Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 1 40000 " + nonce + " victim.example.org", Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 198.51.100.7 1 40000 " + nonce, Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 1 40000 " + nonce + " 999.1.1.1", Request{}, ErrNamesAddress},
		{"NETINIT-PROBE 1 40000 " + nonce + "\x00", Request{}, errControlInLine},
		{"NETINIT-PROBE 1 40000 " + strings.Repeat("a", MaxLine), Request{}, ErrLineTooLong},
	} {
		got, err := ParseRequest(tc.line)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v, %v", tc.line, got, err, tc.want, tc.err)
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	r := Request{Port: 51234, Nonce: NewNonce()}
	got, err := ParseRequest(r.String() + "\n")
	if err != nil || got != r {
		t.Fatalf("round trip of %q: %+v, %v", r.String(), got, err)
	}
	if len(r.String())+1 > MaxLine {
		t.Fatalf("a client request is longer than MaxLine")
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		line, kind, target string
		bad                bool
	}{
		{"OK connected [2001:db8:1::2]:40000 in 3ms\n", "OK", "[2001:db8:1::2]:40000", false},
		{"OK connected 198.51.100.1:40000 in 0ms", "OK", "198.51.100.1:40000", false},
		{"FAIL could not connect to [2001:db8:1::2]:40000 within 1000ms: timeout (inbound filtered?)", "FAIL", "[2001:db8:1::2]:40000", false},
		{"ERR rate limited", "ERR", "", false},
		{"OK connected nowhere in 3ms", "", "", true},
		{"OK", "", "", true},
		{"FAIL oops", "", "", true},
		{"HELLO", "", "", true},
	} {
		a, err := ParseAnswer(tc.line)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseAnswer(%q) = %+v, want error", tc.line, a)
			}
			continue
		}
		if err != nil || a.Kind != tc.kind {
			t.Errorf("ParseAnswer(%q) = %+v, %v", tc.line, a, err)
			continue
		}
		if tc.target != "" && a.Target != netip.MustParseAddrPort(tc.target) {
			t.Errorf("ParseAnswer(%q).Target = %s, want %s", tc.line, a.Target, tc.target)
		}
	}
}
