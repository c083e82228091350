package hostdeps

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// makefile is what the checker needs of the Makefile: its rules with their
// recipes, the package lists each target installs, and the lint of its
// variable definitions. Texts are expanded by make itself, reading the same
// file, so that the lists are what `make` installs (with `:=`, a list
// expanded before another is defined lacks that one's entries).
type makefile struct {
	path  string
	rules []*rule
	shell []located // $(shell ...) commands, run when make reads the file
	lint  []string  // variables used by := before they are defined
}

type rule struct {
	targets, prereqs []string // expanded
	recipe           []located
	installs         []string // the expanded arguments of $(call install,...)
	line             int
}

// located is a text and where it comes from.
type located struct {
	text string
	line int
}

var (
	assignRe  = regexp.MustCompile(`^(?:(?:export|override)\s+)*([A-Za-z_][A-Za-z0-9_.]*)\s*(:::?=|::=|:=|\?=|\+=|!=|=)(.*)$`)
	refRe     = regexp.MustCompile(`\$[({]([A-Za-z_][A-Za-z0-9_.]*)[)}]`)
	installRe = regexp.MustCompile(`\$\(call install,`)
	shellRe   = regexp.MustCompile(`\$\(shell `)
)

// readMakefile parses the Makefile at path (its directory is where make
// runs) and expands every rule and list with make.
func readMakefile(path string) (*makefile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &makefile{path: path}
	type raw struct {
		targets, prereqs located
		recipe           []located
		installs         []located
	}
	var raws []*raw
	var cur *raw
	defined := map[string]int{} // variable -> line of its first definition
	type use struct {
		name, by string
		line     int
	}
	var immediate []use // references expanded at once (:=), in order
	lines := logicalLines(string(src))
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l.text, "\t") && cur != nil {
			cur.recipe = append(cur.recipe, located{strings.TrimPrefix(l.text, "\t"), l.line})
			for _, a := range callArgs(l.text, installRe) {
				cur.installs = append(cur.installs, located{a, l.line})
			}
			continue
		}
		text := stripComment(l.text)
		if strings.TrimSpace(text) == "" {
			continue
		}
		word := strings.Fields(text)[0]
		switch word {
		case "define":
			name := strings.Fields(text)[1]
			defined[name] = l.line
			for i++; i < len(lines) && strings.TrimSpace(lines[i].text) != "endef"; i++ {
			}
			cur = nil
			continue
		case "ifeq", "ifneq", "ifdef", "ifndef", "else", "endif", "include", "-include", "sinclude", "vpath", "undefine":
			return nil, fmt.Errorf("%s:%d: %s: the dependency checker does not read this directive", path, l.line, word)
		}
		for _, a := range callArgs(text, shellRe) {
			m.shell = append(m.shell, located{a, l.line})
		}
		if a := assignRe.FindStringSubmatch(text); a != nil {
			name, op, val := a[1], a[2], a[3]
			if op == ":=" || op == "::=" || op == ":::=" || op == "!=" {
				for _, r := range refRe.FindAllStringSubmatch(val, -1) {
					immediate = append(immediate, use{r[1], name, l.line})
				}
			}
			if _, ok := defined[name]; !ok {
				defined[name] = l.line
			}
			cur = nil
			continue
		}
		colon := ruleColon(text)
		if colon < 0 {
			return nil, fmt.Errorf("%s:%d: neither a rule nor an assignment: %q", path, l.line, text)
		}
		r := &raw{targets: located{text[:colon], l.line}}
		rest := strings.TrimLeft(text[colon+1:], ":")
		if semi := strings.Index(rest, ";"); semi >= 0 {
			r.recipe = append(r.recipe, located{rest[semi+1:], l.line})
			rest = rest[:semi]
		}
		if assignRe.MatchString(strings.TrimSpace(rest)) {
			rest = "" // a target-specific variable
		}
		r.prereqs = located{strings.ReplaceAll(rest, "|", " "), l.line}
		raws = append(raws, r)
		cur = r
	}
	// A list expanded at once (:=) that names a variable defined only
	// further down gets nothing from it: RELEASE_DEPS once was.
	for _, u := range immediate {
		if d, ok := defined[u.name]; ok && d > u.line {
			m.lint = append(m.lint, fmt.Sprintf("Makefile:%d: %s expands $(%s) before it is defined (line %d): with := it adds nothing",
				u.line, u.by, u.name, d))
		}
	}

	// Expand every text with make, in one run.
	var texts []string
	for _, r := range raws {
		texts = append(texts, r.targets.text, r.prereqs.text)
		for _, x := range r.recipe {
			texts = append(texts, x.text)
		}
		for _, x := range r.installs {
			texts = append(texts, x.text)
		}
	}
	out, err := expand(path, texts)
	if err != nil {
		return nil, err
	}
	next := func() string { s := out[0]; out = out[1:]; return s }
	for _, r := range raws {
		e := &rule{line: r.targets.line}
		e.targets = strings.Fields(next())
		e.prereqs = strings.Fields(next())
		for _, x := range r.recipe {
			e.recipe = append(e.recipe, located{next(), x.line})
		}
		for range r.installs {
			e.installs = append(e.installs, strings.Fields(next())...)
		}
		m.rules = append(m.rules, e)
	}
	return m, nil
}

// logicalLines joins backslash-continued lines; each keeps the number of
// its first line.
func logicalLines(src string) []located {
	var out []located
	var b strings.Builder
	start := 0
	for i, l := range strings.Split(src, "\n") {
		if b.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(l, "\\") {
			b.WriteString(strings.TrimSuffix(l, "\\"))
			b.WriteString(" ")
			continue
		}
		b.WriteString(l)
		out = append(out, located{b.String(), start})
		b.Reset()
	}
	return out
}

func stripComment(s string) string {
	if i := strings.Index(s, "#"); i >= 0 {
		return s[:i]
	}
	return s
}

// ruleColon is the index of the colon that makes text a rule, outside
// $(...) references.
func ruleColon(text string) int {
	depth := 0
	for i, c := range text {
		switch c {
		case '(', '{':
			depth++
		case ')', '}':
			depth--
		case ':':
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// callArgs are the texts inside each $(call install,...) or $(shell ...)
// (after the prefix re matches) up to the balancing parenthesis.
func callArgs(text string, re *regexp.Regexp) []string {
	var out []string
	for _, loc := range re.FindAllStringIndex(text, -1) {
		depth := 1
		for i := loc[1]; i < len(text); i++ {
			switch text[i] {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				out = append(out, text[loc[1]:i])
				break
			}
		}
	}
	return out
}

// expand has make read the Makefile and print each text as a recipe would
// see it (after the whole file is read; $$ is $).
func expand(path string, texts []string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	var mk bytes.Buffer
	fmt.Fprintf(&mk, "include %s\n", abs)
	for i, t := range texts {
		fmt.Fprintf(&mk, "define hostdeps_text_%d\n%s\nendef\n", i, t)
	}
	mk.WriteString(".PHONY: hostdeps-expand\nhostdeps-expand:\n\t@:")
	for i := range texts {
		fmt.Fprintf(&mk, "$(info hostdeps-begin)$(info $(hostdeps_text_%d))", i)
	}
	mk.WriteString("$(info hostdeps-begin)\n")
	f, err := os.CreateTemp("", "hostdeps-*.mk")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(mk.Bytes()); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cmd := exec.Command("make", "-s", "--no-print-directory", "-f", f.Name(), "hostdeps-expand")
	cmd.Dir = filepath.Dir(abs)
	// Not the make that runs this test: its jobserver and flags.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" && k != "MAKEFILES" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("make expanding %s: %w\n%s", path, err, stderr.Bytes())
	}
	var out []string
	var cur *strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if sc.Text() == "hostdeps-begin" {
			if cur != nil {
				out = append(out, strings.TrimSuffix(cur.String(), "\n"))
			}
			cur = &strings.Builder{}
			continue
		}
		if cur != nil {
			cur.WriteString(sc.Text() + "\n")
		}
	}
	if len(out) != len(texts) {
		return nil, fmt.Errorf("make expanding %s: %d texts, %d expansions", path, len(texts), len(out))
	}
	return out, nil
}

// rulesFor are the rules that build target: by name, or by a pattern.
func (m *makefile) rulesFor(target string) []*rule {
	var out []*rule
	for _, r := range m.rules {
		for _, t := range r.targets {
			if t == target || patternMatch(t, target) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func patternMatch(pattern, s string) bool {
	pre, suf, ok := strings.Cut(pattern, "%")
	return ok && len(s) > len(pre)+len(suf) && strings.HasPrefix(s, pre) && strings.HasSuffix(s, suf)
}

// Installed is what `make target` installs: the package list entries
// (command:package or /path:package) of every $(call install,...) in its
// recipe and its prerequisites' recipes.
func (m *makefile) installed(target string) map[string]string {
	got := map[string]string{}
	seen := map[*rule]bool{}
	var visit func(string)
	visit = func(t string) {
		for _, r := range m.rulesFor(t) {
			if seen[r] {
				continue
			}
			seen[r] = true
			for _, e := range r.installs {
				if c, p, ok := strings.Cut(e, ":"); ok {
					got[c] = p
				}
			}
			for _, p := range r.prereqs {
				visit(p)
			}
		}
	}
	visit(target)
	return got
}
