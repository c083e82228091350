// Package hostdeps checks that a fresh Debian 12 machine has, after `make`
// installed the Makefile's package lists, every program and host file the
// repository uses: the Makefile's recipes and `$(shell ...)`, the scripts
// (scripts/, initramfs/*.sh, .ci/run) and all Go code (tests, labs, host
// tools). Each use must be an entry of a list the make target that runs it
// installs (command:package or /path:package), or be part of debootstrap's
// minbase variant of bookworm, or one of the README's prerequisites (base.go).
//
// A call whose program is not a constant has to be named in the dynamic
// table (base.go), which says what it runs; a table entry that no longer
// matches a call fails the check too, so the table stays true.
package hostdeps

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Use is one program or host file the repository needs.
type Use struct {
	Name     string // a program ("mkfs.fat", "/bin/sh") or a file ("/usr/share/OVMF/OVMF_CODE_4M.fd")
	File     bool   // a file the code names, not a program it runs
	At       string // file:line
	Ctx      string // the make target that runs it ("" when none installs anything first)
	Optional bool   // run only where it is installed (`command -v X && X`)
}

// Dynamic is a call whose program is not a constant.
type Dynamic struct {
	At     string // file:line
	Func   string // the enclosing Go function (full name); "" in shell
	Expr   string // the program's expression
	Callee string // the module function whose result it is, if it is one
	Ctx    string
}

// Report is what Check found wrong.
type Report struct {
	Uncovered []Use     // programs and files no list, base or prerequisite provides
	Dynamic   []Dynamic // calls of programs not named (and not in the dynamic table)
	Stale     []string  // table entries that match no call or literal
	Lint      []string  // Makefile definitions that lose entries
	Uses      []Use     // everything found (for the curious: go test -v)
}

// OK reports whether nothing is wrong.
func (r *Report) OK() bool {
	return len(r.Uncovered)+len(r.Dynamic)+len(r.Stale)+len(r.Lint) == 0
}

func (r *Report) String() string {
	var b strings.Builder
	for _, l := range r.Lint {
		fmt.Fprintf(&b, "%s\n", l)
	}
	byName := map[string][]Use{}
	var names []string
	for _, u := range r.Uncovered {
		if byName[u.Name] == nil {
			names = append(names, u.Name)
		}
		byName[u.Name] = append(byName[u.Name], u)
	}
	sort.Strings(names)
	for _, n := range names {
		us := byName[n]
		what := "program"
		if us[0].File {
			what = "file"
		}
		var at []string
		for i, u := range us {
			if i == 3 {
				at = append(at, fmt.Sprintf("and %d more", len(us)-3))
				break
			}
			at = append(at, fmt.Sprintf("%s (make %s)", u.At, or(u.Ctx, "<none>")))
		}
		fmt.Fprintf(&b, "uncovered %s %s: no package list installs it for %s\n", what, n, strings.Join(at, ", "))
	}
	for _, d := range r.Dynamic {
		fmt.Fprintf(&b, "%s: runs %s, which is not a constant: name the program, or list the call in hostdeps' dynamic table\n", d.At, d.Expr)
	}
	for _, s := range r.Stale {
		fmt.Fprintf(&b, "stale: %s\n", s)
	}
	return b.String()
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hostPath reports whether s is a path to a file of an installed package:
// one under /usr, /lib, /lib64, /sbin or /bin, with nothing else in the
// string.
func hostPath(s string) bool { return hostPathRe.MatchString(s) }

// specialTarget is make's .PHONY and its kind.
var specialTarget = regexp.MustCompile(`^\.[A-Z_]+$`)

var hostPathRe = regexp.MustCompile(`^/(usr|lib|lib64|sbin|bin)/[A-Za-z0-9._+@-]+(/[A-Za-z0-9._+@-]+)*$`)

// Scripts are the repository's shell scripts, relative to its root.
func scripts(root string) ([]string, error) {
	var out []string
	for _, g := range []string{"scripts/*.sh", "initramfs/*.sh", ".ci/run"} {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			return nil, err
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	return out, nil
}

// Check checks the repository at root against its Makefile.
func Check(root string) (*Report, error) {
	g, err := ScanGo(root)
	if err != nil {
		return nil, err
	}
	return g.Check(filepath.Join(root, "Makefile"))
}

// GoUses are the programs and files the module's Go code uses: the part
// of the check that does not depend on the Makefile.
type GoUses struct {
	root    string
	uses    []Use
	dynamic []Dynamic
}

// ScanGo reads the Go code of the module at root.
func ScanGo(root string) (*GoUses, error) {
	g, err := loadGo(root)
	if err != nil {
		return nil, err
	}
	g.scan()
	return &GoUses{root: root, uses: g.uses, dynamic: g.dynamic}, nil
}

// Check checks the repository against the Makefile at makefile (its own,
// or an altered copy).
func (g *GoUses) Check(makefile string) (*Report, error) {
	m, err := readMakefile(makefile)
	if err != nil {
		return nil, err
	}
	uses, dyn, err := shellUses(m, g.root)
	if err != nil {
		return nil, err
	}
	r := &Report{Lint: m.lint}
	// What runs in a guest uses the image's programs and files.
	inGuest := map[int]bool{}
	for _, u := range g.uses {
		if i := guestEntry(u.At); i >= 0 {
			inGuest[i] = true
			continue
		}
		uses = append(uses, u)
	}
	for _, d := range g.dynamic {
		if i := guestEntry(d.At); i >= 0 {
			inGuest[i] = true
			continue
		}
		dyn = append(dyn, d)
	}
	for i, e := range guest {
		if !inGuest[i] {
			r.Stale = append(r.Stale, fmt.Sprintf("guest entry %s uses nothing", e.Where))
		}
	}
	uses = append(uses, implicit...)
	uses = append(uses, r.named(dyn)...)
	r.cover(m, uses)
	return r, nil
}

// shellUses are the uses of the recipes, make's own $(shell ...), the
// scripts a recipe runs (for its target) and the other scripts (run by
// hand or by CI: nothing installed first).
func shellUses(m *makefile, root string) ([]Use, []Dynamic, error) {
	var uses []Use
	var dyn []Dynamic
	type job struct{ path, ctx string }
	var queue []job
	scan := func(src, name string, at func(uint) string, ctx string) error {
		s, err := scanShell(src, name, at, ctx)
		if err != nil {
			return err
		}
		uses = append(uses, s.uses...)
		dyn = append(dyn, s.dynamic...)
		for _, sr := range s.scripts {
			queue = append(queue, job{sr.path, ctx})
		}
		return nil
	}
	line := func(l int) func(uint) string {
		return func(uint) string { return fmt.Sprintf("Makefile:%d", l) }
	}
	for _, x := range m.shell {
		if err := scan(x.text, "Makefile", line(x.line), ""); err != nil {
			return nil, nil, err
		}
	}
	for _, rl := range m.rules {
		if len(rl.targets) == 0 || specialTarget.MatchString(rl.targets[0]) {
			continue
		}
		for _, x := range rl.recipe {
			if err := scan(strings.TrimLeft(x.text, "@-+ \t"), "Makefile", line(x.line), rl.targets[0]); err != nil {
				return nil, nil, err
			}
		}
	}
	all, err := scripts(root)
	if err != nil {
		return nil, nil, err
	}
	reached := map[string]bool{}
	for _, j := range queue {
		reached[j.path] = true
	}
	for _, p := range all {
		if !reached[p] {
			queue = append(queue, job{p, ""})
		}
	}
	done := map[job]bool{}
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		if done[j] {
			continue
		}
		done[j] = true
		src, err := os.ReadFile(filepath.Join(root, j.path))
		if err != nil {
			return nil, nil, fmt.Errorf("a recipe runs %s: %w", j.path, err)
		}
		at := func(l uint) string { return fmt.Sprintf("%s:%d", j.path, l) }
		if err := scan(string(src), j.path, at, j.ctx); err != nil {
			return nil, nil, err
		}
	}
	return uses, dyn, nil
}

// named are the uses the dynamic table gives the calls whose program is
// not a constant; the calls it does not know, and its entries that match
// no call, go into the report.
func (r *Report) named(dyn []Dynamic) []Use {
	var uses []Use
	matched := map[int]bool{}
	seen := map[Dynamic]bool{}
	for _, d := range dyn {
		k := Dynamic{At: d.At, Expr: d.Expr, Callee: d.Callee}
		if seen[k] {
			continue
		}
		seen[k] = true
		i := dynamicEntry(d)
		if i < 0 {
			r.Dynamic = append(r.Dynamic, d)
			continue
		}
		matched[i] = true
		for _, p := range dynamicCalls[i].Runs {
			uses = append(uses, Use{Name: p, At: d.At, Ctx: d.Ctx})
		}
	}
	for i, e := range dynamicCalls {
		if !matched[i] {
			r.Stale = append(r.Stale, fmt.Sprintf("dynamic table entry %s %q matches no call", e.Where, e.Expr))
		}
	}
	return uses
}

// cover puts each use that no list of its target, the base system or a
// prerequisite provides into the report.
func (r *Report) cover(m *makefile, uses []Use) {
	lists := map[string]map[string]string{"": {}}
	usedNotPackaged := map[int]bool{}
	seen := map[Use]bool{}
	for _, u := range uses {
		if seen[u] {
			continue
		}
		seen[u] = true
		r.Uses = append(r.Uses, u)
		if i := notPackagedEntry(u); i >= 0 {
			usedNotPackaged[i] = true
			continue
		}
		l, ok := lists[u.Ctx]
		if !ok {
			l = m.installed(u.Ctx)
			lists[u.Ctx] = l
		}
		if !u.Optional && !covered(u.Name, l) {
			r.Uncovered = append(r.Uncovered, u)
		}
	}
	for i, e := range notPackaged {
		if !usedNotPackaged[i] {
			r.Stale = append(r.Stale, fmt.Sprintf("not-packaged entry %s %q matches no use", e.Where, e.Name))
		}
	}
}

// covered reports whether name is installed by an entry of list, or is
// part of the base system or a prerequisite.
func covered(name string, list map[string]string) bool {
	if _, ok := list[name]; ok {
		return true
	}
	if !strings.HasPrefix(name, "/") {
		// An entry may name a program by its path where the shell has a
		// builtin of the same name (/usr/bin/kill: `command -v kill` is
		// always true).
		for _, dir := range []string{"/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"} {
			if _, ok := list[dir+name]; ok {
				return true
			}
		}
		return baseCommands[name] != "" || prerequisites[name] != ""
	}
	if name == goRoot || strings.HasPrefix(name, goRoot+"/") {
		return true
	}
	if baseFiles[name] != "" {
		return true
	}
	// A program named by its path: Debian 12 merged /bin into /usr/bin
	// and /sbin into /usr/sbin, where packages put their programs.
	switch path.Dir(name) {
	case "/bin", "/sbin", "/usr/bin", "/usr/sbin":
		c := path.Base(name)
		_, ok := list[c]
		return ok || baseCommands[c] != "" || prerequisites[c] != ""
	}
	return false
}
