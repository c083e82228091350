package coldplug

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// finitLoader loads modules with finit_module(2).
type finitLoader struct{}

func defaultLoader() Loader { return finitLoader{} }

// Load loads the module file at path. Compressed files (.ko.xz, .ko.zst,
// .ko.gz) are handed to the kernel with MODULE_INIT_COMPRESSED_FILE, which
// needs CONFIG_MODULE_DECOMPRESS (Linux >= 5.17); the image builder
// normally stores them decompressed. EEXIST (already loaded, possibly by
// a concurrent load of the same module elsewhere) is success.
func (finitLoader) Load(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("loading module %s: %w", name, err)
	}
	defer f.Close()
	flags := 0
	if strings.Contains(filepath.Base(path), ".ko.") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// kernelRelease is uname -r.
func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
