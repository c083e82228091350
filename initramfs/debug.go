package initramfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// DebugCommands are the u-root core commands a -debug image carries in
// /bin, gosh being the shell, at the u-root version go.mod pins.
var DebugCommands = []string{
	"gosh", "ls", "cat", "ip", "ps", "dmesg", "mount", "ping",
	"mkdir", "cp", "rm", "echo", "grep", "ln", "uname", "hexdump", "netstat", "sleep",
}

// BuildDebugTools builds the u-root commands cmds (names below
// github.com/u-root/u-root/cmds/core/) as static binaries into outDir and
// returns them as image files in /bin, plus the symlink /bin/sh -> gosh
// when gosh is among them.
//
// The build runs in a throwaway module under outDir that requires the same
// u-root version as this repository's go.mod, so the commands' own
// dependencies (gosh's line editor and friends) never enter netinit's
// go.mod and `go mod tidy` cannot break -debug. Missing modules come from
// the module proxy.
func BuildDebugTools(ctx context.Context, outDir string, cmds []string) ([]File, error) {
	if len(cmds) == 0 {
		cmds = DebugCommands
	}
	ver := uRootVersion(ctx)
	mod := filepath.Join(outDir, "_mod")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return nil, err
	}
	gomod := "module netinit.local/debugtools\n\ngo 1.24\n\nrequire github.com/u-root/u-root " + ver + "\n"
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(gomod), 0o644); err != nil {
		return nil, err
	}
	args := []string{"build", "-mod=mod", "-trimpath", "-ldflags=-s -w -buildid=", "-o", outDir + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, "github.com/u-root/u-root/cmds/core/"+c)
	}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off", "GOFLAGS=")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build debug tools (u-root %s): %w", ver, err)
	}
	var files []File
	for _, c := range cmds {
		files = append(files, File{Src: filepath.Join(outDir, c), Dst: path.Join("/bin", c), Mode: 0o755})
		if c == "gosh" {
			files = append(files, File{Dst: "/bin/sh", Link: "gosh"})
		}
	}
	return files, nil
}

// uRootVersion returns the u-root version the current module requires,
// or the one this package was written against.
func uRootVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, goTool(), "list", "-m", "-f", "{{.Version}}", "github.com/u-root/u-root").Output()
	if v := strings.TrimSpace(string(out)); err == nil && strings.HasPrefix(v, "v") {
		return v
	}
	return "v0.16.0"
}

func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
