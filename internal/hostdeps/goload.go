package hostdeps

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// loadGo parses and type-checks every package under root (but hidden
// directories, .cache among them, and build) for linux/amd64 with the
// netinit_lab tag.
func loadGo(root string) (*goScan, error) {
	mod, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	s := &goScan{root: root, module: mod, fset: token.NewFileSet(), specs: map[string]map[int]paramKind{}}
	bctx := build.Default
	bctx.GOOS, bctx.GOARCH, bctx.CgoEnabled = "linux", "amd64", false
	bctx.BuildTags = []string{"netinit_lab"}
	imp := &importer{s: s, bctx: &bctx, pkgs: map[string]*types.Package{}}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		// testdata holds programs too: stand-ins the labs run on the host
		// (and in guests, whose paths the not-a-host-path table names).
		if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "build") {
			return filepath.SkipDir
		}
		bp, err := bctx.ImportDir(p, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return fmt.Errorf("reading %s: %w", p, err)
		}
		ip := imp.importPath(p)
		if u, err := imp.check(ip, p, append(bp.GoFiles, bp.TestGoFiles...)); err != nil {
			return err
		} else if u != nil {
			s.units = append(s.units, u)
		}
		if u, err := imp.check(ip+"_test", p, bp.XTestGoFiles); err != nil {
			return err
		} else if u != nil {
			s.units = append(s.units, u)
		}
		return nil
	})
	return s, err
}

func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// importer gives the module's packages, type-checked from source, and an
// empty stand-in for every other import.
type importer struct {
	s    *goScan
	bctx *build.Context
	pkgs map[string]*types.Package
}

func (im *importer) importPath(dir string) string {
	rel, _ := filepath.Rel(im.s.root, dir)
	if rel == "." {
		return im.s.module
	}
	return im.s.module + "/" + filepath.ToSlash(rel)
}

func (im *importer) Import(p string) (*types.Package, error) { return im.ImportFrom(p, "", 0) }

func (im *importer) ImportFrom(p, _ string, _ types.ImportMode) (*types.Package, error) {
	if p == "unsafe" {
		return types.Unsafe, nil
	}
	if pkg, ok := im.pkgs[p]; ok {
		return pkg, nil
	}
	if p == im.s.module || strings.HasPrefix(p, im.s.module+"/") {
		dir := filepath.Join(im.s.root, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p, im.s.module), "/")))
		bp, err := im.bctx.ImportDir(dir, 0)
		if err != nil {
			return nil, err
		}
		files, err := im.parse(dir, bp.GoFiles)
		if err != nil {
			return nil, err
		}
		pkg, _ := im.typecheck(p, files, nil)
		im.pkgs[p] = pkg
		return pkg, nil
	}
	// A stand-in: its name as the import path says (gopkg.in/yaml.v2 is
	// yaml, .../jsonschema/v6 is jsonschema).
	elems := strings.Split(p, "/")
	name := elems[len(elems)-1]
	if len(elems) > 1 && len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" {
		name = elems[len(elems)-2]
	}
	if i := strings.Index(name, ".v"); i > 0 {
		name = name[:i]
	}
	name = strings.NewReplacer("-", "_", ".", "_").Replace(name)
	pkg := types.NewPackage(p, name)
	pkg.MarkComplete()
	im.pkgs[p] = pkg
	return pkg, nil
}

func (im *importer) parse(dir string, names []string) ([]*ast.File, error) {
	var files []*ast.File
	for _, n := range names {
		f, err := parser.ParseFile(im.s.fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// typecheck checks files as package p; type errors (from the stand-ins)
// are expected and ignored.
func (im *importer) typecheck(p string, files []*ast.File, info *types.Info) (*types.Package, error) {
	conf := types.Config{Importer: im, Error: func(error) {}, FakeImportC: true}
	return conf.Check(p, im.s.fset, files, info)
}

func (im *importer) check(p, dir string, names []string) (*goUnit, error) {
	if len(names) == 0 {
		return nil, nil
	}
	files, err := im.parse(dir, names)
	if err != nil {
		return nil, err
	}
	u := &goUnit{files: files, info: &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Defs:       map[*ast.Ident]types.Object{},
		Uses:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
	}}
	_, _ = im.typecheck(p, files, u.info)
	return u, nil
}
