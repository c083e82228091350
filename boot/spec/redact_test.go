package spec

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRedactURI: redaction is idempotent (the state round-trips) and no
// password value survives it.
func FuzzRedactURI(f *testing.F) {
	for _, s := range []string{"tls://h:1?password=x", "tcp://u:p@h:1", "tcp://h:1?a=1&b=2", "quic://[2001:db8::1]:1?PassWord=y#frag", "tcp://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := RedactURI(s)
		if RedactURI(r) != r {
			t.Fatalf("not idempotent: %q → %q → %q", s, r, RedactURI(r))
		}
		if u, err := url.Parse(r); err == nil {
			if p := u.Query().Get("password"); p != "" && p != Redacted {
				t.Fatalf("%q → %q keeps password %q", s, r, p)
			}
			if pw, ok := u.User.Password(); ok {
				t.Fatalf("%q → %q keeps a userinfo password %q", s, r, pw)
			}
		}
	})
}

// TestRedactURIs: every URI with a secret in a line of text is redacted
// as RedactURI does, whatever surrounds it (quotes, a printed list, a
// comma-separated token), and the rest of the line is left as it was.
func TestRedactURIs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`not peering with ["tls://h.example:443?password=hunter2"]: inside`, `not peering with ["tls://h.example:443?password=REDACTED"]: inside`},
		{`listening on [tls://[::]:9944?password=x tcp://[::]:9943]`, `listening on [tls://[::]:9944?password=REDACTED tcp://[::]:9943]`},
		{`netinit.ygg.peers="tcp://a:1,tls://u:pw@b:2": element 2 "tls://u:pw@b:2": bad`, `netinit.ygg.peers="tcp://a:1,tls://REDACTED@b:2": element 2 "tls://REDACTED@b:2": bad`},
		{`Link "tls://h:1?key=k&maxbackoff=3s" reached inconsistent error state`, `Link "tls://h:1?key=REDACTED&maxbackoff=3s" reached inconsistent error state`},
		{`Connected TLS: 200:1::1, source [2001:db8::1]:9944`, `Connected TLS: 200:1::1, source [2001:db8::1]:9944`},
		{`tcp://%zz?password=x`, Redacted},
	} {
		if got := RedactURIs(c.in); got != c.want {
			t.Errorf("RedactURIs(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
		if strings.Contains(RedactURIs(c.in), "hunter2") || strings.Contains(RedactURIs(c.in), "pw@") {
			t.Errorf("%q keeps a secret", c.in)
		}
	}
}
