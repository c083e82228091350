package qemu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ioctl numbers from <linux/kvm.h>: _IO(KVMIO=0xAE, 0x00) and _IO(0xAE, 0x01).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12 // stable since Linux 2.6.22
)

// kvmProbe opens /dev/kvm, checks the API version and creates (and drops)
// a VM: the same steps QEMU takes before it would fail with "failed to
// initialize kvm". The error says which step failed.
func kvmProbe() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("/dev/kvm missing")
	}
	if err != nil {
		return fmt.Errorf("/dev/kvm: %w", errors.Unwrap(err))
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("/dev/kvm: KVM_GET_API_VERSION: %w", err)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("/dev/kvm: KVM API version %d, want %d", v, kvmAPIVersion)
	}
	vm, err := unix.IoctlRetInt(int(f.Fd()), kvmCreateVM)
	if err != nil {
		return fmt.Errorf("/dev/kvm: KVM_CREATE_VM: %w", err)
	}
	unix.Close(vm)
	return nil
}
