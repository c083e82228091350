package clock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NTPD finds 0-OS's NTP service: after the handoff 0-OS runs the zinit
// service `ntp` (0-initramfs config/etc/zinit/ntp.yaml: `exec: ntpd -n`,
// busybox's ntpd), and from then on the clock is its to keep (issue 26):
// a Syncer whose Owner says so only measures. It scans /proc for a
// process whose command name (/proc/PID/comm, the basename of what was
// executed: busybox's applet link) is "ntpd". A scan at each round is
// cheap (one small read per process, every 11 minutes) and needs nothing
// of zinit (its socket, its service names) to hold still; an ntpd started
// any other way counts too. When ntpd is gone (stopped, crashed), the
// next round finds none and netinit keeps the clock again.
func NTPD() (string, bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return "", false
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == "ntpd" {
			return fmt.Sprintf("0-OS's ntpd (pid %d)", pid), true
		}
	}
	return "", false
}
