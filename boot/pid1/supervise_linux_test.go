package pid1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
)

const handOverChild = "NETINIT_PID1_HANDOVER_CHILD"

// TestHandOver runs a Supervisor (in a child: the test binary again,
// since Reap collects every child) and hands its child over: the
// successor gets a pidfd of that child as its fd 3. A child that died and
// was reaped, its restart pending, cannot be handed over: the error says
// ESRCH (the caller starts a successor that starts a new child).
func TestHandOver(t *testing.T) {
	if dir := os.Getenv(handOverChild); dir != "" {
		os.Exit(handOverMain(dir))
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHandOver$")
	cmd.Env = append(os.Environ(), handOverChild+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "child"))
	fdinfo, _ := os.ReadFile(filepath.Join(dir, "fdinfo"))
	if want := "Pid:\t" + strings.TrimSpace(string(b)) + "\n"; len(b) == 0 || !strings.Contains(string(fdinfo), want) {
		t.Errorf("the successor's fd 3 is not a pidfd of the child %s: fdinfo\n%s\noutput:\n%s", b, fdinfo, out)
	}
}

// handOverMain is TestHandOver's child.
func handOverMain(dir string) int {
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return 8
	}
	log := console.New(time.Now(), logf)
	Reap()
	s, err := Supervise(log, "/bin/sleep", "60")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	child := s.PID()
	defer unix.Kill(child, unix.SIGKILL)
	_ = os.WriteFile(filepath.Join(dir, "child"), []byte(fmt.Sprint(child)), 0o644)
	if _, err := s.HandOver("/bin/sh", "-c", "cat /proc/self/fdinfo/3 > "+filepath.Join(dir, "fdinfo")); err != nil {
		fmt.Println("hand over:", err)
		return 1
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(dir, "fdinfo")); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("the successor wrote nothing")
			return 1
		}
	}

	s, err = Supervise(log, "/bin/sh", "-c", "exit 3")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	dead := s.PID()
	// The exit is logged once Reap has collected it; the restart is 1 s
	// later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(dir, "log")); strings.Contains(string(b), "exited with status 3") {
			break
		}
		if time.Now().After(deadline) {
			fmt.Println("the exit of the second child is not logged")
			return 1
		}
	}
	if _, err := s.HandOver("/bin/true"); !errors.Is(err, unix.ESRCH) {
		fmt.Printf("hand over of the dead child %d: %v, want ESRCH\n", dead, err)
		return 1
	}
	return 0
}
