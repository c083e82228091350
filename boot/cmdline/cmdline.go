package cmdline

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"

	"github.com/threefoldtech/netinit/boot/runmode"
	"github.com/threefoldtech/netinit/boot/spec"
)

// DefaultConfigPath is the config file in the image.
const DefaultConfigPath = "/etc/netinit/netinit.conf"

// Problem is a token that was not applied, or a source that could not be
// read.
type Problem struct {
	// Source is "cmdline" or "FILE:LINE" ("FILE" alone for read errors).
	Source string
	// Token is the offending token exactly as it occurs in the input.
	Token string
	Err   error

	// key and val are the token as the parser split it, for Error.
	key, val string
	hasVal   bool
}

func (p Problem) Error() string {
	src := p.Source
	if src == "" {
		src = "cmdline"
	}
	if p.Err == nil {
		p.Err = errors.New("problem")
	}
	if p.Token == "" {
		return src + ": " + p.Err.Error()
	}
	if p.key == "" {
		p.key, p.val, p.hasVal = splitKV(p.Token)
	}
	// A peer URI's secrets (netinit.ygg.peers=tls://h:p?password=...)
	// are redacted as in the state file: problems go to the console and
	// into the world-readable state.
	return spec.RedactURIs(src + ": " + displayKV(p.key, p.val, p.hasVal) + ": " + p.Err.Error())
}

func (p Problem) Unwrap() error { return p.Err }

// displayKV renders a token as key="value" so that whitespace and control
// characters cannot garble a console line or a state file.
func displayKV(key, val string, hasVal bool) string {
	if needsQuote(key) {
		key = strconv.Quote(key)
	}
	if !hasVal {
		return key
	}
	return key + "=" + strconv.Quote(val)
}

func needsQuote(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '"' || r >= 0x7f {
			return true
		}
	}
	return false
}

// Parse applies a kernel command line on top of spec.Defaults.
func Parse(line string) (*spec.Spec, []Problem) {
	return Merge(spec.Defaults(), line)
}

// Merge returns a copy of base with the command line applied on top of it
// (base is not modified). A nil base means spec.Defaults.
func Merge(base *spec.Spec, line string) (*spec.Spec, []Problem) {
	s := base.Clone()
	a := newApplier(s, false)
	for _, t := range lexCmdline(line) {
		a.token("cmdline", t)
	}
	finish(s)
	return s, a.problems
}

// ParseConfig applies a config file on top of spec.Defaults. name is used in the
// problems ("netinit.conf:7: ...").
func ParseConfig(r io.Reader, name string) (*spec.Spec, []Problem) {
	s := spec.Defaults()
	probs := applyConfig(s, r, name)
	return s, probs
}

// MergeConfig returns a copy of base with a config file applied on top.
func MergeConfig(base *spec.Spec, r io.Reader, name string) (*spec.Spec, []Problem) {
	s := base.Clone()
	probs := applyConfig(s, r, name)
	return s, probs
}

// Load reads the config file at path (none when path is ""), then applies
// the command line on top. A missing file is a problem unless path is
// DefaultConfigPath, which images need not ship.
func Load(path, line string) (*spec.Spec, []Problem) {
	s := spec.Defaults()
	var probs []Problem
	if path != "" {
		f, err := os.Open(path)
		switch {
		case err == nil:
			var p []Problem
			s, p = MergeConfig(s, f, path)
			probs = append(probs, p...)
			f.Close()
		case errors.Is(err, fs.ErrNotExist) && path == DefaultConfigPath:
		default:
			probs = append(probs, Problem{Source: path, Err: fmt.Errorf("reading config: %w", err)})
		}
	}
	s, p := Merge(s, line)
	return s, append(probs, p...)
}

// give records that a source gave key (canonical name).
func give(s *spec.Spec, key string) {
	if i, found := slices.BinarySearch(s.Given, key); !found {
		s.Given = slices.Insert(s.Given, i, key)
	}
}

// finish derives the fields that depend on several keys. It runs after
// every source so that Merge on a finished Spec stays correct.
func finish(s *spec.Spec) {
	if !s.IsSet("netinit.ra_timeout") {
		s.RATimeout = spec.DefaultRATimeout
		if ipv4Only(s.IP) {
			// ip=dhcp asks for IPv4 only: waiting for an RA would only
			// delay the boot.
			s.RATimeout = 0
		}
	}
	// runmode= selects the grid's defaults for what no source set; the
	// NTP pool and the election's targets are prod's without it. Applied
	// here once: nothing downstream falls back on a default of its own.
	mode := s.RunMode
	if mode == "" {
		mode = runmode.Prod
	}
	d := runmode.For(mode)
	if s.RunMode != "" {
		if !s.IsSet("netinit.ygg.peers") {
			s.YggPeers = d.YggPeers
		}
		if !s.IsSet("netinit.probe.targets") {
			s.ProbeTargets = d.ProbeTargets
		}
	}
	s.NTPPool = d.NTP
	s.UplinkTargets = s.ProbeTargets
	if len(s.UplinkTargets) == 0 {
		s.UplinkTargets = runmode.For(runmode.Prod).ProbeTargets
	}
}

// LoadBoot is Load for a boot (PID 1 and its daemon): a 0-OS command
// line (runmode= given) also gets 0-OS's management bridge
// (spec.DefaultBridge) unless netinit.bridge= says otherwise, and LACP
// bonding (netinit.bond=auto) unless netinit.bond=off. `netinit up`
// (Load) builds one only when netinit.bridge= asks.
func LoadBoot(path, line string) (*spec.Spec, []Problem) {
	s, probs := Load(path, line)
	if s.RunMode != "" && !s.IsSet("netinit.bridge") {
		s.Bridge = spec.DefaultBridge
	}
	// A farm node's two ports to an LACP switch get no lease until they
	// answer LACP: at a 0-OS boot netinit listens for it (the window is
	// only opened when 2+ NICs have carrier, boot/engine bond.go).
	if s.RunMode != "" && s.LACP == spec.LACPDefault {
		s.LACP = spec.LACPAuto
	}
	return s, probs
}

// ipv4Only: there is some ip= and none of them asks for IPv6
// autoconfiguration.
func ipv4Only(ips []spec.IPConfig) bool {
	if len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if ip.WantsRA() || ip.WantsDHCP6() {
			return false
		}
	}
	return true
}
