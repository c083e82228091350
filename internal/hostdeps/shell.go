package hostdeps

import (
	"fmt"
	"path"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// shellScan finds the programs a shell script (or one Makefile recipe
// line) runs and the host files it names.
type shellScan struct {
	at      func(line uint) string // a position for a line of the text
	ctx     string                 // the make target that runs the text
	funcs   map[string]bool        // functions the script defines
	vars    map[string][]*syntax.Word
	guarded map[string]bool // programs whose run is guarded by `command -v`
	uses    []Use
	scripts []scriptRun // repository scripts it runs
	dynamic []Dynamic
}

// scriptRun is a repository script run by a recipe or another script.
type scriptRun struct {
	path, at string
}

// builtins are the shell's own commands (bash and dash) and keywords:
// nothing to install.
var builtins = set(".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd",
	"command", "compgen", "complete", "continue", "declare", "dirs", "disown", "echo",
	"enable", "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash",
	"help", "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf",
	"pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift", "shopt",
	"source", "suspend", "test", "times", "trap", "true", "type", "typeset", "ulimit",
	"umask", "unalias", "unset", "wait")

// wrappers are programs that run the command named by their arguments:
// the options of each that take a separate value.
var wrappers = map[string]map[string]bool{
	"timeout": set("-k", "-s"),
	"env":     set("-u", "-C", "-S"),
	"unshare": set("--propagation", "--setgroups", "-S", "--setuid", "-G", "--setgid", "-R", "--root", "-w", "--wd"),
	"nsenter": set("-t", "--target", "-S", "--setuid", "-G", "--setgid"),
	"setsid":  set(),
	"nohup":   set(),
	"nice":    set("-n"),
	"stdbuf":  set("-i", "-o", "-e"),
}

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// scanShell parses src as bash and records what it runs.
func scanShell(src, name string, at func(uint) string, ctx string) (*shellScan, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), name)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	s := &shellScan{at: at, ctx: ctx, funcs: map[string]bool{}, vars: map[string][]*syntax.Word{}, guarded: map[string]bool{}}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.FuncDecl:
			s.funcs[n.Name.Value] = true
		case *syntax.Assign:
			if n.Name != nil && n.Value != nil {
				s.vars[n.Name.Value] = append(s.vars[n.Name.Value], n.Value)
			}
		case *syntax.ParamExp:
			// : "${X:=default}" sets X unless the caller did.
			if n.Param != nil && n.Exp != nil && n.Exp.Word != nil &&
				(n.Exp.Op == syntax.AssignUnset || n.Exp.Op == syntax.AssignUnsetOrNull) {
				s.vars[n.Param.Value] = append(s.vars[n.Param.Value], n.Exp.Word)
			}
		}
		return true
	})
	s.walk(f)
	return s, nil
}

func (s *shellScan) walk(n syntax.Node) {
	syntax.Walk(n, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.BinaryCmd:
			// `command -v X >/dev/null && X ...` runs X only where it is
			// installed; so does `! command -v X || X ...`.
			if g := probe(n.X); g != "" && (n.Op == syntax.AndStmt) != n.X.Negated {
				s.walk(n.X)
				was := s.guarded[g]
				s.guarded[g] = true
				s.walk(n.Y)
				s.guarded[g] = was
				return false
			}
		case *syntax.CallExpr:
			s.call(n.Args)
		case *syntax.Word:
			if v, ok := s.value(n); ok && hostPath(v) {
				s.uses = append(s.uses, Use{Name: v, At: s.at(n.Pos().Line()), Ctx: s.ctx, File: true})
			}
		}
		return true
	})
}

// probe is X when st is `command -v X`.
func probe(st *syntax.Stmt) string {
	c, ok := st.Cmd.(*syntax.CallExpr)
	if !ok || len(c.Args) != 3 || c.Args[0].Lit() != "command" || c.Args[1].Lit() != "-v" {
		return ""
	}
	return c.Args[2].Lit()
}

// call records the program a simple command runs, and the command a
// wrapper runs in turn.
func (s *shellScan) call(args []*syntax.Word) {
	for i := 0; i < len(args); {
		w := args[i]
		at := s.at(w.Pos().Line())
		name, ok := s.value(w)
		if !ok {
			s.dynamic = append(s.dynamic, Dynamic{At: at, Expr: printWord(w), Ctx: s.ctx})
			return
		}
		switch {
		case name == "exec" || name == "builtin":
			i++
			continue
		case name == "command":
			if i+1 < len(args) && strings.HasPrefix(args[i+1].Lit(), "-") {
				return // command -v: a look-up
			}
			i++
			continue
		case builtins[name] || s.funcs[name]:
			return
		case strings.Contains(name, "/") && !strings.HasPrefix(name, "/"):
			s.scripts = append(s.scripts, scriptRun{path: path.Clean(name), at: at})
			return
		}
		s.uses = append(s.uses, Use{Name: name, At: at, Ctx: s.ctx, Optional: s.guarded[name]})
		base := path.Base(name)
		switch {
		case wrappers[base] != nil:
			i = skipOptions(args, i+1, wrappers[base])
			if base == "timeout" {
				i++ // the duration
			}
			if base == "env" {
				for i < len(args) && strings.Contains(args[i].Lit(), "=") {
					i++
				}
			}
		case base == "ip" && i+3 < len(args) && args[i+1].Lit() == "netns" && args[i+2].Lit() == "exec":
			i += 4
		case (base == "sh" || base == "bash") && i+2 < len(args) && args[i+1].Lit() == "-c":
			// The script in the string: its programs are ours too.
			if src, ok := s.value(args[i+2]); ok {
				inner, err := scanShell(src, at, func(uint) string { return at }, s.ctx)
				if err == nil {
					s.uses = append(s.uses, inner.uses...)
					s.dynamic = append(s.dynamic, inner.dynamic...)
					s.scripts = append(s.scripts, inner.scripts...)
				}
			}
			return
		default:
			// chroot's command runs in another root; others run no command.
			return
		}
	}
}

// skipOptions returns the index of the first argument from i that is not
// an option (nor the value of one in takes), past a "--".
func skipOptions(args []*syntax.Word, i int, takes map[string]bool) int {
	for i < len(args) {
		a := args[i].Lit()
		switch {
		case a == "--":
			return i + 1
		case takes[a]:
			i += 2
		case strings.HasPrefix(a, "-") && a != "-":
			i++
		default:
			return i
		}
	}
	return i
}

// value is the word's value when it is known without running anything:
// literals and quotes, ${X:-default} (the default: what runs unless the
// caller overrides it), and $X for a variable the script sets once to a
// known value.
func (s *shellScan) value(w *syntax.Word) (string, bool) {
	return s.parts(w.Parts, map[string]bool{})
}

func (s *shellScan) parts(ps []syntax.WordPart, seen map[string]bool) (string, bool) {
	var b strings.Builder
	for _, p := range ps {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			v, ok := s.parts(p.Parts, seen)
			if !ok {
				return "", false
			}
			b.WriteString(v)
		case *syntax.ParamExp:
			v, ok := s.param(p, seen)
			if !ok {
				return "", false
			}
			b.WriteString(v)
		default:
			return "", false
		}
	}
	return b.String(), true
}

func (s *shellScan) param(p *syntax.ParamExp, seen map[string]bool) (string, bool) {
	if p.Excl || p.Length || p.Index != nil || p.Slice != nil || p.Repl != nil || p.Param == nil {
		return "", false
	}
	if p.Exp != nil {
		switch p.Exp.Op {
		case syntax.DefaultUnset, syntax.DefaultUnsetOrNull, syntax.AssignUnset, syntax.AssignUnsetOrNull:
			if p.Exp.Word == nil {
				return "", true
			}
			return s.parts(p.Exp.Word.Parts, seen)
		}
		return "", false
	}
	name := p.Param.Value
	vs := s.vars[name]
	if len(vs) != 1 || seen[name] {
		return "", false
	}
	seen[name] = true
	defer delete(seen, name)
	return s.parts(vs[0].Parts, seen)
}

func printWord(w *syntax.Word) string {
	var b strings.Builder
	_ = syntax.NewPrinter().Print(&b, w)
	return b.String()
}
