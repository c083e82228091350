// Command vmrun boots a kernel and a netinit initramfs in QEMU (the
// front end of `make qemu`), streams the serial console to stdout and then
// prints a summary of the result netinit reported. It builds nothing.
//
//	vmrun -kernel vmlinuz -initramfs initramfs.cpio.gz [-append 'netinit.debug=1'] [-timeout 90s] [-net user,id=n0,ipv4=on,ipv6=on]
//	vmrun -pxe build/release [-nic e1000e]     (SeaBIOS + iPXE, TFTP from the release)
//	vmrun -usb build/release/netinit-usb.img   (OVMF, the image as a USB stick)
//
// With -pxe and -usb the kernel parameters are the release's own
// (RELEASE_APPEND must carry console=ttyS0 netinit.test=poweroff).
//
// netinit.test=poweroff is always added to the command line so the guest
// prints its result and powers off. The exit status is 0 when a result
// arrived, 1 otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/qemu"
)

func main() {
	var (
		kernel    = flag.String("kernel", os.Getenv("NETINIT_KERNEL"), "kernel image (default $NETINIT_KERNEL)")
		initramfs = flag.String("initramfs", "", "initramfs image (required)")
		appendArg = flag.String("append", "", "extra kernel command line")
		timeout   = flag.Duration("timeout", qemu.DefaultTimeout, "bound on the whole boot")
		netdev    = flag.String("net", qemu.DefaultNetDev, `QEMU -netdev of the NIC (id must be n0), or "none"`)
		accel     = flag.String("accel", "", `"kvm", "tcg" or "" for $NETINIT_QEMU_ACCEL, else KVM when the kernel runs under it`)
		logFile   = flag.String("log", "", "also write the console to this file")
		quiet     = flag.Bool("q", false, "do not stream the console")
		hostNet   = flag.Bool("hostnet", false, "run QEMU in this network namespace (default: a new empty one, so the guest cannot reach any network)")
		klog      = flag.Bool("klog", false, "let the kernel log to the console (drops \"quiet\"; slow under TCG)")
		nic       = flag.String("nic", "", "NIC model: virtio-net-pci (default), e1000e, e1000, rtl8139")
		pxe       = flag.String("pxe", "", "boot by PXE: SeaBIOS + the NIC's iPXE ROM, TFTP from this release directory (netinit.ipxe)")
		usb       = flag.String("usb", "", "boot this USB disk image (netinit-usb.img) with OVMF")
	)
	flag.Parse()
	fw := qemu.Firmware{NIC: *nic}
	switch {
	case *pxe != "":
		fw.PXE = true
		*netdev += ",tftp=" + *pxe + ",bootfile=netinit.ipxe"
		fw.Kernel = releaseKernel(*pxe)
		*kernel, *initramfs = "", ""
	case *usb != "":
		vars, err := qemu.CopyOVMFVars("")
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmrun:", err)
			os.Exit(1)
		}
		defer os.Remove(vars)
		fw.UEFIVars, fw.USBDisk = vars, *usb
		fw.Kernel = releaseKernel(filepath.Dir(*usb))
		*kernel, *initramfs = "", ""
	case *kernel == "" || *initramfs == "":
		flag.Usage()
		os.Exit(2)
	}
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var console io.Writer = os.Stdout
	if *quiet {
		console = nil
	}
	opts := qemu.Options{
		Kernel:    *kernel,
		Initramfs: *initramfs,
		Append:    strings.TrimSpace(*appendArg + " netinit.test=poweroff"),
		NetDev:    *netdev,
		Accel:     *accel,
		Timeout:   *timeout,
		Console:   console,
		LogFile:   *logFile,
		KernelLog: *klog,
		HostNet:   *hostNet,
		Firmware:  fw,
	}
	// Chosen (and cached) before the boot, so it is said before the wait.
	fmt.Printf("vmrun: accelerator %s\n", qemu.ChooseAccel(opts.QEMU, opts.ProbeKernel(), opts.Accel).Why)
	res, err := qemu.Boot(ctx, opts)
	if res != nil {
		summary(os.Stdout, res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
}

// releaseKernel is the release directory's kernel, which its firmware
// boots load, for the KVM probe; "" when the directory has none (the boot
// then runs under TCG).
func releaseKernel(dir string) string {
	k := filepath.Join(dir, "vmlinuz")
	if _, err := os.Stat(k); err != nil {
		return ""
	}
	return k
}

func summary(w io.Writer, r *qemu.Result) {
	fmt.Fprintf(w, "\n=== vmrun summary (%s) ===\n", r.Accel)
	fmt.Fprintf(w, "accel:      %s\n", r.AccelWhy)
	if r.Rebooted != "" {
		fmt.Fprintf(w, "rebooted:   %s\n", r.Rebooted)
	}
	ms := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return d.Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "timings:    power-on->init %s, init->result %s, power-on->exit %s", ms(r.InitAt), ms(r.InitToResult), ms(r.Exited))
	if r.KernelRunInit >= 0 {
		fmt.Fprintf(w, ", kernel ran /init at %.3fs", r.KernelRunInit)
	}
	fmt.Fprintln(w)
	st := r.State
	if st == nil {
		fmt.Fprintln(w, "result:     none")
		return
	}
	fmt.Fprintf(w, "phase:      %s\n", st.Phase)
	fmt.Fprintf(w, "uplink:     %s (%s)\n", st.Uplink, st.UplinkReason)
	for _, i := range st.Interfaces {
		var addrs []string
		for _, a := range i.Addresses {
			addrs = append(addrs, fmt.Sprintf("%s/%s", a.CIDR, a.Source))
		}
		fmt.Fprintf(w, "link:       %s %s mtu %d carrier %v: %s\n", i.Name, i.MAC, i.MTU, i.Carrier, strings.Join(addrs, " "))
	}
	for _, rt := range st.Routes {
		fmt.Fprintf(w, "route:      %s\n", rt)
	}
	fmt.Fprintf(w, "dns:        %s\n", strings.Join(st.DNS, " "))
	if m := st.Modules; m != nil {
		fmt.Fprintf(w, "modules:    loaded %s; builtin %s; took %d ms\n", strings.Join(m.Loaded, " "), strings.Join(m.Builtin, " "), m.TookMS)
		if len(m.Failed) > 0 {
			fmt.Fprintf(w, "            failed %s\n", strings.Join(m.Failed, "; "))
		}
		if len(m.Skipped) > 0 {
			fmt.Fprintf(w, "            skipped %s\n", strings.Join(m.Skipped, "; "))
		}
	}
	if len(st.TimingsMS) > 0 {
		keys := make([]string, 0, len(st.TimingsMS))
		for k := range st.TimingsMS {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return st.TimingsMS[keys[i]] < st.TimingsMS[keys[j]] })
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%dms", k, st.TimingsMS[k]))
		}
		fmt.Fprintf(w, "milestones: %s\n", strings.Join(parts, " "))
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem:    %s\n", p)
	}
}
