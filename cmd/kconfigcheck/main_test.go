package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threefoldtech/netinit/initramfs"
	"github.com/threefoldtech/netinit/internal/lab"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	frag := filepath.Join(dir, "frag")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, "CONFIG_DEVTMPFS=y\nCONFIG_TUN=m\n# CONFIG_IGB is not set\n")
	write(frag, "CONFIG_DEVTMPFS=y # d\nCONFIG_TUN=ym # t\n# @class hw\nCONFIG_IGB=ym # intel\n")
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"-config", cfg, "-fragment", frag}, 1, "FAIL CONFIG_IGB: want y or m, got n [hw]: intel"},
		{[]string{"-config", cfg, "-fragment", frag, "-skip-class", "hw"}, 0, "2 requirements checked, 0 unmet"},
		{[]string{"-config", cfg, "-fragment", frag, "-warn-class", "hw"}, 0, "WARN CONFIG_IGB"},
		{[]string{"-config", filepath.Join(dir, "nope"), "-fragment", frag}, 2, ""},
		{[]string{"-fragment", frag}, 2, ""},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.contains) {
			t.Errorf("%v: exit %d (want %d)\n%s%s", tc.args, code, tc.code, out.String(), errb.String())
		}
	}
}

// The repository's fragment against the fetched Debian kernel, the way
// the Makefile runs it.
func TestRunDebian(t *testing.T) {
	k, err := initramfs.FindKernel("")
	lab.Need(t, err)
	frag := "../../kernel-config/netinit.config"
	var out, errb bytes.Buffer
	if code := run([]string{"-config", k.Config, "-fragment", frag, "-skip-class", "hw"}, &out, &errb); code != 0 {
		t.Errorf("exit %d:\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	code := run([]string{"-config", k.Config, "-fragment", frag}, &out, &errb)
	if strings.Contains(k.Version, "cloud") && (code != 1 || !strings.Contains(out.String(), "FAIL CONFIG_E1000E:")) {
		t.Errorf("cloud kernel with hw class: exit %d:\n%s", code, out.String())
	}
}
