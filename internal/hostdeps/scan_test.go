package hostdeps

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

func names(us []Use) []string {
	var out []string
	for _, u := range us {
		n := u.Name
		if u.Optional {
			n += "?"
		}
		if u.File {
			n = "file:" + n
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestShellCalls(t *testing.T) {
	for _, tc := range []struct {
		src     string
		want    []string
		dynamic []string
		scripts []string
	}{
		{src: `command -v systemctl >/dev/null && systemctl disable chrony`, want: []string{"systemctl?"}},
		{src: `! command -v systemctl >/dev/null || systemctl disable chrony || true`, want: []string{"systemctl?"}},
		{src: `timeout -k 5s 10m unshare --pid --fork -- debootstrap x`, want: []string{"debootstrap", "timeout", "unshare"}},
		{src: "GO=${GO:-go}\n$GO test ./...", want: []string{"go"}},
		{src: `: "${GO:=go}"; "$GO" env GOPROXY`, want: []string{"go"}},
		{src: `ip netns exec ns1 dnsmasq -d`, want: []string{"dnsmasq", "ip"}},
		{src: `env -i A=1 B=2 sysctl -w x=1`, want: []string{"env", "sysctl"}},
		{src: `bash -c 'grep x | sort -u'`, want: []string{"bash", "grep", "sort"}},
		{src: `chroot /r make test`, want: []string{"chroot"}},
		{src: `f() { cat "$1"; }; f x`, want: []string{"cat"}},
		{src: `x=$(awk '{print}' </dev/null); exec mkfs.fat -C x`, want: []string{"awk", "mkfs.fat"}},
		{src: `printf x >/usr/share/foo/bar`, want: []string{"file:/usr/share/foo/bar"}},
		{src: `"$UNKNOWN" arg`, dynamic: []string{`"$UNKNOWN"`}},
		{src: `KERNEL_VERSION=1 ./initramfs/fetch-kernel.sh`, scripts: []string{"initramfs/fetch-kernel.sh"}},
	} {
		s, err := scanShell(tc.src, "t", func(uint) string { return "t" }, "test")
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		var dyn, scripts []string
		for _, d := range s.dynamic {
			dyn = append(dyn, d.Expr)
		}
		for _, sr := range s.scripts {
			scripts = append(scripts, sr.path)
		}
		if got := names(s.uses); !slices.Equal(got, tc.want) || !slices.Equal(dyn, tc.dynamic) || !slices.Equal(scripts, tc.scripts) {
			t.Errorf("%s:\n got %q, dynamic %q, scripts %q\nwant %q, dynamic %q, scripts %q",
				tc.src, got, dyn, scripts, tc.want, tc.dynamic, tc.scripts)
		}
	}
}

// TestGoCalls scans a small module: programs passed through helpers (a
// lab-like NS.Exec over `ip netns exec`, a Require over a list), from a
// range over a literal of argument lists, from a package-level map, a host
// path constant, and a program that is a function's result (dynamic).
func TestGoCalls(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"lab/lab.go": `package lab

import (
	"context"
	"os"
	"os/exec"
)

type NS struct{ Name string }

func run(ctx context.Context, args ...string) error {
	return exec.CommandContext(ctx, args[0], args[1:]...).Run()
}

func (ns *NS) Exec(ctx context.Context, args ...string) error {
	return run(ctx, append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

func Require(tools ...string) {
	for _, tool := range tools {
		_, _ = exec.LookPath(tool)
	}
}

var Compressors = map[string][]string{"zstd": {"zstd", "-19"}, "xz": {"xz", "-9"}}

func Compress(name string) *exec.Cmd {
	argv := Compressors[name]
	return exec.Command(argv[0], argv[1:]...)
}

const OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"

func Built() string { return os.TempDir() + "/tool" }
`,
		"lab/lab_test.go": `package lab_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"example.com/m/lab"
)

func TestX(t *testing.T) {
	ctx := context.Background()
	ns := &lab.NS{Name: "x"}
	lab.Require("dnsmasq", "radvd")
	_ = ns.Exec(ctx, "tcpdump", "-n")
	for _, c := range [][]string{{"sysctl", "-w", "a=1"}, {"nft", "list", "ruleset"}} {
		_ = ns.Exec(ctx, c...)
	}
	args := []string{"env", "A=1"}
	args = append(args, "iperf3", "-s")
	_ = exec.Command(args[0], args[1:]...).Run()
	_ = exec.Command(os.Args[0], "-test.run=X").Run()
	_ = exec.Command(lab.Built()).Run()
}
`,
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g, err := ScanGo(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dnsmasq", "env", "file:/usr/share/OVMF/OVMF_CODE_4M.fd", "ip", "iperf3", "nft", "radvd", "sysctl", "tcpdump", "xz", "zstd"}
	if got := names(g.uses); !slices.Equal(got, want) {
		t.Errorf("uses %q, want %q", got, want)
	}
	if len(g.dynamic) != 1 || g.dynamic[0].Expr != `os.TempDir() + "/tool"` || !strings.HasSuffix(g.dynamic[0].Callee, "lab.Built") {
		t.Errorf("dynamic %+v, want lab.Built's result", g.dynamic)
	}
}
