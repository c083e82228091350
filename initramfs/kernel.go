package initramfs

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultKernelVersion is the Debian kernel fetch-kernel.sh pins (the
// package linux-image-<version>); keep in sync with the Makefile.
const DefaultKernelVersion = "6.1.0-47-cloud-amd64"

// Kernel is a Debian kernel unpacked by fetch-kernel.sh (`make kernel`).
type Kernel struct {
	Version    string // e.g. 6.1.0-47-cloud-amd64 (= uname -r)
	Dir        string // .cache/kernel/<version>
	Vmlinuz    string
	Config     string
	ModulesDir string // lib/modules/<version> of the package
}

// FindKernel locates a fetched kernel. With a version argument it is
// <repo>/.cache/kernel/<version>. Without one, $NETINIT_KERNEL (the vmlinuz
// path `make test` exports; config and modules/ beside it, modules
// overridden by $NETINIT_MODULES_DIR) wins, then the cache directory of
// $KERNEL_VERSION, then of DefaultKernelVersion. <repo> is the nearest
// parent of the working directory holding go.mod, so tests of any package
// find the cache.
func FindKernel(version string) (Kernel, error) {
	var k Kernel
	if vmlinuz := os.Getenv("NETINIT_KERNEL"); version == "" && vmlinuz != "" {
		dir := filepath.Dir(vmlinuz)
		k = Kernel{
			Version:    filepath.Base(dir),
			Dir:        dir,
			Vmlinuz:    vmlinuz,
			Config:     filepath.Join(dir, "config"),
			ModulesDir: filepath.Join(dir, "modules"),
		}
		if md := os.Getenv("NETINIT_MODULES_DIR"); md != "" {
			k.ModulesDir = md
		}
	} else {
		if version == "" {
			version = os.Getenv("KERNEL_VERSION")
		}
		if version == "" {
			version = DefaultKernelVersion
		}
		root, err := repoRoot()
		if err != nil {
			return Kernel{}, err
		}
		dir := filepath.Join(root, ".cache", "kernel", version)
		k = Kernel{
			Version:    version,
			Dir:        dir,
			Vmlinuz:    filepath.Join(dir, "vmlinuz"),
			Config:     filepath.Join(dir, "config"),
			ModulesDir: filepath.Join(dir, "modules"),
		}
	}
	for _, p := range []string{k.Vmlinuz, k.Config, k.ModulesDir} {
		if _, err := os.Stat(p); err != nil {
			return Kernel{}, fmt.Errorf("kernel %s not fetched (run `make kernel`): %w", k.Version, err)
		}
	}
	return k, nil
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		d = p
	}
}
