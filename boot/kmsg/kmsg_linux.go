package kmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Follow reads the kernel log from its oldest record still in the ring
// buffer, then each new one as it comes, and calls fn with every record,
// until ctx ends. Records the kernel overwrote before they were read are
// skipped (read returns EPIPE once for them).
func Follow(ctx context.Context, fn func(Record)) error {
	// Non-blocking, so that the runtime's poller waits for records and
	// Close ends a pending Read.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reading the kernel log: %w", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/kmsg")
	var once sync.Once
	closeFile := func() { once.Do(func() { f.Close() }) }
	defer closeFile()
	stop := context.AfterFunc(ctx, closeFile)
	defer stop()
	buf := make([]byte, 8192) // a record is at most 8 KiB (CONSOLE_EXT_LOG_MAX)
	for {
		n, err := f.Read(buf)
		switch {
		case errors.Is(err, unix.EPIPE):
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the kernel log: %w", err)
		}
		if r, err := Parse(buf[:n]); err == nil {
			fn(r)
		}
	}
}

// ModuleOf is the module of the driver that asked for the firmware: the
// one /sys/bus/<subsystem>/drivers/<driver>/module points to, else the
// driver's name (most NIC drivers are named for their module), "" without
// a driver.
func ModuleOf(f FirmwareFailure) string {
	if f.Driver == "" {
		return ""
	}
	for _, bus := range []string{f.Subsystem, "pci", "usb", "platform"} {
		if bus == "" || filepath.Base(bus) != bus || filepath.Base(f.Driver) != f.Driver {
			continue
		}
		if t, err := os.Readlink(filepath.Join("/sys/bus", bus, "drivers", f.Driver, "module")); err == nil {
			return filepath.Base(t)
		}
	}
	return f.Driver
}

// WatchFirmware follows the kernel log until ctx ends and calls fn once
// for each distinct (module, file) a driver failed to load.
func WatchFirmware(ctx context.Context, fn func(module string, f FirmwareFailure)) error {
	seen := map[[2]string]bool{}
	return Follow(ctx, func(r Record) {
		ff, ok := ParseFirmwareFailure(r)
		if !ok {
			return
		}
		mod := ModuleOf(ff)
		if k := [2]string{mod, ff.File}; !seen[k] {
			seen[k] = true
			fn(mod, ff)
		}
	})
}
