package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// config is a zinit service file (zinit v0.2.11 src/zinit/config.rs:38-55;
// serde(default): every key may be absent, unknown keys are ignored).
// signal and shutdown_timeout only matter for stopping, which this runner
// never does.
type config struct {
	Exec    string
	Test    string
	Oneshot bool
	After   []string
	Log     string // ring (default), stdout, none
	Env     map[string]string
	Dir     string
}

// loadService reads the service file at path; the service's name is the
// file's stem (config.rs:70-86), and exec is required (config.rs:58-68).
func loadService(path string) (string, config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", config{}, err
	}
	c, err := parseService(string(b))
	if err != nil {
		return "", config{}, fmt.Errorf("%s: %w", path, err)
	}
	if c.Exec == "" {
		return "", config{}, fmt.Errorf("%s: missing exec directive", path)
	}
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), c, nil
}

// loadDir reads every regular *.yaml file of dir; a file that does not
// load is reported and skipped (config.rs:92-119).
func loadDir(dir string, logf func(string, ...any)) (map[string]config, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]config{}
	for _, e := range ents {
		if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".yaml" {
			continue
		}
		name, c, err := loadService(filepath.Join(dir, e.Name()))
		if err != nil {
			logf("failed to load config file %s: %v", e.Name(), err)
			continue
		}
		out[name] = c
	}
	return out, nil
}

// parseService reads the YAML subset zinit's service files use: top-level
// "key: scalar" (plain, 'single' or "double" quoted, a trailing # comment),
// "key: |" or "key: >" block scalars, and a key with an indented block of
// "- item" lines (a list) or "k: v" lines (env). Anything else is an error,
// so that a file outside the subset is noticed rather than misread.
func parseService(text string) (config, error) {
	c := config{Log: "ring"}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			return c, fmt.Errorf("line %d: indented line outside a block: %q", i+1, l)
		}
		key, raw, ok := strings.Cut(l, ":")
		if !ok {
			return c, fmt.Errorf("line %d: no key: %q", i+1, l)
		}
		raw = strings.TrimSpace(raw)
		// The lines of this key's block: more indented ones after it.
		var block []string
		for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			block = append(block, lines[i])
		}
		var (
			scalar string
			list   []string
			m      map[string]string
			err    error
		)
		switch {
		case raw == "|" || raw == ">":
			scalar = blockScalar(block, raw == ">")
		case raw == "":
			list, m, err = nested(block)
		case nonBlank(block):
			err = fmt.Errorf("a scalar with an indented block after it")
		default:
			scalar, err = yamlScalar(raw)
		}
		if err != nil {
			return c, fmt.Errorf("line %d (%s): %w", i+1, key, err)
		}
		switch key {
		case "exec":
			c.Exec = scalar
		case "test":
			c.Test = scalar
		case "dir":
			c.Dir = scalar
		case "log":
			if scalar != "ring" && scalar != "stdout" && scalar != "none" {
				return c, fmt.Errorf("log: %q (want ring, stdout or none)", scalar)
			}
			c.Log = scalar
		case "oneshot":
			if scalar != "true" && scalar != "false" {
				return c, fmt.Errorf("oneshot: %q is not a bool", scalar)
			}
			c.Oneshot = scalar == "true"
		case "after":
			if scalar != "" || m != nil {
				return c, fmt.Errorf("after: want a list")
			}
			c.After = list
		case "env":
			if scalar != "" || list != nil {
				return c, fmt.Errorf("env: want a map")
			}
			c.Env = m
		}
	}
	return c, nil
}

func nonBlank(ls []string) bool {
	for _, l := range ls {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// nested reads an indented block: "- item" lines or "k: v" lines.
func nested(block []string) ([]string, map[string]string, error) {
	var list []string
	var m map[string]string
	for _, l := range block {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if item, ok := strings.CutPrefix(t, "- "); ok || t == "-" {
			if m != nil {
				return nil, nil, fmt.Errorf("a list item in a map: %q", l)
			}
			v, err := yamlScalar(strings.TrimSpace(item))
			if err != nil {
				return nil, nil, err
			}
			list = append(list, v)
			continue
		}
		k, v, ok := strings.Cut(t, ":")
		if !ok || list != nil {
			return nil, nil, fmt.Errorf("neither a list item nor a map entry: %q", l)
		}
		val, err := yamlScalar(strings.TrimSpace(v))
		if err != nil {
			return nil, nil, err
		}
		if m == nil {
			m = map[string]string{}
		}
		m[strings.TrimSpace(k)] = val
	}
	return list, m, nil
}

// yamlScalar is a one-line scalar: single quoted (a doubled quote is one
// quote), double quoted (backslash escapes), or plain up to a " #" comment.
func yamlScalar(s string) (string, error) {
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		if i := strings.Index(s, " #"); i >= 0 {
			s = s[:i]
		}
		if strings.HasPrefix(s, "#") {
			s = ""
		}
		return strings.TrimSpace(s), nil
	}
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case s[i] == q:
			if rest := strings.TrimSpace(s[i+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
				return "", fmt.Errorf("text after a quoted scalar: %q", s)
			}
			return b.String(), nil
		case s[i] == '\\' && q == '"' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(s[i])
		}
	}
	return "", fmt.Errorf("unterminated quoted scalar %q", s)
}

// blockScalar is a "|" (literal) or ">" (folded) block: its lines without
// their common indentation.
func blockScalar(block []string, folded bool) string {
	indent := -1
	for _, l := range block {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var out []string
	for _, l := range block {
		if len(l) >= indent && indent >= 0 {
			l = l[indent:]
		}
		out = append(out, strings.TrimRight(l, " \t"))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	sep := "\n"
	if folded {
		sep = " "
	}
	return strings.Join(out, sep) + "\n"
}

// sortedNames are m's keys in order.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
