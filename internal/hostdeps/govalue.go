package hostdeps

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
)

// val is what an expression is known to be.
type val struct {
	kind   vkind
	s      string   // vLit
	p      int      // the parameter of vParam...
	e      ast.Expr // vDyn, vSpreadDyn
	callee string   // vDyn: the module function whose result it is
}

type vkind int

const (
	vDyn         vkind = iota // not known
	vLit                      // a string constant
	vParam                    // a string parameter
	vParamFirst               // element 0 of a list parameter
	vParamEach                // each element of a list parameter
	vSelf                     // the running program (os.Args[0], os.Executable())
	vSpreadParam              // (in a list) the elements of a list parameter
	vSpreadDyn                // (in a list) elements not known
	vSpreadSelf               // (in a list) the list itself, being evaluated: its other values say it
)

// maxAlt bounds the values an expression is followed through.
const maxAlt = 64

// strs are the values the string expression e may have.
func (f *fn) strs(e ast.Expr) []val {
	if tv, ok := f.u.info.Types[e]; ok && tv.Value != nil && tv.Value.Kind() == constant.String {
		return []val{{kind: vLit, s: constant.StringVal(tv.Value)}}
	}
	if f.depth > 30 || f.busy[e] {
		return []val{{e: e}}
	}
	f.depth++
	f.busy[e] = true
	defer func() { f.depth--; delete(f.busy, e) }()
	switch e := e.(type) {
	case *ast.ParenExpr:
		return f.strs(e.X)
	case *ast.Ident:
		v, _ := f.u.info.Uses[e].(*types.Var)
		if v == nil {
			break
		}
		if i, ok := f.params[v]; ok {
			return []val{{kind: vParam, p: i}}
		}
		if x, ok := f.ranges[v]; ok {
			var out []val
			for _, l := range f.lists(x) {
				if len(l) == 1 && l[0].kind == vSpreadParam {
					out = append(out, val{kind: vParamEach, p: l[0].p})
				} else if len(l) == 1 && l[0].kind == vSpreadDyn {
					out = append(out, val{e: e})
				} else {
					for _, x := range l {
						switch x.kind {
						case vSpreadParam:
							out = append(out, val{kind: vParamEach, p: x.p})
						case vSpreadDyn:
							out = append(out, val{e: x.e})
						case vSpreadSelf:
						default:
							out = append(out, x)
						}
					}
				}
			}
			return capAlt(out)
		}
		if as := f.assign[v]; len(as) > 0 {
			var out []val
			for _, a := range as {
				if a == nil {
					return []val{{e: e}}
				}
				out = append(out, f.strs(a)...)
			}
			// A variable that may be something not known is named by
			// itself (one name for the dynamic table), unless that
			// something is the result of one function.
			for _, x := range out {
				if x.kind == vDyn && (len(as) > 1 || x.callee == "") {
					return []val{{e: e}}
				}
			}
			return capAlt(out)
		}
	case *ast.IndexExpr:
		if tv, ok := f.u.info.Types[e.Index]; !ok || tv.Value == nil || tv.Value.ExactString() != "0" {
			break
		}
		if f.isSel(e.X, "os", "Args") {
			return []val{{kind: vSelf}}
		}
		var out []val
		for _, l := range f.lists(e.X) {
			if len(l) == 0 {
				continue
			}
			switch l[0].kind {
			case vSpreadParam:
				out = append(out, val{kind: vParamFirst, p: l[0].p})
			case vSpreadDyn:
				out = append(out, val{e: e})
			case vSpreadSelf:
			default:
				out = append(out, l[0])
			}
		}
		return capAlt(out)
	case *ast.SelectorExpr:
		if out := f.fields(e); out != nil {
			var vs []val
			for _, x := range out {
				vs = append(vs, f.strs(x)...)
			}
			return capAlt(vs)
		}
	case *ast.BinaryExpr:
		// A string built with +: its constant parts, with a stand-in for
		// the others (an env assignment, a shell script to look into).
		if e.Op == token.ADD {
			return []val{{e: e, s: f.template(e)}}
		}
	case *ast.CallExpr:
		if f.isSel(e.Fun, "os", "Executable") {
			return []val{{kind: vSelf}}
		}
		if f.isSel(e.Fun, "os/exec", "LookPath") && len(e.Args) == 1 {
			return f.strs(e.Args[0]) // the path of the same program
		}
		if r, ok := f.returns(e); ok {
			var out []val
			for _, l := range r {
				out = append(out, l[0])
			}
			return capAlt(out)
		}
		_, _, fo := f.callee(e)
		if fo != nil {
			return []val{{e: e, callee: fo.FullName()}}
		}
	}
	return []val{{e: e}}
}

// placeholder stands for what is not constant in a template.
const placeholder = "HOSTDEPS_ARG"

func (f *fn) template(e ast.Expr) string {
	if tv, ok := f.u.info.Types[e]; ok && tv.Value != nil && tv.Value.Kind() == constant.String {
		return constant.StringVal(tv.Value)
	}
	switch e := e.(type) {
	case *ast.ParenExpr:
		return f.template(e.X)
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			return f.template(e.X) + f.template(e.Y)
		}
	}
	return placeholder
}

// lists are the values the []string expression e may have.
func (f *fn) lists(e ast.Expr) [][]val {
	if f.depth > 30 {
		return [][]val{{{kind: vSpreadDyn, e: e}}}
	}
	if f.busy[e] {
		return [][]val{{{kind: vSpreadSelf}}}
	}
	f.depth++
	f.busy[e] = true
	defer func() { f.depth--; delete(f.busy, e) }()
	switch e := e.(type) {
	case *ast.ParenExpr:
		return f.lists(e.X)
	case *ast.CompositeLit:
		if _, ok := e.Type.(*ast.ArrayType); ok || e.Type == nil {
			var out [][]val
			for k, x := range e.Elts {
				vs := f.strs(x)
				if k == 0 {
					for _, v := range vs {
						out = append(out, []val{v})
					}
					continue
				}
				for i := range out {
					out[i] = append(out[i], vs[0])
				}
			}
			if len(e.Elts) == 0 {
				out = [][]val{{}}
			}
			return out
		}
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && len(e.Args) > 0 {
			if b, ok := f.u.info.Uses[id].(*types.Builtin); ok && b.Name() == "append" {
				return concat(f.lists(e.Args[0]), f.tail(e, 1))
			}
		}
		if f.isSel(e.Fun, "slices", "Clone") && len(e.Args) == 1 {
			return f.lists(e.Args[0])
		}
		if r, ok := f.returns(e); ok {
			return r
		}
	case *ast.Ident:
		if _, ok := f.u.info.Uses[e].(*types.Nil); ok {
			return [][]val{{}}
		}
		v, _ := f.u.info.Uses[e].(*types.Var)
		if v == nil {
			break
		}
		if i, ok := f.params[v]; ok {
			return [][]val{{{kind: vSpreadParam, p: i}}}
		}
		if x, ok := f.ranges[v]; ok {
			if out := f.elems(x); out != nil {
				return out
			}
			break
		}
		if as := f.assign[v]; len(as) > 0 {
			var out [][]val
			for _, a := range as {
				if a == nil {
					return [][]val{{{kind: vSpreadDyn, e: e}}}
				}
				out = append(out, f.lists(a)...)
			}
			// What v = append(v, ...) adds, as the code runs: in order.
			for _, g := range f.grows[v] {
				out = concat(out, f.tail(g, 1))
			}
			return capLists(out)
		}
		if x, ok := f.s.globals[v]; ok {
			return f.lists(x)
		}
	case *ast.IndexExpr:
		// An element of a package-level map of lists (initramfs.Compressors):
		// any of its values.
		if id, ok := e.X.(*ast.Ident); ok {
			if v, ok := f.u.info.Uses[id].(*types.Var); ok {
				if cl, ok := f.s.globals[v].(*ast.CompositeLit); ok {
					if _, ok := f.u.info.Types[cl].Type.Underlying().(*types.Map); ok {
						var out [][]val
						for _, el := range cl.Elts {
							if kv, ok := el.(*ast.KeyValueExpr); ok {
								out = append(out, f.lists(kv.Value)...)
							}
						}
						return capLists(out)
					}
				}
			}
		}
	case *ast.SliceExpr:
		// x[n:]: x's elements from n on, when the first n are single ones.
		if e.High != nil || e.Max != nil {
			break
		}
		lo := 0
		if e.Low != nil {
			tv, ok := f.u.info.Types[e.Low]
			if !ok || tv.Value == nil {
				break
			}
			n, ok := constant.Int64Val(tv.Value)
			if !ok {
				break
			}
			lo = int(n)
		}
		var out [][]val
		for _, l := range f.lists(e.X) {
			k := 0
			for k < lo && k < len(l) && l[k].kind < vSpreadParam {
				k++
			}
			if k < lo {
				return [][]val{{{kind: vSpreadDyn, e: e}}}
			}
			out = append(out, l[lo:])
		}
		return capLists(out)
	case *ast.SelectorExpr:
		if xs := f.fields(e); xs != nil {
			var out [][]val
			for _, x := range xs {
				out = append(out, f.lists(x)...)
			}
			return capLists(out)
		}
	}
	return [][]val{{{kind: vSpreadDyn, e: e}}}
}

// tail are the values of c's arguments from i on, as the tail of a list
// (the last spread when c has ...).
func (f *fn) tail(c *ast.CallExpr, i int) [][]val {
	out := [][]val{{}}
	for k := i; k < len(c.Args); k++ {
		if c.Ellipsis.IsValid() && k == len(c.Args)-1 {
			out = concat(out, f.lists(c.Args[k]))
			continue
		}
		vs := f.strs(c.Args[k])
		if k == i && len(vs) > 1 {
			// The first element may be the program: each of its values.
			var next [][]val
			for _, v := range vs {
				next = append(next, []val{v})
			}
			out = next
			continue
		}
		for j := range out {
			out[j] = append(out[j], vs[0])
		}
	}
	return out
}

// elems are the lists a range over x yields, when x is a literal of
// lists, or a variable set to one and grown with append.
func (f *fn) elems(x ast.Expr) [][]val {
	var out [][]val
	switch x := x.(type) {
	case *ast.CompositeLit:
		for _, el := range x.Elts {
			out = append(out, f.lists(el)...)
		}
	case *ast.Ident:
		v, _ := f.u.info.Uses[x].(*types.Var)
		as := f.assign[v]
		if v == nil || len(as) != 1 || as[0] == nil || f.busy[x] {
			return nil
		}
		f.busy[x] = true
		defer delete(f.busy, x)
		out = f.elems(as[0])
		if out == nil {
			return nil
		}
		for _, g := range f.grows[v] {
			for k, a := range g.Args[1:] {
				if g.Ellipsis.IsValid() && k == len(g.Args)-2 {
					out = append(out, f.elems(a)...)
				} else {
					out = append(out, f.lists(a)...)
				}
			}
		}
	default:
		return nil
	}
	return capLists(out)
}

// fields are the expressions x.name takes when x ranges over a literal of
// structs.
func (f *fn) fields(sel *ast.SelectorExpr) []ast.Expr {
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return nil
	}
	v, _ := f.u.info.Uses[id].(*types.Var)
	rx, ok := f.ranges[v]
	if !ok {
		return nil
	}
	cl, ok := rx.(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var out []ast.Expr
	for _, el := range cl.Elts {
		ecl, ok := el.(*ast.CompositeLit)
		if !ok {
			return nil
		}
		st, ok := f.u.info.Types[ecl].Type.Underlying().(*types.Struct)
		if !ok {
			return nil
		}
		for k, x := range ecl.Elts {
			if kv, ok := x.(*ast.KeyValueExpr); ok {
				if key, ok := kv.Key.(*ast.Ident); ok && key.Name == sel.Sel.Name {
					out = append(out, kv.Value)
				}
			} else if k < st.NumFields() && st.Field(k).Name() == sel.Sel.Name {
				out = append(out, x)
			}
		}
	}
	return out
}

// rets are the values a function returns: lists, or strings as
// one-element lists, in terms of its parameters.
type rets struct {
	g   *fn
	out [][]val
}

func (s *goScan) returnsOf(name string) *rets {
	if r, ok := s.rets[name]; ok {
		return r
	}
	s.rets[name] = nil // recursion: not known
	ref, ok := s.funcs[name]
	if !ok {
		return nil
	}
	g := s.newFn(ref.u, ref.fd)
	if g == nil || g.sig.Results().Len() == 0 {
		return nil
	}
	isList := false
	if sl, ok := g.sig.Results().At(0).Type().Underlying().(*types.Slice); ok {
		b, ok := sl.Elem().Underlying().(*types.Basic)
		isList = ok && b.Kind() == types.String
		if !isList {
			return nil
		}
	} else if b, ok := g.sig.Results().At(0).Type().Underlying().(*types.Basic); !ok || b.Kind() != types.String {
		return nil
	}
	var out [][]val
	ast.Inspect(g.body, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			return false
		}
		r, ok := n.(*ast.ReturnStmt)
		if !ok || len(r.Results) == 0 {
			return true
		}
		if isList {
			out = append(out, g.lists(r.Results[0])...)
		} else {
			for _, v := range g.strs(r.Results[0]) {
				out = append(out, []val{v})
			}
		}
		return true
	})
	if len(out) == 0 {
		return nil
	}
	r := &rets{g: g, out: capLists(out)}
	s.rets[name] = r
	return r
}

// returns are the lists (or strings, as one-element lists) a call of a
// module function returns, its parameters replaced by c's arguments.
func (f *fn) returns(c *ast.CallExpr) ([][]val, bool) {
	_, _, fo := f.callee(c)
	if fo == nil {
		return nil, false
	}
	r := f.s.returnsOf(fo.FullName())
	if r == nil {
		return nil, false
	}
	g, out := r.g, r.out
	// The callee's parameters are c's arguments.
	var res [][]val
	for _, l := range out {
		alts := [][]val{{}}
		for _, v := range l {
			var sub [][]val
			switch v.kind {
			case vParam, vParamFirst:
				if v.p < len(c.Args) {
					for _, x := range f.strs(c.Args[v.p]) {
						if v.kind == vParamFirst {
							x = val{e: c.Args[v.p]}
						}
						sub = append(sub, []val{x})
					}
				}
			case vSpreadParam:
				if g.sig.Variadic() && v.p == g.sig.Params().Len()-1 {
					sub = f.tail(c, v.p)
				} else if v.p < len(c.Args) {
					sub = f.lists(c.Args[v.p])
				}
			case vDyn, vSpreadDyn:
				sub = [][]val{{{kind: v.kind, e: v.e, callee: or(v.callee, fo.FullName())}}}
			default:
				sub = [][]val{{v}}
			}
			if sub == nil {
				sub = [][]val{{{kind: vDyn, e: c, callee: fo.FullName()}}}
			}
			alts = concat(alts, sub)
		}
		res = append(res, alts...)
	}
	return capLists(res), true
}

// concat is every head followed by every tail.
func concat(heads, tails [][]val) [][]val {
	var out [][]val
	for _, h := range heads {
		for _, t := range tails {
			out = append(out, append(append([]val(nil), h...), t...))
		}
	}
	return capLists(out)
}

func capAlt(vs []val) []val {
	if len(vs) == 0 {
		return []val{{}}
	}
	return vs[:min(len(vs), maxAlt)]
}

func capLists(ls [][]val) [][]val {
	if len(ls) == 0 {
		return [][]val{{{kind: vSpreadSelf}}}
	}
	return ls[:min(len(ls), maxAlt)]
}

// isSel reports whether e is pkg.name (pkg an import path).
func (f *fn) isSel(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	pn, ok := f.u.info.Uses[x].(*types.PkgName)
	return ok && pn.Imported().Path() == pkg
}
