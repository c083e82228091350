// Package kernelconfig checks a kernel's .config against netinit's
// requirements fragment (kernel-config/netinit.config; the syntax is
// described in that file's header).
package kernelconfig

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Config is a parsed kernel .config: option name (with the CONFIG_
// prefix) to value ("y", "m", a number or a quoted string). Options that
// are "# CONFIG_X is not set" map to "n"; options absent from the file are
// absent from the map (Kconfig treats both as disabled).
type Config map[string]string

// Get returns the value of option name, "n" if it is not set.
func (c Config) Get(name string) string {
	if v, ok := c[name]; ok {
		return v
	}
	return "n"
}

var (
	setLine   = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.*)$`)
	unsetLine = regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
)

// ParseConfig parses a kernel .config.
func ParseConfig(r io.Reader) (Config, error) {
	c := Config{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := setLine.FindStringSubmatch(line); m != nil {
			c[m[1]] = m[2]
			continue
		}
		if m := unsetLine.FindStringSubmatch(line); m != nil {
			c[m[1]] = "n"
			continue
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			return nil, fmt.Errorf("kernel config line %d: cannot parse %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel config: %w", err)
	}
	return c, nil
}

// ReadConfig parses the kernel .config at path.
func ReadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Classes of requirements used by netinit.config.
const (
	ClassCore = "core" // hard requirements for every kernel
	ClassHW   = "hw"   // physical NIC drivers (absent from cloud flavours)
)

// Requirement is one line of the fragment.
type Requirement struct {
	Name  string // option, with CONFIG_ prefix
	Want  string // y, m, ym, n, or an exact value
	Class string
	Why   string
	Line  int
}

// Satisfied reports whether got (a value from Config.Get) meets the
// requirement.
func (r Requirement) Satisfied(got string) bool {
	switch r.Want {
	case "y", "m":
		return got == r.Want
	case "ym":
		return got == "y" || got == "m"
	case "n":
		return got == "n" || got == ""
	default:
		return got == r.Want
	}
}

var (
	reqLine   = regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=([^#\s]+|"[^"]*")\s*(?:#\s*(.*))?$`)
	classLine = regexp.MustCompile(`^#\s*@class\s+([A-Za-z0-9_-]+)\s*$`)
)

// ParseFragment parses a requirements fragment.
func ParseFragment(r io.Reader) ([]Requirement, error) {
	var reqs []Requirement
	class := ClassCore
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := classLine.FindStringSubmatch(line); m != nil {
			class = m[1]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := reqLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("fragment line %d: want CONFIG_NAME=WANT [# why], got %q", n, line)
		}
		if prev, dup := seen[m[1]]; dup {
			return nil, fmt.Errorf("fragment line %d: %s already required on line %d", n, m[1], prev)
		}
		seen[m[1]] = n
		reqs = append(reqs, Requirement{Name: m[1], Want: m[2], Class: class, Why: strings.TrimSpace(m[3]), Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read fragment: %w", err)
	}
	return reqs, nil
}

// ReadFragment parses the fragment at path.
func ReadFragment(path string) ([]Requirement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	reqs, err := ParseFragment(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reqs, nil
}

// Unmet is a requirement the config does not meet.
type Unmet struct {
	Requirement
	Got string // the config's value, "n" if not set
}

func (u Unmet) String() string {
	s := fmt.Sprintf("%s: want %s, got %s [%s]", u.Name, wantText(u.Want), u.Got, u.Class)
	if u.Why != "" {
		s += ": " + u.Why
	}
	return s
}

func wantText(w string) string {
	switch w {
	case "ym":
		return "y or m"
	case "n":
		return "not set"
	}
	return w
}

// Check returns every requirement cfg does not meet, in fragment order.
func Check(cfg Config, reqs []Requirement) []Unmet {
	var out []Unmet
	for _, r := range reqs {
		got := cfg.Get(r.Name)
		if !r.Satisfied(got) {
			out = append(out, Unmet{Requirement: r, Got: got})
		}
	}
	return out
}

// Classes returns the sorted distinct classes of reqs.
func Classes(reqs []Requirement) []string {
	m := map[string]bool{}
	for _, r := range reqs {
		m[r.Class] = true
	}
	var out []string
	for c := range m {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
