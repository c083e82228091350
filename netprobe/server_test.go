package netprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run a real reflector and real clients over loopback (no
// namespaces needed); lab_linux_test.go covers routed, firewalled and
// NATed paths.

var loop4 = netip.MustParseAddr("127.0.0.1")

// startServer serves s on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, ln)
	return ln.Addr().String()
}

// serve runs s.Serve on ln until stop, or the end of the test; stop
// waits (5 s at most) for Serve to return and reports its error.
func serve(t *testing.T, s *Server, ln net.Listener) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Serve did not return within 5 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// acceptEach hands every connection on ln to onConn and closes it, until
// ln is closed; wg counts the goroutine.
func acceptEach(wg *sync.WaitGroup, ln net.Listener, onConn func(net.Conn)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			onConn(c)
			c.Close()
		}
	}()
}

// exchange sends raw to the reflector and returns everything it answers
// until it closes the connection.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }() // may block on a long line
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading answer: %v", err)
	}
	return string(b)
}

// countingListener accepts on addr and counts connections.
func countingListener(t *testing.T, addr string, reply string) (*atomic.Int32, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	var wg sync.WaitGroup
	acceptEach(&wg, ln, func(c net.Conn) { n.Add(1); _, _ = io.WriteString(c, reply) })
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return &n, ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

func TestReflectorConnectsBack(t *testing.T) {
	refl := startServer(t, &Server{Window: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ans, err := AskReflector(ctx, "tcp4", loop4, refl)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Kind != "OK" || ans.Target.Addr() != loop4 || ans.Target.Port() < MinPort {
		t.Fatalf("answer %+v, want OK to 127.0.0.1:<ephemeral>", ans)
	}
}

func TestReflectorFailures(t *testing.T) {
	refl := startServer(t, &Server{Window: 500 * time.Millisecond, PerMinute: 100})
	nonce := NewNonce()

	// A listener that does not know the nonce is not this node.
	n, port := countingListener(t, "127.0.0.1:0", "SSH-2.0-OpenSSH\r\n")
	got := exchange(t, refl, Request{Port: port, Nonce: nonce}.String()+"\n")
	want := fmt.Sprintf("FAIL could not connect to 127.0.0.1:%d within 500ms: connected but the listener did not echo the nonce\n", port)
	if got != want || n.Load() != 1 {
		t.Errorf("wrong echo: got %q (%d connections), want %q", got, n.Load(), want)
	}

	// Nothing listening: connection refused.
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	closed := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	ln.Close()
	got = exchange(t, refl, Request{Port: closed, Nonce: nonce}.String()+"\n")
	if !strings.HasPrefix(got, fmt.Sprintf("FAIL could not connect to 127.0.0.1:%d within 500ms: ", closed)) || !strings.Contains(got, "refused") {
		t.Errorf("closed port: got %q", got)
	}
	a, err := ParseAnswer(got)
	if err != nil || a.Kind != "FAIL" || a.Target.Port() != closed {
		t.Errorf("FAIL answer does not parse back: %+v, %v", a, err)
	}
}

func TestReflectorAbuse(t *testing.T) {
	refl := startServer(t, &Server{Window: 500 * time.Millisecond, PerMinute: 100})
	nonce := NewNonce()
	// A third party listens on 127.0.0.2; nobody may make the reflector
	// connect there.
	third, port := countingListener(t, "127.0.0.2:0", EchoMagic+" "+nonce+"\n")
	for _, tc := range []struct{ name, raw, want string }{
		{"names host:port", fmt.Sprintf("NETINIT-PROBE 1 127.0.0.2:%d %s\n", port, nonce), "ERR " + ErrNamesAddress.Error() + "\n"},
		{"names address", fmt.Sprintf("NETINIT-PROBE 1 %d %s 127.0.0.2\n", port, nonce), "ERR " + ErrNamesAddress.Error() + "\n"},
		{"names v6", fmt.Sprintf("NETINIT-PROBE 1 %d %s [2001:db8::7]\n", port, nonce), "ERR " + ErrNamesAddress.Error() + "\n"},
		{"malformed", "HELO example.org\r\n", "ERR " + ErrNotProbe.Error() + "\n"},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", "ERR " + errControlInLine.Error() + "\n"},
		{"low port", "NETINIT-PROBE 1 22 " + nonce + "\n", "ERR " + ErrLowPort.Error() + "\n"},
		{"over-long line", strings.Repeat("A", 64<<10), "ERR line too long\n"},
		{"over-long request", "NETINIT-PROBE 1 40000 " + strings.Repeat("a", 1<<10) + "\n", "ERR line too long\n"},
	} {
		if got := exchange(t, refl, tc.raw); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := third.Load(); n != 0 {
		t.Fatalf("the reflector connected %d times to the third address", n)
	}
}

func TestReflectorRateLimit(t *testing.T) {
	refl := startServer(t, &Server{Window: 300 * time.Millisecond, PerMinute: 5})
	nonce := NewNonce()
	echoes, port := countingListener(t, "127.0.0.1:0", EchoMagic+" "+nonce+"\n")
	var ok, limited int
	for i := 0; i < 12; i++ {
		switch got := exchange(t, refl, Request{Port: port, Nonce: nonce}.String()+"\n"); {
		case strings.HasPrefix(got, "OK connected 127.0.0.1:"):
			ok++
		case got == "ERR rate limited\n":
			limited++
		default:
			t.Errorf("request %d: unexpected answer %q", i, got)
		}
	}
	if ok != 5 || limited != 7 || echoes.Load() != 5 {
		t.Fatalf("%d OK, %d rate limited, %d connect-backs; want 5, 7, 5", ok, limited, echoes.Load())
	}
}

func TestReflectorBusyAndReadTimeout(t *testing.T) {
	refl := startServer(t, &Server{MaxConns: 1, ReadTimeout: 300 * time.Millisecond, PerMinute: 100})
	// A silent client holds the only slot...
	silent, err := net.Dial("tcp", refl)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond)
	// ...so the next one is turned away at once.
	if got := exchange(t, refl, "NETINIT-PROBE 1 40000 "+NewNonce()+"\n"); got != "ERR busy\n" {
		t.Fatalf("second client: got %q, want ERR busy", got)
	}
	// The silent one is cut off after ReadTimeout, without an answer.
	_ = silent.SetDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(silent)
	if len(b) != 0 || time.Since(start) > 2*time.Second {
		t.Fatalf("silent client: got %q after %v", b, time.Since(start))
	}
}

// emfileListener fails its first n Accepts with EMFILE, as a reflector out
// of file descriptors sees.
type emfileListener struct {
	net.Listener
	n atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestReflectorAcceptEMFILE: running out of file descriptors for a
// moment does not end Serve; the next client is served.
func TestReflectorAcceptEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &emfileListener{Listener: ln}
	el.n.Store(5)
	var logs atomic.Int32
	stop := serve(t, &Server{Logf: func(string, ...any) { logs.Add(1) }}, el)
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	ans, err := AskReflector(actx, "tcp4", loop4, ln.Addr().String())
	if err != nil || ans.Kind != "OK" {
		t.Errorf("after EMFILE: %+v, %v", ans, err)
	}
	stop()
	if el.n.Load() >= 0 || logs.Load() < 5 {
		t.Errorf("EMFILE not seen or not logged: %d left, %d log lines", el.n.Load(), logs.Load())
	}
}

// TestReflectorPerSourceBusy: idle connections from one source take at
// most MaxPerSource slots; another source is still served.
func TestReflectorPerSourceBusy(t *testing.T) {
	refl := startServer(t, &Server{ReadTimeout: 3 * time.Second, PerMinute: 100})
	for i := range 3 {
		c, err := net.Dial("tcp4", refl)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b, _ := io.ReadAll(c)
		if want := map[bool]string{true: "", false: "ERR busy\n"}[i < 2]; string(b) != want {
			t.Errorf("idle connection %d: %q, want %q", i, b, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if ans, err := AskReflector(ctx, "tcp4", netip.MustParseAddr("127.0.0.2"), refl); err != nil || ans.Kind != "OK" {
		t.Errorf("another source: %+v, %v", ans, err)
	}
}
