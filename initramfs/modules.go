package initramfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/threefoldtech/netinit/boot/kmod"
)

// DefaultModules are the drivers netinit's image carries unless told
// otherwise: the virtual NICs used in QEMU and clouds, every Ethernet
// driver of the kernel (the directory kernel/drivers/net/ethernet/: a farm
// node's NIC is whatever its board has, and an undetected NIC is a node
// that never comes up), the common USB NICs, TUN (Yggdrasil), WireGuard,
// 802.1Q VLANs, bonding (bond=, netinit.bond=auto: loaded only when a
// bond is made), the bridge (0-OS's zos management bridge), and nf_tables
// with the expressions the later firewall uses (conntrack match, NAT
// chains, masquerade). Which of them exist as modules depends on the
// kernel flavour; missing ones are reported and skipped.
// The firmware files they name are carried when the image is built with
// firmware packages (SelectFirmware, mkinitramfs -firmware-dir).
var DefaultModules = []string{
	"virtio_net", "virtio_pci",
	"kernel/drivers/net/ethernet/",
	"r8152", "r8153_ecm", "ax88179_178a", "cdc_ether", "cdc_ncm", "asix", "aqc111",
	"smsc95xx", "smsc75xx", "lan78xx", "rtl8150", "dm9601", "mcs7830", "sr9700", "sr9800", "pegasus",
	"tun", "wireguard", "8021q", "bonding", "bridge",
	"nf_tables", "nft_ct", "nft_chain_nat", "nft_nat", "nft_masq",
}

// ModuleTree is an installed kernel module directory, lib/modules/<release>.
// Debian's kernel packages ship the .ko files, modules.builtin and
// modules.order but no modules.dep (depmod runs at install time), so the
// tree is indexed by file name and dependencies come from .modinfo.
type ModuleTree struct {
	Dir     string
	Release string
	// paths maps module name to its path relative to Dir (slash separated).
	paths map[string]string
	// builtin holds the names of modules compiled into the kernel
	// (from modules.builtin).
	builtin map[string]bool
	// builtinAliases are the alias patterns of built-in modules (from
	// modules.builtin.modinfo), so a soft dependency on an alias such as
	// "crc32c" is known to be satisfied by the kernel itself.
	builtinAliases *kmod.Aliases
	// builtinRaw is modules.builtin as shipped, if present.
	builtinRaw []byte
	// aliases are the alias patterns of every module in the tree; built
	// on first need (it reads every module).
	aliases *kmod.Aliases
}

// OpenModuleTree indexes the modules below dir. release defaults to the
// base name of dir when that looks like a kernel release (starts with a
// digit, as in lib/modules/6.1.0-47-cloud-amd64), otherwise to the release
// recorded in the modules' vermagic= (the kernel's `uname -r`).
func OpenModuleTree(dir, release string) (*ModuleTree, error) {
	t := &ModuleTree{Dir: dir, Release: release, paths: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		name, ok := ModuleName(p)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if prev, dup := t.paths[name]; dup {
			// Like depmod, prefer the first in a stable order.
			if prev < rel {
				return nil
			}
		}
		t.paths[name] = rel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules in %s: %w", dir, err)
	}
	if t.Release == "" {
		if err := t.detectRelease(); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	switch {
	case err == nil:
		t.builtinRaw = b
		t.builtin = kmod.ParseBuiltin(b)
	case os.IsNotExist(err):
	default:
		return nil, fmt.Errorf("read modules.builtin: %w", err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "modules.builtin.modinfo"))
	switch {
	case err == nil:
		t.builtinAliases = kmod.ParseBuiltinModinfo(b)
	case os.IsNotExist(err):
	default:
		return nil, fmt.Errorf("read modules.builtin.modinfo: %w", err)
	}
	return t, nil
}

func (t *ModuleTree) detectRelease() error {
	base := filepath.Base(filepath.Clean(t.Dir))
	if base != "" && base[0] >= '0' && base[0] <= '9' {
		t.Release = base
		return nil
	}
	// Any module will do; take the first in path order for determinism.
	var first string
	for _, p := range t.paths {
		if first == "" || p < first {
			first = p
		}
	}
	if first == "" {
		return fmt.Errorf("cannot tell the kernel release of %s: not a release name and no modules; pass it explicitly", t.Dir)
	}
	mi, err := ReadModinfo(filepath.Join(t.Dir, filepath.FromSlash(first)))
	if err != nil {
		return err
	}
	vm := mi.Get("vermagic")
	if len(vm) == 0 || strings.Fields(vm[0]) == nil {
		return fmt.Errorf("cannot tell the kernel release of %s: no vermagic in %s; pass it explicitly", t.Dir, first)
	}
	t.Release = strings.Fields(vm[0])[0]
	return nil
}

// resolveSoft maps a soft dependency, which modprobe resolves like any
// modprobe argument (a module name or an alias, e.g. "crc32c"), to the
// loadable modules that provide it. It returns nothing when the kernel has
// it built in or nothing provides it.
func (t *ModuleTree) resolveSoft(name string) ([]string, error) {
	n := kmod.NormalizeName(name)
	if t.paths[n] != "" {
		return []string{n}, nil
	}
	if t.softBuiltin(name) {
		return nil, nil
	}
	if t.aliases == nil {
		t.aliases = &kmod.Aliases{}
		for mod, rel := range t.paths {
			mi, err := ReadModinfo(filepath.Join(t.Dir, filepath.FromSlash(rel)))
			if err != nil {
				return nil, err
			}
			for _, pat := range mi.Aliases {
				t.aliases.Add(pat, mod)
			}
		}
	}
	// The same matcher as the booted node's coldplug (kmod.Match, kmod's
	// fnmatch rules): the image carries what the node will look for.
	return t.aliases.Match(name), nil
}

// Path returns the path of module name relative to the tree, if it exists
// as a loadable module.
func (t *ModuleTree) Path(name string) (string, bool) {
	p, ok := t.paths[kmod.NormalizeName(name)]
	return p, ok
}

// Builtin reports whether module name is compiled into the kernel.
func (t *ModuleTree) Builtin(name string) bool { return t.builtin[kmod.NormalizeName(name)] }

// Len returns the number of loadable modules in the tree.
func (t *ModuleTree) Len() int { return len(t.paths) }

// Module is one module selected for the image.
type Module struct {
	Name string
	// Path is the path inside lib/modules/<release> in the image, always
	// uncompressed (".ko"), e.g. "kernel/drivers/net/virtio_net.ko".
	Path string
	// Src is the source file in the tree (possibly compressed).
	Src  string
	Info Modinfo
}

// ModuleSet is a dependency-closed set of modules.
type ModuleSet struct {
	Release string
	// Modules sorted by Path.
	Modules []Module
	byName  map[string]*Module
	// Requested modules that are compiled into the kernel.
	Builtin []string
	// Requested modules the kernel has neither as module nor built in.
	Missing []string
	// Soft dependencies ("module: dep") nothing in the kernel provides.
	SoftMissing []string
	// builtinRaw is copied as modules.builtin.
	builtinRaw []byte
}

// expand replaces the directory entries of names (those ending in '/', a
// path relative to the tree such as "kernel/drivers/net/ethernet/") by the
// names of every module below that directory, in path order.
func (t *ModuleTree) expand(names []string) []string {
	var out []string
	for _, n := range names {
		dir, ok := strings.CutSuffix(n, "/")
		if !ok {
			out = append(out, n)
			continue
		}
		var below []string
		for name, rel := range t.paths {
			if strings.HasPrefix(rel, dir+"/") {
				below = append(below, rel+"\x00"+name)
			}
		}
		sort.Strings(below)
		for _, b := range below {
			_, name, _ := strings.Cut(b, "\x00")
			out = append(out, name)
		}
	}
	return out
}

// Closure selects the requested modules and, transitively, every module
// they depend on (depends= of .modinfo) and every loadable module that
// provides one of their soft dependencies (softdep=, e.g. libcrc32c's
// "pre: crc32c": without it, libcrc32c's init calls request_module, which
// has no modprobe to run in netinit's image). Requested names that are built
// in or missing are recorded in the set rather than failing; a hard
// dependency that can be found nowhere is an error, since the module could
// never load; an unresolvable soft dependency is listed in SoftMissing.
// A name ending in '/' is a directory of the tree: every module below it.
func (t *ModuleTree) Closure(names []string) (*ModuleSet, error) {
	s := &ModuleSet{Release: t.Release, byName: map[string]*Module{}, builtinRaw: t.builtinRaw}
	var queue []string
	seen := map[string]bool{}
	for _, n := range t.expand(names) {
		n = kmod.NormalizeName(n)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		switch {
		case t.paths[n] != "":
			queue = append(queue, n)
		case t.builtin[n]:
			s.Builtin = append(s.Builtin, n)
		default:
			s.Missing = append(s.Missing, n)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		src := filepath.Join(t.Dir, filepath.FromSlash(t.paths[n]))
		mi, err := ReadModinfo(src)
		if err != nil {
			return nil, err
		}
		m := &Module{Name: n, Path: uncompressedPath(t.paths[n]), Src: src, Info: mi}
		s.byName[n] = m
		for _, v := range mi.SoftDeps {
			sd, err := kmod.ParseSoftdep(v)
			if err != nil {
				return nil, fmt.Errorf("module %s: softdep %q: %w", n, v, err)
			}
			for _, name := range append(sd.Pre, sd.Post...) {
				mods, err := t.resolveSoft(name)
				if err != nil {
					return nil, err
				}
				if len(mods) == 0 && !t.softBuiltin(name) {
					s.SoftMissing = append(s.SoftMissing, n+": "+name)
				}
				for _, d := range mods {
					if !seen[d] {
						seen[d] = true
						queue = append(queue, d)
					}
				}
			}
		}
		for _, d := range mi.Depends {
			if seen[d] {
				continue
			}
			seen[d] = true
			if t.paths[d] == "" {
				if t.builtin[d] {
					continue
				}
				return nil, fmt.Errorf("module %s depends on %s, which is not in %s", n, d, t.Dir)
			}
			queue = append(queue, d)
		}
	}
	for _, m := range s.byName {
		s.Modules = append(s.Modules, *m)
	}
	sort.Slice(s.Modules, func(i, j int) bool { return s.Modules[i].Path < s.Modules[j].Path })
	for i := range s.Modules {
		s.byName[s.Modules[i].Name] = &s.Modules[i]
	}
	sort.Strings(s.Builtin)
	sort.Strings(s.Missing)
	sort.Strings(s.SoftMissing)
	return s, nil
}

// softBuiltin reports whether the kernel has name (a module name or an
// alias) built in.
func (t *ModuleTree) softBuiltin(name string) bool {
	return t.builtin[kmod.NormalizeName(name)] || len(t.builtinAliases.Match(name)) > 0
}

func uncompressedPath(p string) string {
	for _, s := range ModuleSuffixes[1:] {
		if strings.HasSuffix(p, s) {
			return strings.TrimSuffix(p, s) + ".ko"
		}
	}
	return p
}

// Has reports whether module name is in the set.
func (s *ModuleSet) Has(name string) bool { return s.byName[kmod.NormalizeName(name)] != nil }

// Get returns module name from the set.
func (s *ModuleSet) Get(name string) (Module, bool) {
	m := s.byName[kmod.NormalizeName(name)]
	if m == nil {
		return Module{}, false
	}
	return *m, true
}

// Deps returns the full transitive dependency list of module name in
// modules.dep order: every module appears before the modules it depends
// on, so loading the list from the end to the start satisfies all
// dependencies (this is how modprobe(8) consumes modules.dep).
func (s *ModuleSet) Deps(name string) []string {
	var order []string // post-order: dependencies first
	state := map[string]int{}
	var visit func(n string)
	visit = func(n string) {
		if state[n] != 0 {
			return // done, or a cycle (modpost rejects those anyway)
		}
		state[n] = 1
		if m := s.byName[n]; m != nil {
			for _, d := range m.Info.Depends {
				if s.byName[d] != nil {
					visit(d)
				}
			}
		}
		state[n] = 2
		order = append(order, n)
	}
	visit(kmod.NormalizeName(name))
	order = order[:len(order)-1] // drop the module itself
	out := make([]string, len(order))
	for i, n := range order {
		out[len(order)-1-i] = n
	}
	return out
}

// ModulesDep renders modules.dep in kmod's text format:
//
//	kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
//
// One line per module in the set, sorted by path; dependency paths are
// relative to lib/modules/<release> and ordered as in Deps.
func (s *ModuleSet) ModulesDep() []byte {
	var b bytes.Buffer
	for _, m := range s.Modules {
		b.WriteString(m.Path)
		b.WriteByte(':')
		for _, d := range s.Deps(m.Name) {
			b.WriteByte(' ')
			b.WriteString(s.byName[d].Path)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ModulesAlias renders modules.alias in kmod's format:
//
//	alias virtio:d00000001v* virtio_net
//
// Lines are sorted by module path, then in .modinfo order.
func (s *ModuleSet) ModulesAlias() []byte {
	return s.directives("# Aliases extracted from modules themselves.\n", func(m Module) []string { return m.Info.Aliases },
		func(m Module, a string) string { return "alias " + a + " " + m.Name })
}

// ModulesSoftdep renders modules.softdep in kmod's format:
//
//	softdep nf_tables pre: nfnetlink
//
// The soft dependencies themselves are only listed, not added to the set.
func (s *ModuleSet) ModulesSoftdep() []byte {
	return s.directives("# Soft dependencies extracted from modules themselves.\n", func(m Module) []string { return m.Info.SoftDeps },
		func(m Module, sd string) string { return "softdep " + m.Name + " " + sd })
}

// directives renders an index file of directives, as kmod.ParseAliases
// and kmod.ParseSoftdeps read them: head, then one line per value of each
// module, in module path order.
func (s *ModuleSet) directives(head string, values func(Module) []string, line func(Module, string) string) []byte {
	var b bytes.Buffer
	b.WriteString(head)
	for _, m := range s.Modules {
		for _, v := range values(m) {
			b.WriteString(line(m, v) + "\n")
		}
	}
	return b.Bytes()
}

// ModulesBuiltin returns modules.builtin as shipped with the kernel (the
// list of modules compiled in, so a loader can treat them as present).
func (s *ModuleSet) ModulesBuiltin() []byte { return s.builtinRaw }

// modulePath joins the module root of the image with a module path.
func (s *ModuleSet) modulePath(rel string) string {
	return path.Join("lib/modules", s.Release, rel)
}
