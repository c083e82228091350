package guestlab

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
)

// libDirs are where a Debian amd64 system's dynamic loader looks for a
// library that is neither in ld.so.cache nor on an RPATH (glibc's system
// directories, multiarch first). The image has no ld.so.cache: each
// library goes in at the path it was found on, which is one of these.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// Libraries is what the program at path needs to run: its dynamic loader
// (PT_INTERP) and every shared library it links, transitively (DT_NEEDED),
// as the paths the loader finds them at. A static program needs nothing.
// This is what ldd lists, read from the ELF files instead of running the
// loader.
func Libraries(path string) ([]string, error) {
	var (
		out   []string
		seen  = map[string]bool{}
		queue = []string{path}
	)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		f, err := elf.Open(p)
		if err != nil {
			return nil, fmt.Errorf("libraries of %s: %w", path, err)
		}
		interp, err := interpreter(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("libraries of %s: %s: %w", path, p, err)
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("libraries of %s: %s: %w", path, p, err)
		}
		if interp != "" && !seen[interp] {
			seen[interp] = true
			out = append(out, interp)
		}
		for _, n := range needed {
			lib, err := findLibrary(n)
			if err != nil {
				return nil, fmt.Errorf("libraries of %s: %s needs %w", path, p, err)
			}
			if !seen[lib] {
				seen[lib] = true
				out = append(out, lib)
				queue = append(queue, lib)
			}
		}
	}
	return out, nil
}

// interpreter is f's PT_INTERP, "" for a static program.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", err
		}
		if n := len(b); n > 0 && b[n-1] == 0 {
			b = b[:n-1]
		}
		return string(b), nil
	}
	return "", nil
}

// findLibrary is the path of the library named soname in libDirs.
func findLibrary(soname string) (string, error) {
	if filepath.Base(soname) != soname {
		return "", fmt.Errorf("library %q: not a plain name", soname)
	}
	for _, d := range libDirs {
		p := filepath.Join(d, soname)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("library %s: in none of %v", soname, libDirs)
}
