package netprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Verdict is the connectivity of one address family.
type Verdict string

const (
	// VerdictNone: no global-scope address of the family.
	VerdictNone Verdict = "none"
	// VerdictPrivate: only private addresses (RFC 1918, CGNAT
	// 100.64.0.0/10 for IPv4; ULA fc00::/7 for IPv6). Outbound may work
	// through NAT; the node is not reachable on them.
	VerdictPrivate Verdict = "private"
	// VerdictPublicUnverified: a public address, but nothing confirmed
	// that it works (no probes configured, or every probe failed).
	VerdictPublicUnverified Verdict = "public-unverified"
	// VerdictPublicOutbound: a public address from which outbound
	// connections succeed; inbound not proven.
	VerdictPublicOutbound Verdict = "public-outbound"
	// VerdictPublicInbound: a reflector connected back to the public
	// address and got the nonce echoed: inbound is proven.
	VerdictPublicInbound Verdict = "public-inbound"
)

// Inbound is what the reflectors said about a family.
type Inbound string

const (
	// InboundUntested: no reflector gave a verdict (none configured,
	// unreachable, rate limited, or the family has no address to test).
	InboundUntested Inbound = "untested"
	// InboundReachable: some reflector connected back (OK).
	InboundReachable Inbound = "reachable"
	// InboundUnreachable: reflectors answered, and all said FAIL.
	InboundUnreachable Inbound = "unreachable"
)

// Config says what to probe. The zero value probes nothing: the verdict
// is then address-based and says so.
type Config struct {
	// Targets are HOST:PORT for outbound TCP connects (netinit.probe.targets).
	// An IP literal is tried from its own family only; a name is tried
	// from both (A records for IPv4, AAAA for IPv6).
	Targets []string
	// Reflectors are HOST:PORT of probe servers (netinit.probe.reflectors),
	// asked from each family that has an address.
	Reflectors []string
	// DNSName, if set, is resolved through each of Resolvers (IP or
	// IP:port, default port 53); a resolver that answers is outbound
	// (UDP) evidence for its family.
	DNSName   string
	Resolvers []string
	// Timeout bounds the whole Probe (default 2 s). All probes run in
	// parallel within it.
	Timeout time.Duration
	// Internet says which addresses are public (the zero value: the
	// Internet's own rules).
	Internet Internet
}

// DefaultTimeout bounds Probe when Config.Timeout is zero: the probe runs
// during boot and must never hold it up for long.
const DefaultTimeout = 2 * time.Second

// Family is the verdict for one address family with its evidence.
type Family struct {
	Verdict Verdict `json:"verdict"`
	// Addresses are the family's global-scope addresses on the node;
	// the first public (or, failing that, first) one is the one probed.
	Addresses []string `json:"addresses"`
	Inbound   Inbound  `json:"inbound"`
	// Evidence is one line per fact that led to the verdict.
	Evidence []string `json:"evidence"`
}

// Report is the result of Probe.
type Report struct {
	IPv4 Family `json:"ipv4"`
	IPv6 Family `json:"ipv6"`
	// Hidden is true when the node must be treated as not reachable from
	// the internet: no family is public, or every public family was
	// shown unreachable by a reflector. A public family that no reflector
	// could test (none configured, none answered) keeps the node visible:
	// netinit.ygg=auto and the explorer keep their address-based
	// behaviour unless a reflector proves otherwise; auto-inbound should
	// require InboundProven instead.
	Hidden bool `json:"hidden"`
	// Probed is true when some probe (target, reflector, DNS) was tried
	// from some family.
	Probed bool      `json:"probed"`
	At     time.Time `json:"at"`
	TookMS int64     `json:"took_ms"`
}

// InboundProven reports whether some family is public-inbound.
func (r Report) InboundProven() bool {
	return r.IPv4.Verdict == VerdictPublicInbound || r.IPv6.Verdict == VerdictPublicInbound
}

// hidden is the rule behind Report.Hidden: no family is reachable.
func hidden(v4, v6 Family) bool { return !v4.reachable() && !v6.reachable() }

// reachable is the per-family rule behind Report.Hidden.
func (f Family) reachable() bool {
	switch f.Verdict {
	case VerdictPublicInbound:
		return true
	case VerdictPublicOutbound, VerdictPublicUnverified:
		return f.Inbound != InboundUnreachable
	}
	return false
}

// Probe decides the verdict per family for a node holding addrs. It never
// takes longer than cfg.Timeout (or ctx's deadline, if sooner); probes
// that have not finished by then count as failed.
func Probe(ctx context.Context, addrs []netip.Addr, cfg Config) Report {
	start := time.Now()
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	rep := Report{At: start.UTC()}
	var (
		wg     sync.WaitGroup
		probed atomic.Bool
	)
	for _, fam := range []struct {
		is4 bool
		out *Family
	}{{true, &rep.IPv4}, {false, &rep.IPv6}} {
		f, src := classify(addrs, fam.is4, cfg.Internet)
		*fam.out = f
		if !src.IsValid() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if probeFamily(ctx, src, fam.is4, cfg, fam.out) > 0 {
				probed.Store(true)
			}
		}()
	}
	wg.Wait()
	rep.Probed = probed.Load()
	rep.Hidden = hidden(rep.IPv4, rep.IPv6)
	rep.TookMS = time.Since(start).Milliseconds()
	return rep
}

// classify is the address-based verdict of one family; src is the address
// to probe from (invalid when there is none).
func classify(addrs []netip.Addr, is4 bool, n Internet) (f Family, src netip.Addr) {
	name := "IPv6"
	if is4 {
		name = "IPv4"
	}
	f = Family{Verdict: VerdictNone, Inbound: InboundUntested, Addresses: []string{}, Evidence: []string{}}
	var private netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() != is4 || !a.IsGlobalUnicast() {
			continue // loopback, link-local, multicast, unspecified
		}
		if s := a.String(); !slices.Contains(f.Addresses, s) {
			f.Addresses = append(f.Addresses, s)
		}
		switch {
		case n.Public(a) && !src.IsValid():
			src = a
		case !n.Public(a) && !private.IsValid():
			private = a
		}
	}
	switch {
	case src.IsValid():
		f.Verdict = VerdictPublicUnverified
		f.Evidence = append(f.Evidence, fmt.Sprintf("public address %s", src))
	case private.IsValid():
		f.Verdict = VerdictPrivate
		f.Evidence = append(f.Evidence, fmt.Sprintf("only private addresses (%s: %s)", private, privateKind(private)))
		src = private
	default:
		f.Evidence = append(f.Evidence, "no global-scope "+name+" address")
	}
	return f, src
}

func privateKind(a netip.Addr) string {
	switch {
	case a.Is4() && cgnat.Contains(a):
		return "CGNAT, RFC 6598"
	case a.Is4() && a.IsPrivate():
		return "RFC 1918"
	case ula.Contains(a):
		return "ULA, RFC 4193"
	case yggdrasil.Contains(a):
		return "Yggdrasil overlay"
	case siteLocal.Contains(a):
		return "site-local, RFC 3879"
	case isDocumentation(a):
		return "documentation, RFC 5737/3849/9637"
	}
	return "not public"
}

// probeFamily runs every configured probe from src in parallel, folds the
// results into f and returns how many probes ran.
func probeFamily(ctx context.Context, src netip.Addr, is4 bool, cfg Config, f *Family) int {
	network := "tcp6"
	if is4 {
		network = "tcp4"
	}
	type result struct {
		outbound bool   // reached something over this family
		answer   string // "OK", "FAIL" or "" (reflectors only)
		evidence string
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	add := func(r result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	for _, t := range cfg.Targets {
		if !targetFits(t, is4) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := connectTarget(ctx, network, src, t)
			if err != nil {
				add(result{evidence: fmt.Sprintf("outbound TCP to %s failed: %v", t, shortErr(ctx, err))})
				return
			}
			add(result{outbound: true, evidence: fmt.Sprintf("outbound TCP to %s ok in %dms", t, took.Milliseconds())})
		}()
	}
	for _, r := range cfg.Reflectors {
		if !targetFits(r, is4) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans, err := AskReflector(ctx, network, src, r)
			switch {
			case err != nil:
				// A reflector we reached but that gave no usable answer
				// still proves outbound; one we could not reach does not.
				add(result{outbound: ans.Kind == "ERR", evidence: fmt.Sprintf("reflector %s: %v", r, shortErr(ctx, err))})
			default:
				add(result{outbound: true, answer: ans.Kind, evidence: fmt.Sprintf("reflector %s: %s %s", r, ans.Kind, ans.Text)})
			}
		}()
	}
	if cfg.DNSName != "" {
		for _, rs := range cfg.Resolvers {
			ap, err := resolverAddr(rs)
			if err != nil || ap.Addr().Is4() != is4 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := resolveVia(ctx, src, ap, cfg.DNSName)
				if err != nil {
					add(result{evidence: fmt.Sprintf("DNS %s via %s failed: %v", cfg.DNSName, ap, shortErr(ctx, err))})
					return
				}
				add(result{outbound: true, evidence: fmt.Sprintf("DNS %s via %s: %s", cfg.DNSName, ap, strings.Join(got, " "))})
			}()
		}
	}
	wg.Wait()

	var outbound, ok, failed bool
	for _, r := range results {
		outbound = outbound || r.outbound
		ok = ok || r.answer == "OK"
		failed = failed || r.answer == "FAIL"
	}
	// Stable evidence order: sort the probe lines (they finish in any order).
	lines := make([]string, 0, len(results))
	for _, r := range results {
		lines = append(lines, r.evidence)
	}
	slices.Sort(lines)
	f.Evidence = append(f.Evidence, lines...)
	switch {
	case ok:
		f.Inbound = InboundReachable
	case failed:
		f.Inbound = InboundUnreachable
	}
	if len(results) == 0 {
		f.Evidence = append(f.Evidence, "no probe targets or reflectors for this family (address-based verdict)")
	}
	if f.Verdict == VerdictPrivate {
		if outbound {
			f.Evidence = append(f.Evidence, "outbound works (through NAT)")
		}
		return len(results)
	}
	switch {
	case ok:
		f.Verdict = VerdictPublicInbound
	case outbound:
		f.Verdict = VerdictPublicOutbound
	case len(results) > 0:
		f.Evidence = append(f.Evidence, "every probe failed")
	}
	return len(results)
}

// targetFits reports whether HOST:PORT t is worth trying from the family:
// IP literals only from their own family, names from both.
func targetFits(t string, is4 bool) bool {
	host, _, err := net.SplitHostPort(t)
	if err != nil {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().Is4() == is4
	}
	return true
}

func connectTarget(ctx context.Context, network string, src netip.Addr, target string) (time.Duration, error) {
	start := time.Now()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	c, err := d.DialContext(ctx, network, target)
	if err != nil {
		return 0, err
	}
	c.Close()
	return time.Since(start), nil
}

// AskReflector runs the node side of the protocol with the reflector at
// HOST:PORT refl, from address src over network ("tcp4" or "tcp6"): it
// opens a temporary listener on an ephemeral port of src that echoes the
// nonce to whoever connects, sends the request from src (so that the
// reflector's connect-back goes to src, or to the NAT in front of it), and
// returns the reflector's answer. The listener is closed before it
// returns. An "ERR" answer is returned with a non-nil error.
func AskReflector(ctx context.Context, network string, src netip.Addr, refl string) (Answer, error) {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, network, netip.AddrPortFrom(src, 0).String())
	if err != nil {
		return Answer{}, fmt.Errorf("listening on %s: %w", src, err)
	}
	nonce := NewNonce()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		echo(ctx, ln, nonce)
	}()

	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	c, err := d.DialContext(ctx, network, refl)
	if err != nil {
		return Answer{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(c, Request{Port: port, Nonce: nonce}.String()+"\n"); err != nil {
		return Answer{}, fmt.Errorf("sending request: %w", err)
	}
	line, err := readLine(c, MaxLine)
	if err != nil {
		return Answer{}, fmt.Errorf("reading answer: %w", err)
	}
	ans, err := ParseAnswer(line)
	if err != nil {
		return Answer{}, err
	}
	if ans.Kind == "ERR" {
		return ans, fmt.Errorf("refused: %s", ans.Text)
	}
	return ans, nil
}

// echo serves the temporary listener: every connection gets the nonce
// line and is closed. It returns when ln is closed; the connections are
// handled inline (each write is one small segment, bounded by a deadline).
func echo(ctx context.Context, ln net.Listener, nonce string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		dl := time.Now().Add(500 * time.Millisecond)
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		_ = c.SetDeadline(dl)
		_, _ = io.WriteString(c, EchoMagic+" "+nonce+"\n")
		c.Close()
	}
}

func resolverAddr(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolver %q: want IP or IP:port", s)
	}
	return netip.AddrPortFrom(a, 53), nil
}

// resolveVia resolves name through the resolver at ap only, from src.
func resolveVia(ctx context.Context, src netip.Addr, ap netip.AddrPort, name string) ([]string, error) {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{}
			if strings.HasPrefix(network, "udp") {
				d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
			} else {
				d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
			}
			return d.DialContext(ctx, network, ap.String())
		},
	}
	return r.LookupHost(ctx, name)
}

// shortErr says "timeout" when the probe ran out of time, else the error.
func shortErr(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "no answer within the probe timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}
