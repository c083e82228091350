// Package kmod reads what depmod writes into /lib/modules/<release>
// (modules.dep, modules.alias, modules.softdep, modules.builtin,
// modules.builtin.modinfo) and matches device IDs against alias patterns
// the way kmod does. It is used both at run time (boot/coldplug loads the
// drivers for the devices present) and at build time (initramfs picks the
// modules for the image and writes those files), so that the image is
// built with the same rules it is booted with.
package kmod

import (
	"io"
	"sort"
	"strings"
)

// Aliases is a parsed modules.alias: the device-ID patterns each module
// declares with MODULE_DEVICE_TABLE (and MODULE_ALIAS).
//
// kmod matches a device's modalias against these patterns with
// fnmatch(3) and flags 0, so '*' and '?' also match '/', bracket
// expressions are real character classes (real lines use them, e.g.
// "usb:v13FDp3940d0[0-2]*dc*...") and a backslash escapes. Match does the
// same.
type Aliases struct {
	// byPrefix holds patterns whose bus prefix (the text before the first
	// ':') has no wildcard; a modalias can only match those of its own
	// prefix. This keeps a match over the ~26000 aliases of a distro kernel
	// cheap.
	byPrefix map[string][]alias
	// other holds the patterns with a wildcard in the prefix (e.g.
	// "acpi*:LNRO0005:*") or without ':' at all.
	other []alias
	n     int
}

type alias struct {
	pattern string
	module  string
}

// ParseAliases reads a modules.alias file: lines "alias <pattern> <module>";
// '#' comments and blank lines are ignored. Module names are normalised
// ('-' becomes '_').
func ParseAliases(r io.Reader) (*Aliases, error) {
	a := &Aliases{byPrefix: make(map[string][]alias)}
	err := eachDirective(r, "modules.alias", "alias", "alias <pattern> <module>", func(_ int, f []string) error {
		a.Add(f[1], f[2])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Add records that pattern is served by module.
func (a *Aliases) Add(pattern, module string) {
	if a.byPrefix == nil {
		a.byPrefix = make(map[string][]alias)
	}
	al := alias{pattern: pattern, module: NormalizeName(module)}
	a.n++
	if i := strings.IndexByte(pattern, ':'); i > 0 && !strings.ContainsAny(pattern[:i], `*?[\`) {
		a.byPrefix[pattern[:i]] = append(a.byPrefix[pattern[:i]], al)
		return
	}
	a.other = append(a.other, al)
}

// Len is the number of aliases.
func (a *Aliases) Len() int {
	if a == nil {
		return 0
	}
	return a.n
}

// Match returns the modules whose alias patterns match modalias, sorted and
// without duplicates.
func (a *Aliases) Match(modalias string) []string {
	if a == nil {
		return nil
	}
	seen := map[string]bool{}
	try := func(list []alias) {
		for _, al := range list {
			if !seen[al.module] && Match(al.pattern, modalias) {
				seen[al.module] = true
			}
		}
	}
	if i := strings.IndexByte(modalias, ':'); i > 0 {
		try(a.byPrefix[modalias[:i]])
	}
	try(a.other)
	if len(seen) == 0 {
		return nil
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// NormalizeName turns a module name or file name into the name the kernel
// uses: surrounding space, the ".ko[.xz|.zst|.gz]" suffix and directories
// are dropped and dashes become underscores (kmod's modname_normalize).
func NormalizeName(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.Index(s, ".ko"); i > 0 && (len(s) == i+3 || s[i+3] == '.') {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// Match reports whether name matches the alias pattern as kmod matches it
// (libkmod's fnmatch(3) with flags 0): '*' matches any string, '/'
// included, '?' any one byte, '/' included, "[...]" a class with ranges
// and '!' or '^' negation, and '\' quotes the next byte. A malformed
// class ("[" without "]") matches a literal '['. Go's path.Match differs:
// its '*' and '?' stop at '/', '!' in a class is a literal, and a
// malformed pattern matches nothing.
func Match(pattern, name string) bool {
	// Iterative matching with backtracking to the last '*' only: linear
	// enough for device IDs and never exponential.
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for nx < len(name) || px < len(pattern) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			case '[':
				if nx < len(name) {
					if ok, width := matchClass(pattern[px:], name[nx]); width > 0 {
						if ok {
							px += width
							nx++
							continue
						}
						break
					}
					// Not a valid class: '[' is literal.
					if name[nx] == '[' {
						px++
						nx++
						continue
					}
				}
			case '\\':
				if px+1 < len(pattern) {
					if nx < len(name) && name[nx] == pattern[px+1] {
						px += 2
						nx++
						continue
					}
					break
				}
				fallthrough // trailing backslash is literal
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if starPx >= 0 && starNx < len(name) {
			starNx++
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}

// matchClass matches byte b against the class at the start of p (p[0] ==
// '['). width is the length of the class in p, 0 when it is not closed.
func matchClass(p string, b byte) (ok bool, width int) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) {
		c := p[i]
		if c == ']' && !first {
			return ok != negate, i + 1
		}
		first = false
		if c == '\\' && i+1 < len(p) {
			i++
			c = p[i]
		}
		lo, hi := c, c
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			if hi == '\\' && i+3 < len(p) {
				hi = p[i+3]
				i++
			}
			i += 2
		}
		if lo <= b && b <= hi {
			ok = true
		}
		i++
	}
	return false, 0
}
