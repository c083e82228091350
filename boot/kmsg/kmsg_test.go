package kmsg

import (
	"strings"
	"testing"
)

// The records are the kernel's lines from a QEMU boot of Debian's
// 6.1.0-47-amd64 with an i82559ER NIC and e100/d101s_ucode.bin left out of
// the image (qemu.TestBootNICFirmware), in /dev/kmsg's record form with
// the dictionary dev_printk adds.
func TestParseFirmwareFailure(t *testing.T) {
	for _, tc := range []struct {
		record string
		want   FirmwareFailure
		ok     bool
	}{
		{"4,612,3476984,-;e100 0000:00:01.0: Direct firmware load for e100/d101s_ucode.bin failed with error -2\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n",
			FirmwareFailure{Driver: "e100", Device: "0000:00:01.0", Subsystem: "pci", File: "e100/d101s_ucode.bin", Errno: 2}, true},
		// Without a device (request_firmware(..., NULL)).
		{"4,700,5000000,-;(NULL device *): Direct firmware load for regulatory.db failed with error -2\n",
			FirmwareFailure{File: "regulatory.db", Errno: 2}, true},
		// Debian's own line (debian/patches firmware_class: log every
		// failure) and the driver's: the same request, not counted twice.
		{"3,610,3468630,-;e100 0000:00:01.0: firmware: failed to load e100/d101s_ucode.bin (-2)\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n", FirmwareFailure{}, false},
		{"6,613,3483334,-;e100 0000:00:01.0 eth0: CPUSaver disabled. Needs \"e100/d101s_ucode.bin\": -2\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n", FirmwareFailure{}, false},
		{"6,611,3469271,-;firmware_class: See https://wiki.debian.org/Firmware for information about missing firmware\n", FirmwareFailure{}, false},
		// Hostile or cut: no file, a file with a space, no number.
		{"4,1,1,-;x y: Direct firmware load for  failed with error -2\n", FirmwareFailure{}, false},
		{"4,1,1,-;x y: Direct firmware load for a b failed with error -2\n", FirmwareFailure{}, false},
		{"4,1,1,-;x y: Direct firmware load for a.bin failed with error x\n", FirmwareFailure{}, false},
	} {
		r, err := Parse([]byte(tc.record))
		if err != nil {
			t.Fatalf("%q: %v", tc.record, err)
		}
		got, ok := ParseFirmwareFailure(r)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: got %+v %v, want %+v %v", tc.record, got, ok, tc.want, tc.ok)
		}
	}
	ff := FirmwareFailure{Driver: "e100", Device: "0000:00:01.0", File: "e100/d101s_ucode.bin", Errno: 2}
	if p := ff.Problem("e100"); !strings.Contains(p, `module e100 (0000:00:01.0) could not load "e100/d101s_ucode.bin" (not in the image)`) {
		t.Errorf("problem %q", p)
	}
	ff.Errno = 13
	if p := ff.Problem(""); !strings.Contains(p, "a driver could not load") || !strings.Contains(p, "permission denied") {
		t.Errorf("problem %q", p)
	}
}

func TestParseRecord(t *testing.T) {
	r, err := Parse([]byte("6,199,219537,-;pci_bus 0000:00: root bus resource [mem 0xeec00000-0xeecfffff]\n SUBSYSTEM=pci_bus\n DEVICE=+pci_bus:0000:00\n"))
	if err != nil || r.Priority != 6 || r.Seq != 199 || r.Message != "pci_bus 0000:00: root bus resource [mem 0xeec00000-0xeecfffff]" ||
		r.Fields["SUBSYSTEM"] != "pci_bus" || r.Fields["DEVICE"] != "+pci_bus:0000:00" {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "no semicolon", "6,1;x", "x,1,1,-;m", "6,x,1,-;m"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
