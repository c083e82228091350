package spec

import (
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces a secret in what netinit shows: the state file, the
// console, the logs.
const Redacted = "REDACTED"

// RedactURI hides the secrets a peering URI may carry: any userinfo
// (user:password@) and the value of every query parameter named like a
// secret (Yggdrasil's ?password=, RFC 3986 section 3.2.1 deprecates
// passwords in userinfo but they still appear). A URI that does not
// parse is replaced whole: it may be anything. It is the one redaction
// of peers: the state file (state.YggdrasilPeer), every log line and
// problem that names a peer (RedactURIs).
func RedactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return Redacted
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return Redacted
		}
		changed := false
		for k := range q {
			switch strings.ToLower(k) {
			case "password", "pass", "passwd", "secret", "key", "token", "psk":
				q[k], changed = []string{Redacted}, true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// uriInText is a URI inside a line of text: a scheme, "://", and what
// follows up to a space, a quote, an angle bracket or a comma (lists are
// printed comma-separated).
var uriInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>,]+`)

// RedactURIs applies RedactURI to every URI in a line of text that can
// carry a secret (one with userinfo or a query): for log lines and
// problems whose text comes from elsewhere (yggdrasil-go's log, a
// command-line token echoed in a problem). A "]" that closes a list
// printed around the URI ("[tls://a:1 tls://b:2]") is not taken as part
// of it.
func RedactURIs(s string) string {
	return uriInText.ReplaceAllStringFunc(s, func(u string) string {
		tail := ""
		for strings.HasSuffix(u, "]") && strings.Count(u, "]") > strings.Count(u, "[") {
			u, tail = u[:len(u)-1], "]"+tail
		}
		if !strings.ContainsAny(u, "@?") {
			return u + tail
		}
		return RedactURI(u) + tail
	})
}
