package lab

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// ProcStat is /proc/PID/stat from its third field on (proc(5): state,
// ppid, pgrp, ...; field N is ProcStat(pid)[N-3]). The command name
// before it is in parentheses and may hold spaces.
func ProcStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return strings.Fields(string(b[i+1:])), nil
}
