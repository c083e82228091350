package netprobe

import (
	"strings"
	"testing"
)

// FuzzProbeRequest: the reflector's request parser never panics, accepts
// only what it can format back, and never accepts a line that names an
// address or a port below MinPort.
func FuzzProbeRequest(f *testing.F) {
	for _, s := range []string{
		"NETINIT-PROBE 1 40000 0123456789abcdef0123456789abcdef\n",
		"NETINIT-PROBE 1 198.51.100.7:40000 0123456789abcdef\n",
		"NETINIT-PROBE 1 40000 0123456789abcdef [2001:db8::1]\n",
		"NETINIT-PROBE 1 22 0123456789abcdef\r\n",
		"GET / HTTP/1.0\r\n",
		"",
		"\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRequest(line)
		if err != nil {
			if r != (Request{}) {
				t.Fatalf("error %v with a non-zero request %+v", err, r)
			}
			return
		}
		if r.Port < MinPort {
			t.Fatalf("accepted port %d", r.Port)
		}
		if strings.ContainsAny(line, ":[]") {
			t.Fatalf("accepted %q, which names an address", line)
		}
		again, err := ParseRequest(r.String())
		if err != nil || again != r {
			t.Fatalf("%q parsed to %+v, which formats to %q that parses to %+v, %v", line, r, r.String(), again, err)
		}
	})
}
