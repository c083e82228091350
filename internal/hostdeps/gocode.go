package hostdeps

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"path"
	"path/filepath"
	"strings"
)

// The Go side: every program the module's Go code runs (os/exec, os.StartProcess,
// unix.Exec, and the module's own helpers that pass a program on, such as
// lab.NS.Exec or lab.Require, found by following their parameters) and every
// host path it names. Packages are type-checked from source, the module's own
// only: other imports are empty stand-ins, which is enough to resolve the
// module's functions and constants and to know what os/exec is.

// goScan is one pass over the module's packages.
type goScan struct {
	root, module string
	fset         *token.FileSet
	units        []*goUnit
	specs        map[string]map[int]paramKind // function -> its program parameters
	funcs        map[string]funcRef           // function -> its declaration
	rets         map[string]*rets             // function -> what it returns (nil while being found)
	globals      map[*types.Var]ast.Expr      // package-level variables' initial values
	changed      bool
	uses         []Use
	dynamic      []Dynamic
}

// goUnit is one type-checked set of files: a package with its internal
// tests, or its external test package.
type goUnit struct {
	files []*ast.File
	info  *types.Info
}

// paramKind says how a parameter carries a program.
type paramKind int

const (
	paramName  paramKind = iota + 1 // the program's name or path
	paramArgv                       // an argument vector: element 0 is the program
	paramNames                      // every element is a program (lab.Require)
)

// scan finds the program parameters of the module's functions (until no
// pass finds a new one), then records every use.
func (s *goScan) scan() {
	s.funcs = map[string]funcRef{}
	s.rets = map[string]*rets{}
	s.globals = map[*types.Var]ast.Expr{}
	for _, u := range s.units {
		for _, f := range u.files {
			for _, d := range f.Decls {
				if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.VAR {
					for _, sp := range gd.Specs {
						vs := sp.(*ast.ValueSpec)
						for k, id := range vs.Names {
							if v, ok := u.info.Defs[id].(*types.Var); ok && len(vs.Values) == len(vs.Names) {
								s.globals[v] = vs.Values[k]
							}
						}
					}
				}
				if fd, ok := d.(*ast.FuncDecl); ok {
					if obj, ok := u.info.Defs[fd.Name].(*types.Func); ok {
						s.funcs[obj.FullName()] = funcRef{u, fd}
					}
				}
			}
		}
	}
	for range 20 {
		s.changed = false
		s.uses, s.dynamic = nil, nil
		for _, u := range s.units {
			for _, f := range u.files {
				for _, d := range f.Decls {
					if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
						s.function(u, fd)
					}
				}
			}
		}
		if !s.changed {
			break
		}
	}
	for _, u := range s.units {
		for _, f := range u.files {
			// This package's own paths are what it checks, not what it uses.
			if !strings.HasPrefix(s.pos(f.Pos()), "internal/hostdeps/") {
				s.paths(u, f)
			}
		}
	}
}

// fn is the state of one function declaration being scanned (or, for
// the values a call returns, evaluated).
type fn struct {
	s      *goScan
	u      *goUnit
	name   string
	params map[*types.Var]int
	sig    *types.Signature
	assign map[*types.Var][]ast.Expr      // every value assigned (a call's first result for x, err := f())
	ranges map[*types.Var]ast.Expr        // range value variables: what they range over
	grows  map[*types.Var][]*ast.CallExpr // v = append(v, ...), in order
	body   *ast.BlockStmt
	busy   map[any]bool // what is being evaluated (recursion)
	depth  int
}

// funcRef is a function declaration of the module.
type funcRef struct {
	u  *goUnit
	fd *ast.FuncDecl
}

func (s *goScan) newFn(u *goUnit, fd *ast.FuncDecl) *fn {
	obj, _ := u.info.Defs[fd.Name].(*types.Func)
	if obj == nil || fd.Body == nil {
		return nil
	}
	f := &fn{s: s, u: u, name: obj.FullName(), sig: obj.Signature(), params: map[*types.Var]int{},
		assign: map[*types.Var][]ast.Expr{}, ranges: map[*types.Var]ast.Expr{}, grows: map[*types.Var][]*ast.CallExpr{},
		body: fd.Body, busy: map[any]bool{}}
	i := 0
	for _, field := range fd.Type.Params.List {
		if len(field.Names) == 0 {
			i++
		}
		for _, n := range field.Names {
			if v, ok := u.info.Defs[n].(*types.Var); ok {
				f.params[v] = i
			}
			i++
		}
	}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for k, l := range n.Lhs {
				v := f.local(l)
				switch {
				case v == nil:
				case len(n.Lhs) == 1 && f.selfAppend(v, n.Rhs[0]) != nil:
					f.grows[v] = append(f.grows[v], f.selfAppend(v, n.Rhs[0]))
				case len(n.Lhs) == len(n.Rhs) && n.Tok != token.ADD_ASSIGN:
					f.assign[v] = append(f.assign[v], n.Rhs[k])
				case len(n.Rhs) == 1 && k == 0:
					f.assign[v] = append(f.assign[v], n.Rhs[0])
				default:
					f.assign[v] = append(f.assign[v], nil)
				}
			}
		case *ast.ValueSpec:
			for k, id := range n.Names {
				if v, ok := u.info.Defs[id].(*types.Var); ok && len(n.Values) == len(n.Names) {
					f.assign[v] = append(f.assign[v], n.Values[k])
				}
			}
		case *ast.RangeStmt:
			if v := f.local(n.Value); v != nil {
				f.ranges[v] = n.X
			}
		case *ast.FuncLit:
			// A closure's parameters: not known here.
			for _, field := range n.Type.Params.List {
				for _, id := range field.Names {
					if v, ok := u.info.Defs[id].(*types.Var); ok {
						f.assign[v] = append(f.assign[v], nil)
					}
				}
			}
		}
		return true
	})
	return f
}

func (s *goScan) function(u *goUnit, fd *ast.FuncDecl) {
	f := s.newFn(u, fd)
	if f == nil {
		return
	}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			f.call(c)
		}
		return true
	})
}

// selfAppend is e when it is append(v, ...).
func (f *fn) selfAppend(v *types.Var, e ast.Expr) *ast.CallExpr {
	c, ok := e.(*ast.CallExpr)
	if !ok || len(c.Args) == 0 {
		return nil
	}
	if id, ok := c.Fun.(*ast.Ident); !ok || id.Name != "append" {
		return nil
	}
	if f.local(c.Args[0]) != v {
		return nil
	}
	return c
}

func (f *fn) local(e ast.Expr) *types.Var {
	id, ok := e.(*ast.Ident)
	if !ok {
		return nil
	}
	if v, ok := f.u.info.Defs[id].(*types.Var); ok {
		return v
	}
	v, _ := f.u.info.Uses[id].(*types.Var)
	return v
}

// call looks at one call: a program run, or a helper that runs one.
func (f *fn) call(c *ast.CallExpr) {
	callee, pkg, fo := f.callee(c)
	args := c.Args
	switch {
	case pkg == "os/exec" && callee == "Command" && len(args) > 0:
		f.argvs(f.tail(c, 0), c)
	case pkg == "os/exec" && callee == "CommandContext" && len(args) > 1:
		f.argvs(f.tail(c, 1), c)
	case pkg == "os/exec" && callee == "LookPath" && len(args) == 1,
		pkg == "os" && callee == "StartProcess" && len(args) > 0,
		(pkg == "golang.org/x/sys/unix" || pkg == "syscall") && callee == "Exec" && len(args) > 0:
		for _, v := range f.strs(args[0]) {
			f.program(v, c)
		}
	case fo != nil:
		sig := fo.Signature()
		for i, k := range f.s.specs[callee] {
			var ls [][]val
			switch {
			case sig.Variadic() && i == sig.Params().Len()-1:
				ls = f.tail(c, i)
			case i >= len(args):
				continue
			case k == paramName:
				for _, v := range f.strs(args[i]) {
					ls = append(ls, []val{v})
				}
			default:
				ls = f.lists(args[i])
			}
			for _, l := range ls {
				switch k {
				case paramName:
					if len(l) > 0 {
						f.program(l[0], c)
					}
				case paramArgv:
					f.argv(l, c)
				case paramNames:
					for _, v := range l {
						switch v.kind {
						case vSpreadParam:
							f.mark(v.p, paramNames)
						case vSpreadSelf:
						default:
							f.program(v, c)
						}
					}
				}
			}
		}
	}
}

// callee names what c calls: a function or method of the module (its full
// name and object), or a function of another package (its name and the
// package's path).
func (f *fn) callee(c *ast.CallExpr) (name, pkg string, fo *types.Func) {
	var obj types.Object
	switch fun := c.Fun.(type) {
	case *ast.Ident:
		obj = f.u.info.Uses[fun]
	case *ast.SelectorExpr:
		if x, ok := fun.X.(*ast.Ident); ok {
			if pn, ok := f.u.info.Uses[x].(*types.PkgName); ok {
				if pn.Imported().Path() != f.s.module && !strings.HasPrefix(pn.Imported().Path(), f.s.module+"/") {
					return fun.Sel.Name, pn.Imported().Path(), nil
				}
			}
		}
		if sel := f.u.info.Selections[fun]; sel != nil {
			obj = sel.Obj()
		} else {
			obj = f.u.info.Uses[fun.Sel]
		}
	}
	if fo, ok := obj.(*types.Func); ok && fo.Pkg() != nil {
		return fo.Origin().FullName(), "", fo.Origin()
	}
	return "", "", nil
}

// program records v run as a program at c.
func (f *fn) program(v val, c *ast.CallExpr) {
	ctx := goContext(f.s.fset.Position(c.Pos()).Filename)
	switch v.kind {
	case vLit:
		if v.s != "" { // "" is a program not chosen (a loop over candidates)
			f.s.uses = append(f.s.uses, Use{Name: v.s, At: f.s.pos(c.Pos()), Ctx: ctx})
		}
	case vParam:
		f.mark(v.p, paramName)
	case vParamFirst:
		f.mark(v.p, paramArgv)
	case vParamEach:
		f.mark(v.p, paramNames)
	case vSelf, vSpreadSelf:
	default:
		e := v.e
		if e == nil {
			e = c
		}
		f.s.dynamic = append(f.s.dynamic, Dynamic{At: f.s.pos(e.Pos()), Func: f.name, Expr: types.ExprString(e),
			Callee: v.callee, Ctx: ctx})
	}
}

func (f *fn) argvs(ls [][]val, c *ast.CallExpr) {
	for _, l := range ls {
		f.argv(l, c)
	}
}

// argv records the program of an argument vector, and the command a
// wrapper in it runs in turn (ip netns exec NS CMD, timeout, env, nsenter,
// unshare ... CMD, sh -c SCRIPT).
func (f *fn) argv(l []val, c *ast.CallExpr) {
	if len(l) == 0 {
		return
	}
	switch l[0].kind {
	case vSpreadParam:
		f.mark(l[0].p, paramArgv)
		return
	case vSpreadDyn:
		f.program(val{e: l[0].e}, c)
		return
	}
	f.program(l[0], c)
	if l[0].kind != vLit {
		return
	}
	lit := func(i int) string {
		if i < len(l) && l[i].kind == vLit {
			return l[i].s
		}
		return ""
	}
	base := path.Base(l[0].s)
	if takes := wrappers[base]; takes != nil {
		i := 1
		for i < len(l) {
			a := lit(i)
			if a == "--" {
				i++
				break
			}
			if takes[a] {
				i += 2
			} else if strings.HasPrefix(a, "-") {
				i++
			} else {
				break
			}
		}
		switch base {
		case "timeout":
			i++ // the duration
		case "env":
			// Assignments; a list spread before more arguments is more
			// assignments.
			for i < len(l) && (strings.Contains(l[i].s, "=") || (l[i].kind >= vSpreadParam && i < len(l)-1)) {
				i++
			}
		}
		f.argv(l[min(i, len(l)):], c)
		return
	}
	switch base {
	case "ip":
		if lit(1) == "netns" && lit(2) == "exec" && len(l) > 4 {
			f.argv(l[4:], c)
		}
	case "sh", "bash":
		if lit(1) != "-c" || len(l) < 3 {
			return
		}
		at := f.s.pos(c.Pos())
		if l[2].kind != vLit && (l[2].kind != vDyn || l[2].s == "") {
			f.program(val{e: l[2].e}, c)
			return
		}
		sh, err := scanShell(l[2].s, at, func(uint) string { return at }, goContext(f.s.fset.Position(c.Pos()).Filename))
		if err != nil {
			f.s.dynamic = append(f.s.dynamic, Dynamic{At: at, Func: f.name, Expr: fmt.Sprintf("%q: %v", l[2].s, err)})
			return
		}
		for _, u := range sh.uses {
			if strings.Contains(u.Name, placeholder) {
				f.program(val{e: l[2].e}, c)
				continue
			}
			f.s.uses = append(f.s.uses, u)
		}
		for _, d := range sh.dynamic {
			if d.Expr == `"$@"` && len(l) > 4 {
				f.argv(l[4:], c) // sh -c '... exec "$@"' NAME ARGS...
				continue
			}
			f.s.dynamic = append(f.s.dynamic, d)
		}
	}
}

func (f *fn) mark(i int, k paramKind) {
	m := f.s.specs[f.name]
	if m == nil {
		m = map[int]paramKind{}
		f.s.specs[f.name] = m
	}
	if m[i] != k {
		m[i] = k
		f.s.changed = true
	}
}

// paths records every string constant in the file that is a host path
// (under /usr, /lib, /sbin, /bin).
func (s *goScan) paths(u *goUnit, file *ast.File) {
	ast.Inspect(file, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		tv := u.info.Types[lit]
		if tv.Value == nil || tv.Value.Kind() != constant.String {
			return true
		}
		if p := constant.StringVal(tv.Value); hostPath(p) {
			s.uses = append(s.uses, Use{Name: p, At: s.pos(lit.Pos()), File: true,
				Ctx: goContext(s.fset.Position(lit.Pos()).Filename)})
		}
		return true
	})
}

func (s *goScan) pos(p token.Pos) string {
	ps := s.fset.Position(p)
	rel, err := filepath.Rel(s.root, ps.Filename)
	if err != nil {
		rel = ps.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), ps.Line)
}

// goContext is the make target whose package lists the Go file may rely
// on: `make bench` for the bench files (their tests run only there, with
// NETINIT_BENCH=1), `make test` for the rest.
func goContext(file string) string {
	if strings.Contains(filepath.Base(file), "bench") {
		return "bench"
	}
	return "test"
}
