package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// File is an extra file placed in the image.
type File struct {
	Src  string // host path
	Dst  string // path in the image, e.g. "/bin/next"
	Mode uint32 // permission bits; 0 means: 0755 if Src is executable, else 0644
	Link string // if set, Dst is a symlink to Link and Src is unused
}

// ParseFile parses the -file flag syntax SRC:DST[:MODE], MODE in octal.
func ParseFile(s string) (File, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return File{}, fmt.Errorf("file %q: want SRC:DST[:MODE]", s)
	}
	f := File{Src: parts[0], Dst: parts[1]}
	if len(parts) == 3 {
		m, err := strconv.ParseUint(parts[2], 8, 32)
		if err != nil || m > 0o7777 {
			return File{}, fmt.Errorf("file %q: bad octal mode %q", s, parts[2])
		}
		f.Mode = uint32(m)
	}
	return f, nil
}

// Spec describes an image.
type Spec struct {
	// Init is the host path of the netinit binary, installed as /init.
	Init string
	// Modules is the module selection; nil means no modules at all.
	Modules *ModuleSet
	// Firmware is placed under /lib/firmware (SelectFirmware); nil: none.
	Firmware *FirmwareSet
	// Files are extra files.
	Files []File
	// Epoch is the mtime of every record (SOURCE_DATE_EPOCH).
	Epoch int64
	// Compress is the image's compression: "gzip" (default), "zstd",
	// "xz", "lz4" or "none" (see Compressors).
	Compress string
	// Base, when set, is an existing initramfs (e.g. 0-OS's) netinit is
	// baked into: its files are kept, its /init becomes /init.base, module
	// indexes are merged (and kmod's binary ones remade by depmod where
	// the base has them: kmodindex.go), and conflicts fail the build (see
	// mergeBase).
	Base string
}

// Compressors are the image compressions besides gzip (done in Go): the
// commands of Debian's zstd, xz-utils and lz4, whose output the kernel
// unpacks with CONFIG_RD_ZSTD / CONFIG_RD_XZ / CONFIG_RD_LZ4.
// Single-threaded, so the output is the same on every run. With every
// Ethernet driver of Debian's amd64 flavour (55 MB of cpio): gzip 16.1
// MiB, zstd 12.1 MiB, xz 10.9 MiB; under QEMU TCG the kernel unpacks zstd faster than gzip, xz ~10 s slower. A
// zstd window over the whole archive (--long=26) saves 75 KB but triples
// the kernel's unpacking time. xz needs CRC32 checks for the kernel's
// decoder (Documentation/staging/xz.rst). lz4 is the fastest to unpack
// (CONFIG_RD_LZ4; the kernel reads only lz4's legacy format, -l): for the
// cloud flavour (21 MB of cpio) gzip 7.4 MiB, lz4 -9 8.6 MiB, and under
// TCG the kernel reaches /init ~0.35 s sooner than with gzip (see
// docs/design.md, Release and boot paths); `make image` uses it.
var Compressors = map[string][]string{
	"zstd": {"zstd", "-19", "-T1", "-q", "-c"},
	"xz":   {"xz", "--check=crc32", "--lzma2=preset=6,dict=8MiB", "-T1", "-c"},
	"lz4":  {"lz4", "-l", "-9", "-q", "-c"},
}

// BaseDirs are the directories every image has: mount points for
// devtmpfs, proc, sysfs, the run and tmp tmpfs, plus /etc and /sbin.
var BaseDirs = []string{"dev", "proc", "sys", "run", "tmp", "etc", "sbin", "bin", "lib", "lib/modules"}

// Records returns the image content as cpio records, normalized and
// sorted by name (parents before children), ready to be written. File
// contents are read into memory, so the result is a snapshot of the inputs
// at call time.
func Records(spec Spec) ([]cpio.Record, error) {
	recs, _, err := records(spec)
	return recs, err
}

// records is Records, and what baking into spec.Base rewrote, in words.
func records(spec Spec) ([]cpio.Record, []string, error) {
	recs := map[string]cpio.Record{}
	var baked []string
	add := func(r cpio.Record) error {
		r.Name = cpio.Normalize(r.Name)
		if r.Name == "." || strings.HasPrefix(r.Name, "../") || r.Name == ".." {
			return fmt.Errorf("bad path %q in image", r.Name)
		}
		if _, dup := recs[r.Name]; dup {
			return fmt.Errorf("%s is in the image twice", r.Name)
		}
		recs[r.Name] = r
		return nil
	}
	for _, d := range BaseDirs {
		if err := add(cpio.Directory(d, 0o755)); err != nil {
			return nil, nil, err
		}
	}
	// /tmp is world writable, sticky.
	recs["tmp"] = cpio.Directory("tmp", 0o1777)

	// The kernel opens /dev/console for init's stdin/out/err before /init
	// runs (init/main.c: console_on_rootfs); devtmpfs is not mounted yet,
	// so the node must be in the archive itself: char 5:1.
	if err := add(cpio.CharDev("dev/console", 0o600, 5, 1)); err != nil {
		return nil, nil, err
	}

	if spec.Init == "" {
		return nil, nil, fmt.Errorf("no init binary given")
	}
	initBytes, err := os.ReadFile(spec.Init)
	if err != nil {
		return nil, nil, fmt.Errorf("read init: %w", err)
	}
	if err := add(cpio.StaticRecord(initBytes, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755})); err != nil {
		return nil, nil, err
	}

	if s := spec.Modules; s != nil {
		for _, m := range s.Modules {
			b, err := ReadModule(m.Src)
			if err != nil {
				return nil, nil, err
			}
			if err := add(cpio.StaticRecord(b, cpio.Info{Name: s.modulePath(m.Path), Mode: cpio.S_IFREG | 0o644})); err != nil {
				return nil, nil, err
			}
		}
		idx := map[string][]byte{
			"modules.dep":     s.ModulesDep(),
			"modules.alias":   s.ModulesAlias(),
			"modules.softdep": s.ModulesSoftdep(),
			"modules.builtin": s.ModulesBuiltin(),
		}
		for n, b := range idx {
			if err := add(cpio.StaticRecord(b, cpio.Info{Name: s.modulePath(n), Mode: cpio.S_IFREG | 0o644})); err != nil {
				return nil, nil, err
			}
		}
	}

	if fw := spec.Firmware; fw != nil {
		for _, f := range fw.Files {
			name := path.Join("lib/firmware", f.Name)
			if f.Link != "" {
				if err := add(cpio.Symlink(name, f.Link)); err != nil {
					return nil, nil, err
				}
				continue
			}
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return nil, nil, fmt.Errorf("read firmware: %w", err)
			}
			if err := add(cpio.StaticRecord(b, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o644})); err != nil {
				return nil, nil, err
			}
		}
	}

	for _, f := range spec.Files {
		if f.Link != "" {
			if err := add(cpio.Symlink(f.Dst, f.Link)); err != nil {
				return nil, nil, err
			}
			continue
		}
		b, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s for %s: %w", f.Src, f.Dst, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
			if st, err := os.Stat(f.Src); err == nil && st.Mode()&0o111 != 0 {
				mode = 0o755
			}
		}
		if err := add(cpio.StaticRecord(b, cpio.Info{Name: f.Dst, Mode: cpio.S_IFREG | uint64(mode&0o7777)})); err != nil {
			return nil, nil, err
		}
	}

	if spec.Base != "" {
		base, err := readBase(spec.Base)
		if err != nil {
			return nil, nil, err
		}
		note, err := bakeInternet(base)
		if err != nil {
			return nil, nil, err
		}
		if note != "" {
			baked = append(baked, note)
		}
		releases := kmodReleases(base, recs)
		if recs, err = mergeBase(base, recs); err != nil {
			return nil, nil, err
		}
		notes, err := reindexKmod(recs, releases)
		if err != nil {
			return nil, nil, err
		}
		baked = append(baked, notes...)
	}

	// The kernel's unpacker (init/initramfs.c) does not create missing
	// parent directories, so add every parent explicitly.
	for name := range recs {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := recs[d]; !ok {
				recs[d] = cpio.Directory(d, 0o755)
			}
		}
	}

	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	// Plain byte order puts every directory before its contents ("a" <
	// "a/b"), which is the order the unpacker needs.
	sort.Strings(names)
	out := make([]cpio.Record, 0, len(names))
	links := map[uint64]uint64{} // a base's hard-link groups: old ino -> new
	for i, n := range names {
		r := recs[n]
		oldIno, linked := r.Ino, r.NLink > 1 && r.Mode&cpio.S_IFMT == cpio.S_IFREG
		r = cpio.MakeReproducible(r)
		r.MTime = uint64(spec.Epoch)
		// Unique inode numbers and nlink 1: the kernel's unpacker treats
		// regular files with nlink >= 2 and an equal (ino, dev) as hard
		// links, so neither may repeat — except within a base image's own
		// hard-link groups, which keep theirs.
		r.Ino = uint64(i + 1)
		r.NLink = 1
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			r.NLink = 2
		}
		if linked {
			if ino, ok := links[oldIno]; ok {
				r.Ino = ino
			} else {
				links[oldIno] = r.Ino
			}
			r.NLink = 2
		}
		out = append(out, r)
	}
	return out, baked, nil
}

// Stats describes a written image.
type Stats struct {
	Records   int
	CPIOSize  int64 // uncompressed archive
	ImageSize int64 // gzip-compressed archive
	InitSize  int64
	// Baked says what baking into a base image rewrote of the base's
	// files (empty: nothing).
	Baked []string
}

// Write writes the compressed (spec.Compress) newc cpio image for spec to w.
//
// The gzip header is deterministic: no file name, zero mtime (RFC 1952
// section 2.3.1: MTIME = 0 means no time stamp). The kernel needs
// CONFIG_RD_GZIP=y to unpack it.
func Write(w io.Writer, spec Spec) (Stats, error) {
	recs, baked, err := records(spec)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Baked: baked}
	st.Records = len(recs)
	for _, r := range recs {
		if r.Name == "init" {
			st.InitSize = int64(r.FileSize)
		}
	}
	cw := &countWriter{w: w}
	var zw io.WriteCloser
	switch c := spec.Compress; c {
	case "", "gzip":
		// Level 6: on module-heavy archives level 9 costs ten times the
		// CPU for ~1% smaller output.
		zw, err = gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	case "none":
		zw = nopCloser{cw}
	default:
		zw, err = newCmdCompressor(c, cw)
	}
	if err != nil {
		return Stats{}, err
	}
	raw := &countWriter{w: zw}
	rw := cpio.Newc.Writer(raw)
	if err := cpio.WriteRecords(rw, recs); err != nil {
		return Stats{}, fmt.Errorf("write cpio: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return Stats{}, fmt.Errorf("write cpio trailer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Stats{}, fmt.Errorf("compressing the image: %w", err)
	}
	st.CPIOSize = raw.n
	st.ImageSize = cw.n
	return st, nil
}

// WriteFile writes the image to path atomically (temp file + rename).
func WriteFile(path string, spec Spec) (Stats, error) {
	var buf bytes.Buffer
	st, err := Write(&buf, spec)
	if err != nil {
		return Stats{}, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return Stats{}, fmt.Errorf("write image: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return Stats{}, fmt.Errorf("write image: %w", err)
	}
	return st, nil
}

// Decompress returns the archive inside a gzip, xz, zstd or lz4 (legacy
// format) compressed image (told by its magic number), or b itself when
// it is none of them.
func Decompress(b []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gunzip image: %w", err)
		}
		r = zr
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("unxz image: %w", err)
		}
		r = xr
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return decompressCmd(b, "zstd", "-d", "-c", "--long=31", "-q")
	case bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}): // lz4 legacy frame
		return decompressCmd(b, "lz4", "-d", "-c", "-q")
	default:
		return b, nil
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompressing image: %w", err)
	}
	return out, nil
}

// decompressCmd runs a decompressor command over b.
func decompressCmd(b []byte, argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("un%s image: %w", argv[0], err)
	}
	return out, nil
}

// ReadImage reads a newc cpio image (compressed as Decompress knows, or
// plain) back into records, keyed by normalized name, and their order.
func ReadImage(b []byte) (map[string]cpio.Record, []string, error) {
	data, err := Decompress(b)
	if err != nil {
		return nil, nil, err
	}
	rr := cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(data))}
	all, err := cpio.ReadAllRecords(rr)
	if err != nil {
		return nil, nil, fmt.Errorf("read cpio: %w", err)
	}
	m := map[string]cpio.Record{}
	var order []string
	for _, r := range all {
		m[r.Name] = r
		order = append(order, r.Name)
	}
	return m, order, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// cmdCompressor pipes the archive through one of Compressors.
type cmdCompressor struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	err bytes.Buffer
}

func newCmdCompressor(name string, out io.Writer) (*cmdCompressor, error) {
	argv, ok := Compressors[name]
	if !ok {
		return nil, fmt.Errorf("unknown compression %q (want gzip, zstd, xz, lz4 or none)", name)
	}
	c := &cmdCompressor{cmd: exec.Command(argv[0], argv[1:]...)}
	c.cmd.Stdout = out
	c.cmd.Stderr = &c.err
	in, err := c.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.in = in
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s compression: %w", name, err)
	}
	return c, nil
}

func (c *cmdCompressor) Write(p []byte) (int, error) { return c.in.Write(p) }

func (c *cmdCompressor) Close() error {
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w: %s", c.cmd.Path, err, bytes.TrimSpace(c.err.Bytes()))
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
