package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// kmod's binary indexes in a baked image.
//
// A base image with kmod (0-OS's 0-initramfs: packages/kmod.sh, and
// `depmod -a -b` after modules_install in packages/linux-kernel.sh) has
// depmod's binary indexes beside the text ones: modules.dep.bin,
// modules.alias.bin, modules.symbols.bin, modules.builtin.bin. kmod's
// modprobe and modinfo read only those: libkmod looks names up in
// DIR/modules.dep.bin and aliases in DIR/modules.alias.bin
// (libkmod/libkmod.c kmod_search_moddep, kmod_lookup_alias_from_alias_bin)
// and never falls back to the text files — a missing .bin is "Module X not
// found", like a .bin that lacks X. Baking merges the text indexes line
// by line (mergeIndex), which netinit's own loader reads; the base's .bin
// files would still describe the base's modules alone, and a module only
// netinit added would be invisible to the base's modprobe, which serves
// the kernel's request_module() once netinit hands the helper back, and
// 0-OS's local-modprobe. So for every release whose .bin the base has and
// netinit adds modules to, depmod (Debian's kmod) is run over the merged
// module tree at build time and its binary indexes, and the text files it
// writes that the merge does not (modules.symbols, modules.devname), take
// the base's place. The format is the one kmod has read since v9 (index
// version 2.1), 0-OS's kmod 26 included.

// depmodBin is depmod, from Debian's kmod package.
const depmodBin = "depmod"

// depmodInputs are the files of a release directory depmod reads and does
// not write.
var depmodInputs = map[string]bool{"modules.order": true, "modules.builtin": true, "modules.builtin.modinfo": true}

// depmodConfDirs are where kmod's depmod reads its configuration
// (depmod.d(5)), lowest priority first: a base's own search/override
// rules apply as they did when its indexes were made.
var depmodConfDirs = []string{"lib/depmod.d", "usr/lib/depmod.d", "run/depmod.d", "etc/depmod.d"}

// kmodReleases are the releases whose binary indexes baking must remake:
// the base has modules.dep.bin there and ours adds modules to it.
func kmodReleases(base, ours map[string]cpio.Record) []string {
	var out []string
	seen := map[string]bool{}
	for n, r := range ours {
		rel, ok := moduleRelease(n)
		if !ok || seen[rel] || r.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		if _, kmod := base[path.Join("lib/modules", rel, "modules.dep.bin")]; kmod {
			seen[rel] = true
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out
}

// moduleRelease is the release of a path under lib/modules/RELEASE/.
func moduleRelease(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "lib/modules/")
	if !ok {
		return "", false
	}
	rel, _, ok := strings.Cut(rest, "/")
	return rel, ok && rel != ""
}

// reindexKmod runs depmod over the merged image's module tree of each
// release and puts its binary indexes (and the text files the merge does
// not make) into recs. It returns what it did, in words.
func reindexKmod(recs map[string]cpio.Record, releases []string) ([]string, error) {
	if len(releases) == 0 {
		return nil, nil
	}
	bin, err := exec.LookPath(depmodBin)
	if err != nil {
		return nil, fmt.Errorf("baking: the base image's kmod reads binary module indexes, which must be remade for the modules netinit adds: %w (install Debian's kmod)", err)
	}
	var notes []string
	for _, rel := range releases {
		files, err := depmod(bin, recs, rel)
		if err != nil {
			return nil, fmt.Errorf("baking: module indexes of %s: %w", rel, err)
		}
		notes = append(notes, fmt.Sprintf("/lib/modules/%s/{%s}: remade by depmod over the merged modules (kmod reads these, not the text indexes)", rel, strings.Join(files, ",")))
	}
	return notes, nil
}

// depmod writes the release's module tree and the base's depmod.d files
// from recs into a scratch root, runs depmod there, and replaces the
// records of what it wrote (but the text indexes mergeIndex made). It
// returns the names of the files it took.
func depmod(bin string, recs map[string]cpio.Record, rel string) ([]string, error) {
	root, err := os.MkdirTemp("", "netinit-depmod-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	dir := path.Join("lib/modules", rel)
	conf := filepath.Join(root, "depmod.d")
	if err := os.Mkdir(conf, 0o755); err != nil {
		return nil, err
	}
	for n, r := range recs {
		if strings.HasPrefix(n, dir+"/") {
			if err := writeRecord(filepath.Join(root, filepath.FromSlash(n)), r); err != nil {
				return nil, err
			}
		}
	}
	// One directory, a higher priority's file replacing a lower's of the
	// same name, as depmod.d(5) orders them.
	for _, d := range depmodConfDirs {
		for n, r := range recs {
			if path.Dir(n) == d && strings.HasSuffix(n, ".conf") && r.Mode&cpio.S_IFMT == cpio.S_IFREG {
				if err := writeRecord(filepath.Join(conf, path.Base(n)), r); err != nil {
					return nil, err
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-b", root, "-C", conf, rel)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	ents, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		return nil, err
	}
	var took []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, "modules.") || depmodInputs[n] || indexFiles[n] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(dir), n))
		if err != nil {
			return nil, err
		}
		name := path.Join(dir, n)
		recs[name] = cpio.StaticRecord(b, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o644})
		took = append(took, n)
	}
	if !slices.Contains(took, "modules.dep.bin") {
		return nil, errors.New("depmod wrote no modules.dep.bin")
	}
	return took, nil
}

// writeRecord writes a file, symlink or directory record at dst.
func writeRecord(dst string, r cpio.Record) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch r.Mode & cpio.S_IFMT {
	case cpio.S_IFREG:
		return os.WriteFile(dst, content(r), 0o644)
	case cpio.S_IFLNK:
		return os.Symlink(string(content(r)), dst)
	case cpio.S_IFDIR:
		return os.MkdirAll(dst, 0o755)
	}
	return nil // device nodes have no place in a module tree
}
