package netprobe

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The reflector protocol (docs/probe-protocol.md). One request line from
// the node, one connect-back from the reflector to the *source address* of
// that connection, one answer line, close. Everything is ASCII, one line
// at most MaxLine bytes including the newline.
const (
	// Magic starts every request line.
	Magic = "NETINIT-PROBE"
	// EchoMagic starts the line the node's temporary listener writes on
	// the connect-back, followed by the nonce.
	EchoMagic = "NETINIT-PROBE-ECHO"
	// Version is the only protocol version spoken.
	Version = 1
	// MaxLine bounds every line of the protocol (request, echo, answer),
	// newline included. A longer request is answered "ERR line too long".
	MaxLine = 256
	// MinPort is the lowest port a reflector connects back to. Ports
	// below 1024 are refused so that a reflector can never be used to
	// knock on a well-known service (ssh, smtp, ...) of its caller's
	// address; the node's listener always uses an ephemeral port.
	MinPort = 1024
	// nonce length bounds, in characters.
	minNonce, maxNonce = 16, 64
)

// Request is a parsed request line.
type Request struct {
	Port  uint16
	Nonce string
}

// String formats r as a request line, without the newline.
func (r Request) String() string {
	return fmt.Sprintf("%s %d %d %s", Magic, Version, r.Port, r.Nonce)
}

// Request parse errors; the server answers "ERR " + the error text.
var (
	ErrNotProbe      = errors.New("not a NETINIT-PROBE request")
	ErrVersion       = errors.New("unsupported protocol version (want 1)")
	ErrFields        = errors.New("want: NETINIT-PROBE 1 <port> <nonce>")
	ErrPort          = errors.New("bad port")
	ErrLowPort       = fmt.Errorf("port below %d refused", MinPort)
	ErrNonce         = fmt.Errorf("bad nonce (want %d-%d characters of [A-Za-z0-9_-])", minNonce, maxNonce)
	ErrNamesAddress  = errors.New("request names an address: the reflector only connects back to the source address of this connection")
	ErrLineTooLong   = errors.New("line too long")
	ErrRateLimited   = errors.New("rate limited")
	ErrBusy          = errors.New("busy")
	errControlInLine = errors.New("control character in request")
)

// ParseRequest parses one request line (without or with its trailing
// "\n" / "\r\n"). It never panics; every error is one of the Err values
// above and is safe to send back to the client.
func ParseRequest(line string) (Request, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if len(line)+1 > MaxLine {
		return Request{}, ErrLineTooLong
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return Request{}, errControlInLine
		}
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != Magic {
		return Request{}, ErrNotProbe
	}
	// A request that names an address anywhere is refused outright,
	// whatever else is wrong with it: the reflector must never be turned
	// into a port scanner for third parties (docs/probe-protocol.md).
	for _, x := range f[1:] {
		if namesAddress(x) {
			return Request{}, ErrNamesAddress
		}
	}
	if len(f) < 2 || f[1] != strconv.Itoa(Version) {
		return Request{}, ErrVersion
	}
	if len(f) != 4 {
		return Request{}, ErrFields
	}
	p, err := strconv.ParseUint(f[2], 10, 16)
	if err != nil || p == 0 || len(f[2]) > 5 {
		return Request{}, ErrPort
	}
	if p < MinPort {
		return Request{}, ErrLowPort
	}
	if !validNonce(f[3]) {
		return Request{}, ErrNonce
	}
	return Request{Port: uint16(p), Nonce: f[3]}, nil
}

// namesAddress reports whether a request field looks like an address, a
// host name or a host:port: anything with ':' '[' ']' '/', an IP, a
// dotted quad (even an invalid one) or a dotted name with letters.
func namesAddress(x string) bool {
	if strings.ContainsAny(x, ":[]/") {
		return true
	}
	if _, err := netip.ParseAddr(x); err == nil {
		return true
	}
	if !strings.Contains(x, ".") {
		return false
	}
	return strings.Count(x, ".") == 3 || strings.IndexFunc(x, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	}) >= 0
}

func validNonce(s string) bool {
	if len(s) < minNonce || len(s) > maxNonce {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NewNonce returns a fresh random nonce (32 hex characters).
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Answer is a parsed reflector answer line.
type Answer struct {
	// Kind is "OK", "FAIL" or "ERR".
	Kind string
	// Target is the address the reflector connected (or tried to
	// connect) back to: the node's address as the reflector sees it
	// (after any NAT). Zero for ERR.
	Target netip.AddrPort
	// Text is the whole line after the kind.
	Text string
}

// ParseAnswer parses a reflector's answer line.
func ParseAnswer(line string) (Answer, error) {
	line = strings.TrimRight(line, "\r\n")
	kind, rest, _ := strings.Cut(line, " ")
	a := Answer{Kind: kind, Text: rest}
	var target string
	switch kind {
	case "OK":
		// OK connected <addrport> in <ms>ms
		f := strings.Fields(rest)
		if len(f) != 4 || f[0] != "connected" || f[2] != "in" {
			return Answer{}, fmt.Errorf("malformed OK answer %q", line)
		}
		target = f[1]
	case "FAIL":
		// FAIL could not connect to <addrport> within <N>ms: <reason>
		const pre = "could not connect to "
		if !strings.HasPrefix(rest, pre) {
			return Answer{}, fmt.Errorf("malformed FAIL answer %q", line)
		}
		target, _, _ = strings.Cut(rest[len(pre):], " ")
	case "ERR":
		return a, nil
	default:
		return Answer{}, fmt.Errorf("unknown answer %q", line)
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return Answer{}, fmt.Errorf("answer %q: %w", line, err)
	}
	a.Target = ap
	return a, nil
}
