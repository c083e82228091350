// Package kmsg reads the kernel log as /dev/kmsg gives it, record by
// record, and finds in it what a farmer must know about that netinit did
// not do itself: a driver that asked for a firmware file the image lacks.
//
// The kernel's firmware loader says so in one line per failed request
// (drivers/base/firmware_loader/main.c, _request_firmware):
//
//	dev_warn(device, "Direct firmware load for %s failed with error %d\n", name, ret)
//
// and dev_warn prefixes the device's driver and name (dev_printk:
// "%s %s: ", dev_driver_string, dev_name), e.g.
//
//	e100 0000:00:04.0: Direct firmware load for e100/d101m_ucode.bin failed with error -2
//
// The record's dictionary (Documentation/ABI/testing/dev-kmsg) names the
// device's bus: SUBSYSTEM=pci, DEVICE=+pci:0000:00:04.0. The driver's
// module is what /sys/bus/<subsystem>/drivers/<driver>/module points to
// (ModuleOf), the driver's name otherwise.
package kmsg

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Record is one record of /dev/kmsg:
//
//	PRIORITY,SEQ,TIMESTAMP_US,FLAGS[,...];MESSAGE
//	 KEY=VALUE
//
// (Documentation/ABI/testing/dev-kmsg): unprintable bytes of the message
// are escaped by the kernel as \xNN; continuation lines starting with a
// space carry the dictionary.
type Record struct {
	Priority int // facility<<3 | level
	Seq      uint64
	Message  string
	Fields   map[string]string // SUBSYSTEM, DEVICE, ...
}

// Parse parses one record as read(2) from /dev/kmsg returns it.
func Parse(b []byte) (Record, error) {
	head, rest, ok := bytes.Cut(b, []byte{';'})
	if !ok {
		return Record{}, fmt.Errorf("kmsg record without ';'")
	}
	f := strings.Split(string(head), ",")
	if len(f) < 4 {
		return Record{}, fmt.Errorf("kmsg record header %q: want 4 fields", head)
	}
	pri, err := strconv.Atoi(f[0])
	if err != nil {
		return Record{}, fmt.Errorf("kmsg record priority %q: %w", f[0], err)
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("kmsg record sequence %q: %w", f[1], err)
	}
	lines := strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n")
	r := Record{Priority: pri, Seq: seq, Message: lines[0]}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(strings.TrimPrefix(l, " "), "=")
		if !ok {
			continue
		}
		if r.Fields == nil {
			r.Fields = map[string]string{}
		}
		r.Fields[k] = v
	}
	return r, nil
}

// FirmwareFailure is a driver's failed request for a firmware file.
type FirmwareFailure struct {
	Driver    string // the driver's name as the kernel prints it ("" without a device)
	Device    string // e.g. "0000:00:04.0"
	Subsystem string // the device's bus, "pci", "usb", ... ("" when not said)
	File      string // relative to /lib/firmware
	Errno     int    // positive: 2 is ENOENT (no such file)
}

const firmwareMarker = "Direct firmware load for "

// ParseFirmwareFailure finds a failed firmware request in a record.
func ParseFirmwareFailure(r Record) (FirmwareFailure, bool) {
	prefix, rest, ok := strings.Cut(r.Message, firmwareMarker)
	if !ok {
		return FirmwareFailure{}, false
	}
	file, errs, ok := strings.Cut(rest, " failed with error ")
	if !ok || file == "" || strings.ContainsAny(file, " \t") {
		return FirmwareFailure{}, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(errs))
	if err != nil {
		return FirmwareFailure{}, false
	}
	if n < 0 {
		n = -n
	}
	ff := FirmwareFailure{File: file, Errno: n, Subsystem: r.Fields["SUBSYSTEM"]}
	// "driver device: " from dev_printk; "(NULL device *): " without one.
	prefix = strings.TrimSuffix(prefix, ": ")
	if drv, dev, ok := strings.Cut(prefix, " "); ok && !strings.HasPrefix(prefix, "(NULL") {
		ff.Driver, ff.Device = drv, dev
	}
	return ff, true
}

// Problem is the failure in words, naming the module and the file.
func (f FirmwareFailure) Problem(module string) string {
	who := "a driver"
	if module != "" {
		who = "module " + module
		if f.Device != "" {
			who += " (" + f.Device + ")"
		}
	}
	why := syscall.Errno(f.Errno).Error()
	if f.Errno == int(syscall.ENOENT) {
		why = "not in the image"
	}
	return fmt.Sprintf("firmware: %s could not load %q (%s); the NIC may not work without it", who, f.File, why)
}
