package cmdline

import (
	"fmt"
	"os"
)

// ProcCmdline is where the kernel exposes its command line.
const ProcCmdline = "/proc/cmdline"

// ReadKernel returns the running kernel's command line.
func ReadKernel() (string, error) {
	b, err := os.ReadFile(ProcCmdline)
	if err != nil {
		return "", fmt.Errorf("reading kernel command line: %w", err)
	}
	return string(b), nil
}
