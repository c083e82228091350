package netprobe

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestProbeAddressBased: without probe targets the verdict is address
// based, says so, and returns at once.
func TestProbeAddressBased(t *testing.T) {
	for _, tc := range []struct {
		name      string
		addrs     []netip.Addr
		v4, v6    Verdict
		hidden    bool
		evidence6 string
	}{
		{"nothing", addrs("127.0.0.1", "::1", "fe80::1"), VerdictNone, VerdictNone, true, "no global-scope IPv6 address"},
		{"private both", addrs("192.168.1.2", "fd00::2", "fe80::2"), VerdictPrivate, VerdictPrivate, true, "only private addresses (fd00::2: ULA, RFC 4193)"},
		{"cgnat", addrs("100.64.3.4"), VerdictPrivate, VerdictNone, true, "no global-scope IPv6 address"},
		{"public v6", addrs("10.0.0.2", "fd00::2", "2001:db8:1::2"), VerdictPrivate, VerdictPublicUnverified, false, "no probe targets or reflectors for this family (address-based verdict)"},
		{"public v4 only", addrs("198.51.100.2"), VerdictPublicUnverified, VerdictNone, false, "no global-scope IPv6 address"},
		{"yggdrasil is not public", addrs("200:1234::1"), VerdictNone, VerdictPrivate, true, "only private addresses (200:1234::1: Yggdrasil overlay)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := Probe(context.Background(), tc.addrs, Config{Internet: labInternet})
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("took %v without any probe configured", took)
			}
			if r.IPv4.Verdict != tc.v4 || r.IPv6.Verdict != tc.v6 || r.Hidden != tc.hidden || r.Probed {
				t.Fatalf("got v4 %s v6 %s hidden %v probed %v; want %s %s %v false\n%+v", r.IPv4.Verdict, r.IPv6.Verdict, r.Hidden, r.Probed, tc.v4, tc.v6, tc.hidden, r)
			}
			if !slices.Contains(r.IPv6.Evidence, tc.evidence6) {
				t.Errorf("IPv6 evidence %q lacks %q", r.IPv6.Evidence, tc.evidence6)
			}
			if r.IPv4.Inbound != InboundUntested || r.IPv6.Inbound != InboundUntested {
				t.Errorf("inbound: %s %s, want untested", r.IPv4.Inbound, r.IPv6.Inbound)
			}
		})
	}
}

// TestProbeBounded: probes that fail leave the verdict address-based and
// say so. The node address is configured nowhere, so every probe fails at
// bind time; real paths are in lab_linux_test.go.
func TestProbeBounded(t *testing.T) {
	start := time.Now()
	r := Probe(context.Background(), addrs("2001:db8:77::1"), Config{Internet: labInternet,
		Targets:    []string{"[2001:db8:ff::2]:80", "192.0.2.1:80"},
		Reflectors: []string{"[2001:db8:ff::2]:7007"},
		Timeout:    300 * time.Millisecond,
	})
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Probe took %v with a 300ms timeout", took)
	}
	if r.IPv6.Verdict != VerdictPublicUnverified || !r.Probed || r.Hidden {
		t.Fatalf("got %+v", r)
	}
	if !strings.Contains(strings.Join(r.IPv6.Evidence, "\n"), "every probe failed") {
		t.Errorf("evidence %q does not say every probe failed", r.IPv6.Evidence)
	}
}

func TestHiddenRule(t *testing.T) {
	fam := func(v Verdict, in Inbound) Family { return Family{Verdict: v, Inbound: in} }
	for _, tc := range []struct {
		name   string
		v4, v6 Family
		hidden bool
	}{
		{"inbound v6", fam(VerdictPrivate, InboundUnreachable), fam(VerdictPublicInbound, InboundReachable), false},
		{"firewalled v6", fam(VerdictPrivate, InboundUnreachable), fam(VerdictPublicOutbound, InboundUnreachable), true},
		{"outbound, no reflector answered", fam(VerdictNone, InboundUntested), fam(VerdictPublicOutbound, InboundUntested), false},
		{"unverified (no probes)", fam(VerdictNone, InboundUntested), fam(VerdictPublicUnverified, InboundUntested), false},
		{"firewalled v6, public v4 untested", fam(VerdictPublicOutbound, InboundUntested), fam(VerdictPublicOutbound, InboundUnreachable), false},
		{"private only", fam(VerdictPrivate, InboundUntested), fam(VerdictPrivate, InboundUntested), true},
		{"none", fam(VerdictNone, InboundUntested), fam(VerdictNone, InboundUntested), true},
	} {
		if got := hidden(tc.v4, tc.v6); got != tc.hidden {
			t.Errorf("%s: hidden %v, want %v", tc.name, got, tc.hidden)
		}
	}
}
