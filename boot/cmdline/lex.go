package cmdline

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/threefoldtech/netinit/boot/spec"
)

// isSpace is the kernel's isspace() on the command line (lib/ctype.c):
// space, \t, \n, \v, \f, \r.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}

// lexCmdline splits a command line into raw tokens the way the kernel's
// next_arg (lib/cmdline.c) does: whitespace separates, a double quote
// toggles "inside quotes" wherever it appears. A bare "--" ends the kernel
// parameters; what follows is init's argv and is not ours.
func lexCmdline(line string) []string {
	var toks []string
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i >= len(line) {
			return toks
		}
		start := i
		inQuote := false
		for ; i < len(line); i++ {
			c := line[i]
			if isSpace(c) && !inQuote {
				break
			}
			if c == '"' {
				inQuote = !inQuote
			}
		}
		tok := line[start:i]
		// parse_args compares the dequoted name, so "--" in quotes ends
		// the parameters too.
		if k, _, hasVal := splitKV(tok); k == "--" && !hasVal {
			return toks
		}
		toks = append(toks, tok)
	}
}

// splitKV splits a raw token into its key and its dequoted value, as
// next_arg does: the key ends at the first '=', a leading quote of the
// token or of the value is dropped together with a trailing quote.
func splitKV(tok string) (key, val string, hasVal bool) {
	quoted := strings.HasPrefix(tok, `"`)
	if quoted {
		tok = tok[1:]
	}
	eq := strings.IndexByte(tok, '=')
	if eq < 0 {
		if quoted {
			tok = strings.TrimSuffix(tok, `"`)
		}
		return tok, "", false
	}
	key, val = tok[:eq], tok[eq+1:]
	if strings.HasPrefix(val, `"`) {
		val = strings.TrimSuffix(val[1:], `"`)
	} else if quoted {
		val = strings.TrimSuffix(val, `"`)
	}
	return key, val, true
}

// maxConfigLine bounds one config line; longer lines are a problem.
const maxConfigLine = 64 << 10

// applyConfig applies a config file (see the package doc for its grammar).
func applyConfig(s *spec.Spec, r io.Reader, name string) []Problem {
	a := newApplier(s, true)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxConfigLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		a.token(name+":"+strconv.Itoa(n), line)
	}
	if err := sc.Err(); err != nil {
		a.problems = append(a.problems, Problem{
			Source: name + ":" + strconv.Itoa(n+1),
			Err:    fmt.Errorf("reading config: %w", err),
		})
	}
	finish(s)
	return a.problems
}

// splitConfigLine splits "key = value" with optional quotes around value.
func splitConfigLine(line string) (key, val string, hasVal bool) {
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return line, "", false
	}
	key = strings.TrimSpace(line[:eq])
	val = strings.TrimSpace(line[eq+1:])
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	}
	return key, val, true
}
