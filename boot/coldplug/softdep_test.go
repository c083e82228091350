package coldplug

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The nf_tables chain of Debian's hardware flavour: libcrc32c's init asks
// the crypto API for "crc32c", which only its soft dependency provides.
const (
	softAlias = `alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias crypto-crc32c-generic crc32c_generic
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias nfnetlink-subsys-10 nf_tables
alias nft-expr-ct nft_ct
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
`
	softDep = `kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/net/netfilter/nfnetlink.ko:
kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nft_ct.ko: kernel/net/netfilter/nf_tables.ko kernel/net/netfilter/nfnetlink.ko kernel/lib/libcrc32c.ko
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:
kernel/x/needs_post.ko:
kernel/x/after.ko:
kernel/x/loop_a.ko:
kernel/x/loop_b.ko:
`
	softSoftdep = `# Soft dependencies extracted from modules themselves.
softdep libcrc32c pre: crc32c
softdep nf_tables pre: nfnetlink
softdep needs_post post: after missing_soft
softdep loop_a pre: loop_b
softdep loop_b pre: loop_a
`
)

func softTree(t *testing.T) tree {
	return writeTree(t, map[string]string{
		"modules.alias":   softAlias,
		"modules.dep":     softDep,
		"modules.softdep": softSoftdep,
	})
}

// TestSoftdepPre: loading nft_ct loads libcrc32c's "pre: crc32c" (both
// providers of the alias) before libcrc32c, and nfnetlink before nf_tables.
func TestSoftdepPre(t *testing.T) {
	tr := softTree(t)
	l := newFakeLoader(t, tr)
	got := runColdplug(t, tr, l, "nft-expr-ct")
	want := []string{"crc32c_generic", "crc32c_intel", "libcrc32c", "nf_tables", "nfnetlink", "nft_ct"}
	if !reflect.DeepEqual(sorted(got.Loaded), want) || len(got.Failed) != 0 {
		t.Fatalf("Loaded = %v Failed = %v, want %v", got.Loaded, got.Failed, want)
	}
	before := func(a, b string) {
		if i, j := slices.Index(l.order, a), slices.Index(l.order, b); i > j {
			t.Errorf("%s loaded after %s: %v", a, b, l.order)
		}
	}
	before("crc32c_generic", "libcrc32c")
	before("crc32c_intel", "libcrc32c")
	before("nfnetlink", "nf_tables")
}

// TestSoftdepPostAndCycles: a post soft dependency loads after the module,
// a missing one does not stop it, and soft cycles end.
func TestSoftdepPostAndCycles(t *testing.T) {
	tr := softTree(t)
	l := newFakeLoader(t, tr)
	got := runColdplug(t, tr, l, "needs_post", "loop_a")
	if want := []string{"after", "loop_a", "loop_b", "needs_post"}; !reflect.DeepEqual(sorted(got.Loaded), want) || len(got.Failed) != 0 {
		t.Fatalf("Loaded = %v Failed = %v, want %v", got.Loaded, got.Failed, want)
	}
	if i, j := slices.Index(l.order, "needs_post"), slices.Index(l.order, "after"); i > j {
		t.Errorf("post dependency loaded first: %v", l.order)
	}
}

// TestSoftdepFailed: a soft dependency that fails does not fail the module
// (modprobe(8) semantics); the failure itself is recorded.
func TestSoftdepFailed(t *testing.T) {
	tr := softTree(t)
	l := newFakeLoader(t, tr)
	l.errs["crc32c_intel"] = syscall.ENODEV
	got := runColdplug(t, tr, l, "libcrc32c")
	if want := []string{"crc32c_generic", "libcrc32c"}; !reflect.DeepEqual(sorted(got.Loaded), want) {
		t.Errorf("Loaded = %v, want %v", got.Loaded, want)
	}
	if len(got.Failed) != 1 || !strings.HasPrefix(got.Failed[0], "crc32c_intel: ") {
		t.Errorf("Failed = %q", got.Failed)
	}
}

// TestDevicesBeforeExtra: NIC drivers found by modalias load before the
// extra modules (nf_tables), which wait for the device rounds.
func TestDevicesBeforeExtra(t *testing.T) {
	tr := softTree(t)
	tr.addDev(t, "pci", "0000:00:02.0", "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00", "")
	l := newFakeLoader(t, tr)
	got := runColdplug(t, tr, l, "nf_tables")
	if len(l.order) == 0 || l.order[0] != "e1000e" || len(got.Loaded) != 6 {
		t.Errorf("load order %v, want e1000e first then 5 more", l.order)
	}
}

// TestLoad is the modprobe path: an alias the kernel asks for.
func TestLoad(t *testing.T) {
	tr := softTree(t)
	l := newFakeLoader(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Load(ctx, Options{ModulesDir: tr.mods, SysDir: tr.sys, Loader: l}, "crypto-crc32c", "nope")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"crc32c_generic", "crc32c_intel"}; !reflect.DeepEqual(sorted(m.Loaded), want) {
		t.Errorf("Loaded = %v, want %v", m.Loaded, want)
	}
	if !reflect.DeepEqual(m.Failed, []string{"nope: no such module"}) {
		t.Errorf("Failed = %q", m.Failed)
	}
	if _, ok := m.LoadMS["crc32c_generic"]; !ok {
		t.Errorf("LoadMS = %v: no time for crc32c_generic", m.LoadMS)
	}
}
