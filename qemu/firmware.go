package qemu

import (
	"errors"
	"fmt"
	"os"
)

// Firmware paths of Debian's packages.
const (
	// OVMFCode is UEFI firmware (Debian ovmf), read-only pflash.
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	// OVMFVars is the template of its variable store; each boot gets a
	// copy (CopyOVMFVars) as Firmware.UEFIVars.
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// CopyOVMFVars copies OVMF's variable store template (OVMFVars) to a new
// file in dir (the default temporary directory when dir is "") and returns
// its path, for one VM's Firmware.UEFIVars. The caller removes it.
func CopyOVMFVars(dir string) (string, error) {
	b, err := os.ReadFile(OVMFVars)
	if err != nil {
		return "", fmt.Errorf("UEFI firmware (Debian ovmf): %w", err)
	}
	f, err := os.CreateTemp(dir, "ovmf-vars-")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Firmware selects how the VM boots and which NIC it has. The zero value
// is QEMU's direct kernel boot (-kernel/-initrd) with a virtio NIC.
type Firmware struct {
	// NIC is the -device model of the NIC: virtio-net-pci (default),
	// e1000e, e1000, rtl8139, igb (QEMU >= 8.0).
	NIC string
	// PXE boots from the NIC (-boot n): SeaBIOS runs the NIC's iPXE option
	// ROM (Debian ipxe-qemu), which takes the boot file from slirp's
	// DHCP/TFTP (NetDev "...,tftp=DIR,bootfile=FILE"). No Kernel then.
	PXE bool
	// UEFIVars, when set, boots OVMF (UEFI) instead of SeaBIOS; it is a
	// writable copy of OVMFVars for this VM.
	UEFIVars string
	// USBDisk is a raw disk image attached as a USB stick (usb-storage on
	// qemu-xhci), as the farmer's stick is.
	USBDisk string
	// Kernel is the kernel the firmware will load (the release's
	// vmlinuz), for the KVM probe only (ChooseAccel): QEMU is not given
	// it. A firmware boot without it runs under TCG.
	Kernel string
}

// nicModel is the NIC's -device model. Booting from the USB disk, the
// NIC's iPXE ROM is left out: under TCG OVMF spends seconds starting its
// EFI network driver for nothing.
func (f Firmware) nicModel() string {
	m := or(f.NIC, "virtio-net-pci")
	if f.USBDisk != "" && !f.PXE {
		m += ",romfile="
	}
	return m
}

// args are the firmware and disk arguments.
func (f Firmware) args() []string {
	var a []string
	if f.UEFIVars != "" {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+f.UEFIVars)
	}
	if f.USBDisk != "" {
		a = append(a,
			"-device", "qemu-xhci,id=xhci",
			"-drive", "if=none,id=stick,format=raw,snapshot=on,file="+f.USBDisk,
			"-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=1")
	}
	if f.PXE {
		a = append(a, "-boot", "n")
	}
	return a
}

// firmwareBoot reports whether the firmware, not QEMU, loads the kernel.
func (f Firmware) firmwareBoot() bool { return f.PXE || f.USBDisk != "" }

// ProbeKernel is the kernel the KVM probe (ChooseAccel) boots: the one
// QEMU loads, or for a firmware boot the one the firmware will ("" when
// not known).
func (o Options) ProbeKernel() string {
	if o.firmwareBoot() {
		return o.Firmware.Kernel
	}
	return o.Kernel
}

var errNoKernel = errors.New("qemu: no kernel and no firmware boot (PXE or USB disk)")
