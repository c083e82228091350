package main

import (
	"reflect"
	"testing"

	"github.com/threefoldtech/netinit/boot/state"
)

func TestFeatureProblems(t *testing.T) {
	m := &state.Modules{Failed: []string{
		"libcrc32c: finit_module x: no such file or directory",
		"nf_tables: dependency libcrc32c failed",
		"nft_ct: dependency nf_tables failed",
		"e1000e: no such device",
	}}
	want := []string{"firewall unavailable: nf_tables failed to load (dependency libcrc32c failed)"}
	if got := featureProblems(m); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := featureProblems(&state.Modules{Failed: []string{"tun: no such module"}}); len(got) != 1 || got[0] != "overlays unavailable: tun failed to load (no such module)" {
		t.Errorf("tun: %q", got)
	}
	if got := featureProblems(nil); got != nil {
		t.Errorf("nil: %q", got)
	}
}

func TestModprobeUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"-r", "x"}, {"-q", "--"}} {
		if code := cmdModprobe(args); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
