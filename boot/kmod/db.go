package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DB is what is known about the modules of one kernel: the files of
// /lib/modules/<release> that depmod wrote.
type DB struct {
	Dir     string
	Aliases *Aliases
	// Deps maps a module name to its file (relative to Dir unless absolute)
	// and the names of all modules it needs, direct and indirect.
	Deps map[string]Dep
	// Builtin holds the names of the drivers built into the kernel.
	Builtin map[string]bool
	// BuiltinAliases are the aliases of built-in drivers, from
	// modules.builtin.modinfo, so a device served by one is recorded as
	// such rather than as unmatched.
	BuiltinAliases *Aliases
	// Softdeps are the soft dependencies of modules.softdep, by module
	// name: modules to load before (Pre) and after (Post) it, each a
	// module name or an alias such as "crc32c".
	Softdeps map[string]Softdep
}

// Softdep is one module's soft dependencies (modprobe.d(5), "softdep").
type Softdep struct {
	Pre, Post []string
}

// Dep is one line of modules.dep.
type Dep struct {
	Path string
	Deps []string
}

// LoadDB reads modules.dep, modules.alias and, when present,
// modules.builtin, modules.builtin.modinfo and modules.softdep from dir.
func LoadDB(dir string) (*DB, error) {
	db := &DB{Dir: dir, Builtin: map[string]bool{}}
	for _, f := range []struct {
		name     string
		required bool
		parse    func([]byte) error
	}{
		{"modules.dep", true, func(b []byte) (err error) { db.Deps, err = ParseDeps(bytes.NewReader(b)); return err }},
		{"modules.alias", true, func(b []byte) (err error) { db.Aliases, err = ParseAliases(bytes.NewReader(b)); return err }},
		{"modules.builtin", false, func(b []byte) error { db.Builtin = ParseBuiltin(b); return nil }},
		{"modules.builtin.modinfo", false, func(b []byte) error { db.BuiltinAliases = ParseBuiltinModinfo(b); return nil }},
		{"modules.softdep", false, func(b []byte) (err error) { db.Softdeps, err = ParseSoftdeps(bytes.NewReader(b)); return err }},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("module database: %w", err)
		}
		if err := f.parse(b); err != nil {
			return nil, fmt.Errorf("module database %s: %w", dir, err)
		}
	}
	return db, nil
}

// ParseBuiltin reads modules.builtin: the paths of the modules compiled
// into the kernel, one a line. It returns their names.
func ParseBuiltin(b []byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Fields(string(b)) {
		out[NormalizeName(l)] = true
	}
	return out
}

// ParseSoftdeps reads modules.softdep: lines "softdep MODULE pre: A B
// post: C" (either part may be missing). A module may have several lines;
// their lists are joined.
func ParseSoftdeps(r io.Reader) (map[string]Softdep, error) {
	out := map[string]Softdep{}
	err := eachDirective(r, "modules.softdep", "softdep", "softdep <module> pre: ... post: ...", func(line int, f []string) error {
		n := NormalizeName(f[1])
		sd := out[n]
		if err := sd.add(f[2:]); err != nil {
			return fmt.Errorf("modules.softdep line %d: %w", line, err)
		}
		out[n] = sd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseSoftdep reads the value of one soft dependency, "pre: A B post: C"
// (a module's softdep= in .modinfo, the tail of a modules.softdep line).
func ParseSoftdep(v string) (Softdep, error) {
	var sd Softdep
	err := sd.add(strings.Fields(v))
	return sd, err
}

// add appends the words of a soft dependency to sd's lists.
func (sd *Softdep) add(words []string) error {
	var cur *[]string
	for _, w := range words {
		switch w {
		case "pre:":
			cur = &sd.Pre
		case "post:":
			cur = &sd.Post
		default:
			if cur == nil {
				return fmt.Errorf("%q before \"pre:\" or \"post:\"", w)
			}
			*cur = append(*cur, w)
		}
	}
	return nil
}

// eachDirective reads an index file of directives (modules.alias,
// modules.softdep): lines "<keyword> <arg> <arg>...". fn gets the fields
// of each directive (at least three) and its line number; a line of
// another shape is an error that shows the wanted form.
func eachDirective(r io.Reader, file, keyword, form string, fn func(line int, f []string) error) error {
	return eachLine(r, file, func(line int, text string) error {
		f := strings.Fields(text)
		if f[0] != keyword || len(f) < 3 {
			return fmt.Errorf("%s line %d: want %q, got %q", file, line, form, text)
		}
		return fn(line, f)
	})
}

// eachLine calls fn with each line of an index file that is neither blank
// nor a '#' comment, trimmed, and its line number.
func eachLine(r io.Reader, file string, fn func(line int, text string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if err := fn(line, t); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return nil
}

// ParseDeps reads modules.dep: lines "path/to/mod.ko: path/dep1.ko
// path/dep2.ko". depmod lists every module the module needs, direct and
// indirect, sorted so that a module comes before the ones it depends on
// (the last one must be loaded first). Coldplug does not rely on that
// order: it follows each dependency's own line (as kmod's modprobe does),
// which gives a correct order whichever way the list is sorted.
func ParseDeps(r io.Reader) (map[string]Dep, error) {
	deps := map[string]Dep{}
	err := eachLine(r, "modules.dep", func(line int, t string) error {
		p, rest, ok := strings.Cut(t, ":")
		if !ok {
			return fmt.Errorf("modules.dep line %d: no ':' in %q", line, t)
		}
		d := Dep{Path: strings.TrimSpace(p)}
		for _, f := range strings.Fields(rest) {
			d.Deps = append(d.Deps, NormalizeName(f))
		}
		deps[NormalizeName(d.Path)] = d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return deps, nil
}

// ParseBuiltinModinfo extracts the aliases of built-in drivers from
// modules.builtin.modinfo: NUL-separated "module.key=value" records.
func ParseBuiltinModinfo(b []byte) *Aliases {
	a := &Aliases{}
	for _, rec := range bytes.Split(b, []byte{0}) {
		mod, kv, ok := strings.Cut(string(rec), ".")
		if !ok {
			continue
		}
		if v, ok := strings.CutPrefix(kv, "alias="); ok {
			a.Add(v, mod)
		}
	}
	return a
}

// Resolve turns a name given by the user (a module name or an alias such
// as "char-major-10-200") into module names.
func (db *DB) Resolve(name string) []string {
	n := NormalizeName(name)
	if _, ok := db.Deps[n]; ok || db.Builtin[n] {
		return []string{n}
	}
	if m := db.Aliases.Match(name); len(m) > 0 {
		return m
	}
	return db.BuiltinAliases.Match(name)
}
