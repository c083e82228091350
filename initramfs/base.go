package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// BaseInit is where a base image's own /init is kept when netinit's image
// is baked into it.
const BaseInit = "init.base"

// InternetService is 0-OS's zinit service `internet` (github.com/
// threefoldtech/zos, bootstrap/etc/zinit/internet.yaml: exec: internet,
// oneshot, after udev-trigger), which `bootstrap` and `boot` wait for. Its
// program (zos cmds/internet) builds the zos bridge from the first
// physical, plugged NIC not in a bridge that gets a DHCP lease, and starts
// dhcpcd on it: on a node netinit configured it finds no such NIC (the
// uplink is the bridge's port) and exits 1 after 15 minutes, or enslaves a
// second NIC into netinit's bridge with a second DHCP client. Baking
// rewrites its exec so that the same service runs InternetExec instead.
const InternetService = "etc/zinit/internet.yaml"

// InternetExec is netinit's equivalent of `internet`: the uplink is up and
// the probe targets take a TCP connection through it (cmd/netinit
// wait-online). /init is netinit in the baked image and in the root it
// switches to.
const InternetExec = "/init wait-online"

// bakeInternet rewrites the exec line of the base's InternetService (when
// it has one) to InternetExec, with a comment saying so at the top; every
// other line stays as the base has it. It returns what it did in words
// ("" when the base has no such service: nothing changed).
func bakeInternet(base map[string]cpio.Record) (string, error) {
	r, ok := base[InternetService]
	if !ok {
		return "", nil
	}
	if r.Mode&cpio.S_IFMT != cpio.S_IFREG {
		return "", fmt.Errorf("base image: /%s is %s, not a file: cannot rewrite it", InternetService, kind(r.Mode&cpio.S_IFMT))
	}
	lines := strings.SplitAfter(string(content(r)), "\n")
	at, was := -1, ""
	for i, l := range lines {
		v, ok := strings.CutPrefix(strings.TrimRight(l, "\r\n"), "exec:")
		if !ok {
			continue // indented lines, comments and other keys
		}
		if at >= 0 {
			return "", fmt.Errorf("base image: /%s has two exec: lines", InternetService)
		}
		at, was = i, strings.TrimSpace(v)
	}
	switch {
	case at < 0:
		return "", fmt.Errorf("base image: /%s has no exec: line to rewrite", InternetService)
	case was == "" || strings.ContainsAny(was[:1], "|>"):
		// A block scalar spans more lines: not zos' file, whose exec is
		// one word.
		return "", fmt.Errorf("base image: /%s: exec %q is not a one-line command; not rewritten", InternetService, was)
	}
	lines[at] = "exec: " + InternetExec + "\n"
	text := "# Baked by netinit (mkinitramfs -base): this service ran `" + was + "`, 0-OS's\n" +
		"# network bootstrap. netinit configured the network and the zos bridge at\n" +
		"# boot; `netinit wait-online` waits until the uplink reaches the probe\n" +
		"# targets and changes nothing. The rest of this file is the base's.\n" +
		strings.Join(lines, "")
	r.ReaderAt = strings.NewReader(text)
	r.FileSize = uint64(len(text))
	base[InternetService] = r
	return fmt.Sprintf("/%s: exec %s -> exec %s (netinit takes the place of 0-OS's internet service)",
		InternetService, was, InternetExec), nil
}

// indexFiles are the module index files merged line by line when both
// images have them for the same kernel release.
var indexFiles = map[string]bool{"modules.dep": true, "modules.alias": true, "modules.softdep": true, "modules.builtin": true}

// readBase reads the base image at p (newc cpio, plain or gzip/xz/zstd
// compressed) into records by normalized name.
func readBase(p string) (map[string]cpio.Record, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	recs, _, err := ReadImage(b)
	if err != nil {
		return nil, fmt.Errorf("base image %s: %w", p, err)
	}
	out := map[string]cpio.Record{}
	for n, r := range recs {
		n = cpio.Normalize(n)
		if n == "." || n == ".." || strings.HasPrefix(n, "../") {
			continue // the root itself, or a path that would escape it
		}
		r.Name = n
		out[n] = r
	}
	return out, nil
}

// mergeBase lays netinit's records (ours, from Records) over a base image:
// every base file stays, the base's /init becomes /init.base, netinit is
// /init, module index files of the same release are merged (lines of
// both, modules.dep by module), and identical entries are kept once. Any
// other path both images have with different content is a conflict: they
// are all returned as an error, nothing is overwritten.
func mergeBase(base, ours map[string]cpio.Record) (map[string]cpio.Record, error) {
	out := map[string]cpio.Record{}
	for n, r := range base {
		out[n] = r
	}
	if r, ok := out["init"]; ok {
		if _, dup := out[BaseInit]; dup {
			return nil, fmt.Errorf("base image conflicts: it has both /init and /%s", BaseInit)
		}
		delete(out, "init")
		r.Name = BaseInit
		out[BaseInit] = r
	}
	var conflicts []string
	for _, r := range ours {
		b, ok := out[r.Name]
		if !ok {
			out[r.Name] = r
			continue
		}
		bt, ot := b.Mode&cpio.S_IFMT, r.Mode&cpio.S_IFMT
		switch {
		case bt == cpio.S_IFLNK && ot == cpio.S_IFDIR && slices.Contains(BaseDirs, r.Name) && !holds(ours, r.Name):
			// One of netinit's empty skeleton directories is a symlink in
			// the base: 0-initramfs's root has run -> var/run
			// (initramfs.sh, "Ensure /run -> /var/run"). The base's link
			// stays; what netinit mounts there lands where it points.
		case bt != ot:
			conflicts = append(conflicts, fmt.Sprintf("/%s: %s in the base, %s in netinit's image", r.Name, kind(bt), kind(ot)))
		case ot == cpio.S_IFDIR:
			// Same directory: the base's mode stays.
		case ot == cpio.S_IFREG && indexFiles[path.Base(r.Name)] && strings.HasPrefix(r.Name, "lib/modules/"):
			merged, err := mergeIndex(path.Base(r.Name), content(b), content(r))
			if err != nil {
				conflicts = append(conflicts, fmt.Sprintf("/%s: %v", r.Name, err))
				continue
			}
			r.ReaderAt = bytes.NewReader(merged)
			r.FileSize = uint64(len(merged))
			out[r.Name] = r
		case ot == cpio.S_IFCHR || ot == cpio.S_IFBLK:
			if b.Rmajor != r.Rmajor || b.Rminor != r.Rminor {
				conflicts = append(conflicts, fmt.Sprintf("/%s: device %d:%d in the base, %d:%d in netinit's image", r.Name, b.Rmajor, b.Rminor, r.Rmajor, r.Rminor))
			}
		case !bytes.Equal(content(b), content(r)):
			conflicts = append(conflicts, fmt.Sprintf("/%s: differs between the base and netinit's image", r.Name))
		}
	}
	if len(conflicts) > 0 {
		sort.Strings(conflicts)
		return nil, fmt.Errorf("base image conflicts (nothing overwritten):\n  %s", strings.Join(conflicts, "\n  "))
	}
	return out, nil
}

// holds reports whether recs has a record below the directory dir.
func holds(recs map[string]cpio.Record, dir string) bool {
	for n := range recs {
		if strings.HasPrefix(n, dir+"/") {
			return true
		}
	}
	return false
}

func kind(t uint64) string {
	switch t {
	case cpio.S_IFDIR:
		return "a directory"
	case cpio.S_IFREG:
		return "a file"
	case cpio.S_IFLNK:
		return "a symlink"
	}
	return fmt.Sprintf("type %o", t)
}

func content(r cpio.Record) []byte {
	if r.ReaderAt == nil {
		return nil
	}
	b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	return b
}

// mergeIndex merges two module index files: the base's lines, then ours
// that the base lacks. modules.dep lines are keyed by module path: the same
// module with other dependencies means two different module builds, which
// is a conflict.
func mergeIndex(name string, base, ours []byte) ([]byte, error) {
	have := map[string]string{}
	var out bytes.Buffer
	out.Write(base)
	if len(base) > 0 && !bytes.HasSuffix(base, []byte("\n")) {
		out.WriteByte('\n')
	}
	key := func(l string) string {
		if name == "modules.dep" {
			k, _, _ := strings.Cut(l, ":")
			return k
		}
		return l
	}
	for _, l := range strings.Split(string(base), "\n") {
		have[key(l)] = l
	}
	for _, l := range strings.Split(string(ours), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if prev, ok := have[key(l)]; ok {
			if prev != l {
				return nil, fmt.Errorf("%s: %q in the base, %q in netinit's image", name, prev, l)
			}
			continue
		}
		have[key(l)] = l
		out.WriteString(l + "\n")
	}
	return out.Bytes(), nil
}
