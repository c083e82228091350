// Command mkinitramfs builds netinit's initramfs: a reproducible,
// gzip-compressed newc cpio archive with /init, /dev/console, the base
// directories, selected kernel modules (with their dependency closure and
// generated modules.dep/alias/softdep) and extra files.
//
//	mkinitramfs -init netinit -modules-dir .cache/kernel/6.1.0-47-cloud-amd64/modules \
//	    -kernel-release 6.1.0-47-cloud-amd64 -o initramfs.cpio.gz
//
// With -base IMAGE (cpio, .gz, .xz or .zst) netinit is baked into an
// existing image (0-OS's): its files are kept, its /init becomes
// /init.base, netinit is /init, and the module indexes of a shared kernel
// release are merged; a path both have with different content fails the
// build, listing every conflict. The base files rewritten are 0-OS's zinit
// service /etc/zinit/internet.yaml, whose exec becomes "/init wait-online"
// (a base without it is left as it is), and kmod's binary module indexes
// (modules.*.bin) of a release netinit adds modules to, remade by depmod
// (Debian's kmod) over the merged modules; the build says what it
// rewrote. -compress picks gzip (default), zstd, xz,
// lz4 or none.
//
// All mtimes are SOURCE_DATE_EPOCH (default 0).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/threefoldtech/netinit/initramfs"
)

type fileFlags []initramfs.File

func (f *fileFlags) String() string { return fmt.Sprint(*f) }
func (f *fileFlags) Set(s string) error {
	v, err := initramfs.ParseFile(s)
	if err != nil {
		return err
	}
	*f = append(*f, v)
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	flag := flag.NewFlagSet("mkinitramfs", flag.ContinueOnError)
	flag.SetOutput(stderr)
	var (
		initPath   = flag.String("init", "", "netinit binary, installed as /init (required)")
		modulesDir = flag.String("modules-dir", "", "kernel module directory lib/modules/<release> (optional)")
		release    = flag.String("kernel-release", "", "kernel release (default: base name of -modules-dir)")
		modules    = flag.String("modules", strings.Join(initramfs.DefaultModules, ","), "comma separated modules to include with their dependencies")
		debug      = flag.Bool("debug", false, "add u-root core commands in /bin and /bin/sh (gosh)")
		out        = flag.String("o", "", "output image path (required)")
		base       = flag.String("base", "", "bake into this existing image (cpio, .gz, .xz, .zst or .lz4): its files kept, its /init as /init.base")
		compress   = flag.String("compress", "gzip", "image compression: gzip, zstd (smallest that unpacks fast), xz (smallest), lz4 (fastest to unpack) or none")
		fwDir      = flag.String("firmware-dir", "", "unpacked lib/firmware (fetch-firmware.sh): the files the included modules name go into /lib/firmware")
		fwMissing  = flag.String("firmware-missing", "", "write the firmware files the modules name that -firmware-dir lacks here, one \"module: file\" a line")
		files      fileFlags
	)
	flag.Var(&files, "file", "extra file SRC:DST[:MODE] (repeatable, MODE octal)")
	if err := flag.Parse(args); err != nil {
		return err
	}
	if *initPath == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		return fmt.Errorf("-init and -o are required")
	}

	spec := initramfs.Spec{Init: *initPath, Files: files, Compress: *compress, Base: *base}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		v, err := strconv.ParseInt(e, 10, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("bad SOURCE_DATE_EPOCH %q", e)
		}
		spec.Epoch = v
	}

	if *modulesDir != "" {
		tree, err := initramfs.OpenModuleTree(*modulesDir, *release)
		if err != nil {
			return err
		}
		var names []string
		for _, n := range strings.Split(*modules, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		set, err := tree.Closure(names)
		if err != nil {
			return err
		}
		for _, n := range set.Builtin {
			fmt.Fprintf(stderr, "note: %s is built into kernel %s, not needed as a module\n", n, tree.Release)
		}
		for _, n := range set.Missing {
			fmt.Fprintf(stderr, "note: kernel %s has no module %s, skipped\n", tree.Release, n)
		}
		for _, n := range set.SoftMissing {
			fmt.Fprintf(stderr, "note: soft dependency %s is provided by nothing in kernel %s\n", n, tree.Release)
		}
		fmt.Fprintf(stderr, "modules: %d requested, %d included with dependencies (release %s)\n",
			len(names), len(set.Modules), tree.Release)
		spec.Modules = set
		if *fwDir != "" {
			fw, err := initramfs.SelectFirmware(*fwDir, set.Firmware())
			if err != nil {
				return err
			}
			spec.Firmware = fw
			if err := reportFirmware(stderr, fw, *fwMissing); err != nil {
				return err
			}
		}
	}

	if *debug {
		tmp, err := os.MkdirTemp("", "mkinitramfs-debug-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		dbg, err := initramfs.BuildDebugTools(ctx, tmp, nil)
		if err != nil {
			return err
		}
		spec.Files = append(spec.Files, dbg...)
	}

	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	st, err := initramfs.WriteFile(*out, spec)
	if err != nil {
		return err
	}
	if *base != "" {
		internet := false
		for _, b := range st.Baked {
			fmt.Fprintf(stdout, "baked: rewrote %s\n", b)
			internet = internet || strings.HasPrefix(b, "/"+initramfs.InternetService+":")
		}
		if !internet {
			fmt.Fprintf(stdout, "baked: the base has no /%s: none of its files rewritten\n", initramfs.InternetService)
		}
	}
	fmt.Fprintf(stdout, "%s: %d bytes (%.1f MiB; cpio %d bytes, %d records); /init %d bytes (%.1f MiB)\n",
		*out, st.ImageSize, mib(st.ImageSize), st.CPIOSize, st.Records, st.InitSize, mib(st.InitSize))
	return nil
}

// reportFirmware says in one line what firmware the image carries and
// what it lacks; the list of what it lacks goes to missingPath.
func reportFirmware(w io.Writer, fw *initramfs.FirmwareSet, missingPath string) error {
	mods := map[string]bool{}
	for _, r := range fw.Found {
		mods[r.Module] = true
	}
	where := ""
	if missingPath != "" {
		if err := os.WriteFile(missingPath, fw.MissingList(), 0o644); err != nil {
			return fmt.Errorf("firmware list: %w", err)
		}
		where = " (listed in " + missingPath + ")"
	}
	fmt.Fprintf(w, "firmware: %d files (%.1f MiB) for %d modules; %d files the modules name are in no package%s\n",
		len(fw.Files), mib(fw.Bytes()), len(mods), len(fw.Missing), where)
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
