package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threefoldtech/netinit/boot/state"
)

type fakeDaemon struct{ renews, probes atomic.Int32 }

func (f *fakeDaemon) Status() *state.State {
	return &state.State{Schema: state.Schema, Phase: state.PhaseReady, Uplink: "eth0"}
}
func (f *fakeDaemon) Renew() { f.renews.Add(1) }
func (f *fakeDaemon) Probe() { f.probes.Add(1) }

// self is the uid the tests run as: their servers answer it (the daemon's
// answers root only), so that they run as any user.
var self = uint32(os.Geteuid())

// listen is Listen answering only uid.
func listen(t *testing.T, path string, h Handler, uid uint32) *Server {
	t.Helper()
	srv, err := Listen(path, h)
	if err != nil {
		t.Fatal(err)
	}
	srv.AllowUID = uid
	return srv
}

func serve(t *testing.T, uid uint32) (string, *fakeDaemon) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	f := &fakeDaemon{}
	srv := listen(t, path, f, uid)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("control server did not stop")
		}
	})
	return path, f
}

func call(t *testing.T, path, cmd string) (*Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Call(ctx, path, cmd)
}

func TestCommands(t *testing.T) {
	path, f := serve(t, self)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	r, err := call(t, path, "status")
	if err != nil || r.State == nil || r.State.Phase != state.PhaseReady || r.State.Uplink != "eth0" {
		t.Fatalf("status: %+v, %v", r, err)
	}
	if _, err := call(t, path, "renew"); err != nil || f.renews.Load() != 1 {
		t.Fatalf("renew: %v, renews %d", err, f.renews.Load())
	}
	if _, err := call(t, path, "probe"); err != nil || f.probes.Load() != 1 {
		t.Fatalf("probe: %v, probes %d", err, f.probes.Load())
	}
	if _, err := call(t, path, "reboot"); err == nil || !strings.Contains(err.Error(), `unknown command "reboot"`) {
		t.Fatalf("unknown command: %v", err)
	}
}

// TestMalformed: garbage gets an error reply per line, the connection and
// the server stay usable.
func TestMalformed(t *testing.T) {
	path, _ := serve(t, self)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(c)
	for _, req := range []string{"{", "null", `{"cmd":42}`, `{}`, "\x00\xff", `{"cmd":"status"}`} {
		if _, err := c.Write([]byte(req + "\n")); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", req, err)
		}
		wantOK := req == `{"cmd":"status"}`
		if strings.Contains(line, `"ok":true`) != wantOK {
			t.Errorf("request %q → %s", req, line)
		}
	}
	// An over-long request is refused and the connection closed.
	if _, err := c.Write([]byte(strings.Repeat("x", 3*maxRequest) + "\n")); err != nil {
		t.Fatal(err)
	}
	line, _ := rd.ReadString('\n')
	if !strings.Contains(line, "longer than") {
		t.Errorf("long request → %q", line)
	}
	if _, err := call(t, path, "status"); err != nil {
		t.Fatalf("server unusable after malformed input: %v", err)
	}
}

// TestRefusesOtherUIDs: a peer whose uid is not the allowed one gets an
// error and nothing is done (SO_PEERCRED).
func TestRefusesOtherUIDs(t *testing.T) {
	path, f := serve(t, self+1) // only another uid may talk: this one is refused
	_, err := call(t, path, "renew")
	if want := fmt.Sprintf("permission denied: uid %d may not use", self); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("peer uid %d with AllowUID=%d: %v, want %q", self, self+1, err, want)
	}
	if f.renews.Load() != 0 {
		t.Fatal("a refused peer's renew was carried out")
	}
}

// TestNonRootPeer: a real process running as nobody cannot use the
// socket (mode 0600 and SO_PEERCRED).
func TestNonRootPeer(t *testing.T) {
	if os.Getenv("CONTROL_CHILD_SOCKET") != "" {
		_, err := Call(context.Background(), os.Getenv("CONTROL_CHILD_SOCKET"), "status")
		if err == nil {
			os.Exit(0) // got an answer: the test fails on exit 0
		}
		os.Stdout.WriteString("refused: " + err.Error())
		os.Exit(7)
	}
	if os.Geteuid() != 0 {
		t.Skip("run as root")
	}
	path, _ := serve(t, 0)
	// The socket's directory must be traversable for nobody to reach the
	// socket: then only the socket's own mode and SO_PEERCRED stand in the
	// way.
	for d := filepath.Dir(path); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	// Run a copy of the test binary where nobody may execute it.
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bindir, err := os.MkdirTemp("", "control-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bindir) })
	_ = os.Chmod(bindir, 0o755)
	exe := filepath.Join(bindir, "control.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestNonRootPeer$")
	cmd.Env = append(os.Environ(), "CONTROL_CHILD_SOCKET="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("nobody's status call: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused") {
		t.Fatalf("output %s", out)
	}
}

// FuzzHandle: any request line gets exactly one well-formed reply, never a
// panic.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{`{"cmd":"status"}`, `{"cmd":"renew"}`, `{"cmd":"probe"}`, `{}`, `{"cmd":null}`, `[`, "\x00"} {
		f.Add([]byte(s))
	}
	srv := &Server{h: &fakeDaemon{}}
	f.Fuzz(func(t *testing.T, line []byte) {
		r := srv.handle(line)
		if r.OK == (r.Error != "") {
			t.Fatalf("reply %+v: ok and error disagree", r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

type panicky struct{ fakeDaemon }

func (p *panicky) Renew() { panic("injected") }

// TestHandlerPanicContained: a panicking handler gets the peer an error;
// the server answers the next request.
func TestHandlerPanicContained(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	srv := listen(t, path, &panicky{}, self)
	var logged atomic.Int32
	srv.Logf = func(string, ...any) { logged.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := call(t, path, "renew"); err == nil || !strings.Contains(err.Error(), "internal error (contained): injected") {
		t.Fatalf("renew with a panicking handler: %v", err)
	}
	if r, err := call(t, path, "status"); err != nil || r.State == nil {
		t.Fatalf("status after the panic: %+v, %v", r, err)
	}
	if logged.Load() != 1 {
		t.Errorf("%d log lines for the panic, want 1", logged.Load())
	}
}

// TestShutdownNotDelayed: an open, idle connection does not hold Serve
// after its context ends (it used to wait for the 30 s deadline).
func TestShutdownNotDelayed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	srv := listen(t, path, &fakeDaemon{}, self)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One exchange so the connection is being served, then idle.
	if _, err := c.Write([]byte(`{"cmd":"status"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c).ReadBytes('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still waits for an idle connection 10 s after its context ended")
	}
}
