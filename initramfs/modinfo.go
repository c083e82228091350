// Package initramfs builds netinit's boot image: a gzip-compressed newc cpio
// archive holding /init, the few directories the kernel and netinit need, a
// /dev/console node, a selected set of kernel modules with generated
// kmod index files (modules.dep, modules.alias, modules.softdep,
// modules.builtin), and the firmware files those modules name.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/threefoldtech/netinit/boot/kmod"
	"github.com/ulikunitz/xz"
)

// Modinfo is the content of a kernel module's .modinfo ELF section, the
// same data `modinfo(8)` prints. Only the fields the image builder needs
// are broken out; all fields are kept in Fields in section order.
type Modinfo struct {
	// Name is the module name (name=), e.g. "virtio_net". Module names
	// always use '_' even when the file name uses '-'.
	Name string
	// Depends are the modules this one needs symbols from (depends=,
	// comma separated, computed by modpost at kernel build time).
	Depends []string
	// Aliases are the modalias patterns (alias=), e.g. "virtio:d00000001v*".
	Aliases []string
	// SoftDeps are the raw softdep= values, e.g. "pre: crc32c".
	SoftDeps []string
	// Fields are all key=value pairs in section order.
	Fields []Field
}

// A Field is one key=value entry of .modinfo.
type Field struct {
	Key, Value string
}

// ModuleSuffixes are the file name endings of kernel modules this package
// understands: plain, and the xz/gz compressed forms kmod also accepts
// (CONFIG_MODULE_COMPRESS_XZ / _GZIP). zstd is not supported.
var ModuleSuffixes = []string{".ko", ".ko.xz", ".ko.gz"}

// ModuleName returns the module name for a module file name: the base name
// without the .ko[.xz|.gz] suffix, with '-' replaced by '_' (kmod treats
// both as equal and the kernel reports names with '_'). ok is false if the
// name has no module suffix.
func ModuleName(file string) (name string, ok bool) {
	base := filepath.Base(file)
	for _, s := range ModuleSuffixes {
		if strings.HasSuffix(base, s) {
			return kmod.NormalizeName(strings.TrimSuffix(base, s)), true
		}
	}
	return "", false
}

// ReadModule returns the uncompressed ELF bytes of the module file at path.
func ReadModule(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".ko.xz"):
		xr, err := xz.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".ko.gz"):
		gr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		r = gr
	default:
		return raw, nil
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	return b, nil
}

// ReadModinfo reads the .modinfo section of the module file at path
// (.ko, .ko.xz or .ko.gz).
func ReadModinfo(path string) (Modinfo, error) {
	b, err := ReadModule(path)
	if err != nil {
		return Modinfo{}, err
	}
	mi, err := ParseModinfo(b)
	if err != nil {
		return Modinfo{}, fmt.Errorf("modinfo of %s: %w", path, err)
	}
	if mi.Name == "" {
		// Kernels before 5.x did not always record name=; kmod then
		// falls back to the file name.
		mi.Name, _ = ModuleName(path)
	}
	return mi, nil
}

// ParseModinfo parses the .modinfo section of an uncompressed module ELF
// image. The section is a sequence of NUL-terminated "key=value" strings
// (include/linux/moduleparam.h, __MODULE_INFO); padding NULs may appear
// between entries.
func ParseModinfo(elfImage []byte) (Modinfo, error) {
	f, err := elf.NewFile(bytes.NewReader(elfImage))
	if err != nil {
		return Modinfo{}, fmt.Errorf("parse ELF: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return Modinfo{}, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return Modinfo{}, fmt.Errorf("read .modinfo: %w", err)
	}
	return parseModinfoSection(data), nil
}

func parseModinfoSection(data []byte) Modinfo {
	var mi Modinfo
	for _, ent := range bytes.Split(data, []byte{0}) {
		if len(ent) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(ent), "=")
		if !ok {
			continue
		}
		mi.Fields = append(mi.Fields, Field{Key: k, Value: v})
		switch k {
		case "name":
			mi.Name = v
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					mi.Depends = append(mi.Depends, kmod.NormalizeName(d))
				}
			}
		case "alias":
			mi.Aliases = append(mi.Aliases, v)
		case "softdep":
			mi.SoftDeps = append(mi.SoftDeps, v)
		}
	}
	sort.Strings(mi.Depends)
	return mi
}

// Get returns the values of key, in section order.
func (m Modinfo) Get(key string) []string {
	var vs []string
	for _, f := range m.Fields {
		if f.Key == key {
			vs = append(vs, f.Value)
		}
	}
	return vs
}
