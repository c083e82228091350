package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ChronyConf makes chronyd a stratum-8 server of its own clock that never
// touches the machine's clock (-x on the command line as well).
const ChronyConf = `local stratum 8
allow all
cmdport 0
bindcmdaddress /
port 123
`

// Chrony runs chronyd as an NTP server on addr:123 in ns until the test
// ends. lie, when not 0, is how far ahead its clock is: chronyd -x never
// touches the machine's clock and keeps its own offset, which `chronyc
// settime` (in manual mode) sets.
func Chrony(t *testing.T, ns *NS, addr string, lie time.Duration) {
	t.Helper()
	dir := t.TempDir()
	// chronyd wants its command socket's directory private.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "cmd.sock")
	conf := ChronyConf + "bindaddress " + addr + "\npidfile " + filepath.Join(dir, "pid") + "\n"
	if lie != 0 {
		conf = strings.Replace(conf, "bindcmdaddress /\n", "bindcmdaddress "+sock+"\nmanual\n", 1)
	}
	cf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := ns.Start("chronyd", "-d", "-x", "-u", "root", "-f", cf, "-L", "0")
	if !Eventually(5*time.Second, func() bool {
		out, _ := ns.Exec(context.Background(), "ss", "-Hlun", "sport", "=", ":123")
		return strings.Contains(out, addr+":123")
	}) {
		t.Fatalf("chronyd did not listen on %s:123:\n%s", addr, p.Output())
	}
	if lie == 0 {
		return
	}
	at := time.Now().Add(lie).UTC().Format("Jan 02, 2006 15:04:05")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "chronyc", "-h", sock, "settime", at)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "200 OK") {
		t.Fatalf("chronyc settime %q on %s: %v\n%s\n%s", at, addr, err, out, p.Output())
	}
}
