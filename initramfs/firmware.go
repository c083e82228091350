package initramfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// The image carries, for each module it includes, the firmware files the
// module names (firmware= of .modinfo, what `modinfo -F firmware` prints
// and dracut copies), taken from unpacked firmware packages
// (fetch-firmware.sh). The kernel loads them itself from /lib/firmware
// (drivers/base/firmware_loader/main.c, fw_get_filesystem_firmware: the
// "direct" load, no udev or user-mode helper); a file no package provides
// is listed, not fatal: the driver says so in the kernel log when it asks,
// and netinit reports that (boot/kmsg).

// FirmwareRef is one firmware file a module names.
type FirmwareRef struct {
	Module string
	File   string // relative to /lib/firmware, e.g. "rtl_nic/rtl8168h-2.fw"
}

func (r FirmwareRef) String() string { return r.Module + ": " + r.File }

// Firmware lists the firmware files the set's modules name, sorted by
// file, then module.
func (s *ModuleSet) Firmware() []FirmwareRef {
	var out []FirmwareRef
	for _, m := range s.Modules {
		for _, f := range m.Info.Get("firmware") {
			out = append(out, FirmwareRef{Module: m.Name, File: f})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Module < out[j].Module
	})
	return out
}

// FirmwareFile is one file (or symlink) placed under /lib/firmware.
type FirmwareFile struct {
	Name string // relative to lib/firmware
	Src  string // host path of a regular file; "" for a symlink
	Link string // the symlink's target as the package has it
	Size int64
}

// FirmwareSet is what SelectFirmware found for a module set.
type FirmwareSet struct {
	Files []FirmwareFile // sorted by Name; symlinks with their targets
	// Found are the references a file was found for; Missing those no
	// package provides.
	Found, Missing []FirmwareRef
}

// Bytes is the size of the regular files.
func (f *FirmwareSet) Bytes() int64 {
	var n int64
	for _, x := range f.Files {
		n += x.Size
	}
	return n
}

// SelectFirmware takes from dir (an unpacked lib/firmware) the files refs
// name. A name that is a symlink in dir (linux-firmware's "ice.pkg ->
// ice-1.3.30.0.pkg") is carried as that symlink plus what it points to,
// which must stay inside dir.
func SelectFirmware(dir string, refs []FirmwareRef) (*FirmwareSet, error) {
	set := &FirmwareSet{}
	files := map[string]FirmwareFile{}
	for _, r := range refs {
		ok, err := addFirmware(dir, r.File, files, 0)
		if err != nil {
			return nil, fmt.Errorf("firmware %s of %s: %w", r.File, r.Module, err)
		}
		if ok {
			set.Found = append(set.Found, r)
		} else {
			set.Missing = append(set.Missing, r)
		}
	}
	for _, f := range files {
		set.Files = append(set.Files, f)
	}
	sort.Slice(set.Files, func(i, j int) bool { return set.Files[i].Name < set.Files[j].Name })
	return set, nil
}

// addFirmware adds name (and, for a symlink, its target) to files; false
// when dir has no such file.
func addFirmware(dir, name string, files map[string]FirmwareFile, depth int) (bool, error) {
	if _, ok := files[name]; ok {
		return true, nil
	}
	if depth > 8 {
		return false, fmt.Errorf("too many symlinks")
	}
	if !fs.ValidPath(name) {
		return false, fmt.Errorf("not a relative path inside lib/firmware")
	}
	src := filepath.Join(dir, filepath.FromSlash(name))
	st, err := os.Lstat(src)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch {
	case st.Mode().IsRegular():
		files[name] = FirmwareFile{Name: name, Src: src, Size: st.Size()}
		return true, nil
	case st.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return false, err
		}
		target := path.Join(path.Dir(name), link)
		if path.IsAbs(link) || !fs.ValidPath(target) {
			return false, fmt.Errorf("symlink to %q leaves lib/firmware", link)
		}
		ok, err := addFirmware(dir, target, files, depth+1)
		if err != nil || !ok {
			return false, err
		}
		files[name] = FirmwareFile{Name: name, Link: link}
		return true, nil
	default:
		return false, fmt.Errorf("not a regular file")
	}
}

// MissingList renders the references no package provides, one
// "module: file" a line.
func (f *FirmwareSet) MissingList() []byte {
	var b strings.Builder
	for _, r := range f.Missing {
		b.WriteString(r.String() + "\n")
	}
	return []byte(b.String())
}
