package farm

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture netinit runs on).
const clockTick = 100

// rss is the process's resident set (VmRSS, KiB).
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("reading RSS of %d: no VmRSS", pid)
}

// cpuTime is the process's user+system CPU time (/proc/PID/stat fields
// 14 and 15, proc(5)).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("reading CPU time of %d: %q", pid, b)
	}
	fs := strings.Fields(string(b[i+1:]))
	if len(fs) < 13 {
		return 0, fmt.Errorf("reading CPU time of %d: %q", pid, b)
	}
	// fs[0] is field 3 (state): utime is field 14, stime 15.
	u, err1 := strconv.ParseInt(fs[11], 10, 64)
	s, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("reading CPU time of %d: %q", pid, b)
	}
	return time.Duration(u+s) * time.Second / clockTick, nil
}
