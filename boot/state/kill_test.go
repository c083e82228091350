package state

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKillDuringWrite: a writer killed with SIGKILL at random moments
// leaves the previous document or the new one, never a partial one.
func TestKillDuringWrite(t *testing.T) {
	if p := os.Getenv("STATE_KILL_CHILD"); p != "" {
		// The writer: rewrite the file as fast as possible, with
		// documents of different sizes, until killed.
		for i := 0; ; i++ {
			s := sample()
			s.Problems = []string{strings.Repeat(fmt.Sprint(i%10), (i%7)*4000)}
			if err := Write(p, s); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := Write(p, sample()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, exe, "-test.run=^TestKillDuringWrite$")
		cmd.Env = append(os.Environ(), "STATE_KILL_CHILD="+p)
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+i*3) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		cancel()
		if _, err := Read(p); err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
	}
}
