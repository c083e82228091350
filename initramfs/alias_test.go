package initramfs

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"github.com/threefoldtech/netinit/boot/coldplug"
	"github.com/threefoldtech/netinit/boot/kmod"
)

// recorder is a coldplug.Loader that loads nothing and records the names.
type recorder struct{ loaded []string }

func (r *recorder) Load(name, _ string) error { r.loaded = append(r.loaded, name); return nil }

// TestAliasRulesAgree: the image builder (which module provides a soft
// dependency such as "crc32c") and the booted node's coldplug (which
// module to load for a name) match alias patterns by the same rules,
// kmod's fnmatch(3), also on the rows where Go's path.Match answers
// otherwise. Each row is one module whose .modinfo declares the pattern;
// coldplug reads the modules.alias and modules.dep the image builder
// writes for it.
func TestAliasRulesAgree(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool // fnmatch(3), as kmod
		pathMatch     bool // what path.Match says
	}{
		{"a*", "a/b", true, false},           // '*' crosses '/'
		{"acpi*:X", "acpi/x:X", true, false}, // same, mid-pattern
		{"a?b", "a/b", true, false},          // '?' matches '/'
		{"a[!x]c", "abc", true, false},       // '!' negates
		{"a[!x]c", "axc", false, true},       // ... where path.Match takes it as a member
		{"x[", "x[", true, false},            // an unclosed class is a literal '['
		{"x[]a]y", "x]y", true, false},       // ']' first in a class is a member
		{"a[^x]c", "abc", true, true},        // '^' negates in both
		{`a\*b`, "a*b", true, true},          // a quoted '*' in both
		{"crc32c", "crc32c", true, true},
		{"crypto-crc32c", "crc32c", false, false},
	} {
		t.Run(tc.pattern+" "+tc.name, func(t *testing.T) {
			if ok, _ := path.Match(tc.pattern, tc.name); ok != tc.pathMatch {
				t.Errorf("path.Match(%q, %q) = %v: the row's premise is wrong", tc.pattern, tc.name, ok)
			}
			if got := kmod.Match(tc.pattern, tc.name); got != tc.want {
				t.Fatalf("kmod.Match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
			}
			dir := t.TempDir()
			must(t, os.MkdirAll(filepath.Join(dir, "kernel/x"), 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "kernel/x/m.ko"), fakeModule(t, "alias="+tc.pattern, "depends="), 0o644))

			// Build time.
			tree, err := OpenModuleTree(dir, "6.1.0-99-test")
			must(t, err)
			provides, err := tree.resolveSoft(tc.name)
			must(t, err)
			set, err := tree.Closure([]string{"m"})
			must(t, err)
			must(t, os.WriteFile(filepath.Join(dir, "modules.dep"), set.ModulesDep(), 0o644))
			must(t, os.WriteFile(filepath.Join(dir, "modules.alias"), set.ModulesAlias(), 0o644))

			// Run time, on the index files the image carries.
			var rec recorder
			_, err = coldplug.Load(context.Background(), coldplug.Options{ModulesDir: dir, SysDir: t.TempDir(), Loader: &rec}, tc.name)
			must(t, err)

			image, node := slices.Contains(provides, "m"), slices.Contains(rec.loaded, "m")
			if image != tc.want || node != tc.want {
				t.Errorf("%q against %q: image builder %v, coldplug %v, want %v", tc.pattern, tc.name, image, node, tc.want)
			}
		})
	}
}
