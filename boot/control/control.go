// Package control is the network daemon's control socket: a Unix stream
// socket (/run/netinit/ctl.sock, mode 0600) speaking one JSON object per
// line. Only root may talk to it (SO_PEERCRED). The protocol is in
// docs/control.md:
//
//	→ {"cmd":"status"}            ← {"ok":true,"state":{...}}
//	→ {"cmd":"renew"}             ← {"ok":true}   (re-run DHCP and RS now)
//	→ {"cmd":"probe"}             ← {"ok":true}   (re-run the connectivity probes)
//	→ {"cmd":"identity","path":P} ← {"ok":true}   (Yggdrasil takes the 0-OS node identity in P)
//	→ anything else               ← {"ok":false,"error":"..."}
//
// A connection may carry several requests; each gets one reply line.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/state"
)

// DefaultPath is the daemon's socket at boot.
const DefaultPath = "/run/netinit/ctl.sock"

// maxRequest bounds one request line; longer ones are refused.
const maxRequest = 4096

// Request is one command.
type Request struct {
	Cmd string `json:"cmd"`
	// Path is the seed file of the "identity" command.
	Path string `json:"path,omitempty"`
}

// Reply answers one request.
type Reply struct {
	OK    bool         `json:"ok"`
	Error string       `json:"error,omitempty"`
	State *state.State `json:"state,omitempty"`
}

// Handler is what the daemon offers on the socket.
type Handler interface {
	Status() *state.State
	Renew()
	Probe()
}

// IdentitySetter is offered by a daemon that runs Yggdrasil: the
// "identity" command hands it the 0-OS node identity's seed file.
type IdentitySetter interface {
	SetIdentity(path string) error
}

// Server serves a Handler on a Unix socket.
type Server struct {
	ln   *net.UnixListener
	path string
	h    Handler
	// AllowUID is the only peer uid answered (SO_PEERCRED): 0, root, in
	// the daemon; tests set their own.
	AllowUID uint32
	// Logf, if set, logs contained panics.
	Logf console.Logf
	wg   sync.WaitGroup
}

// Listen creates the socket at path (replacing a stale one) with mode
// 0600.
func Listen(path string, h Handler) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	_ = os.Remove(path) // a socket left by a dead daemon
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{ln: ln, path: path, h: h}, nil
}

// Serve answers connections until ctx ends, then closes the socket and
// waits for open connections to finish (each is bounded by a deadline).
func (s *Server) Serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, c)
		}()
	}
	s.wg.Wait()
	_ = os.Remove(s.path)
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	// When the daemon stops, an open connection ends at once rather than
	// at its deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	enc := json.NewEncoder(c)
	if err := s.checkPeer(c); err != nil {
		_ = enc.Encode(Reply{Error: err.Error()})
		return
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 512), maxRequest)
	for sc.Scan() && ctx.Err() == nil {
		_ = enc.Encode(s.handle(sc.Bytes()))
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		_ = enc.Encode(Reply{Error: fmt.Sprintf("request longer than %d bytes", maxRequest)})
	}
}

// checkPeer refuses every peer but root (SO_PEERCRED).
func (s *Server) checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if cred.Uid != s.AllowUID {
		return fmt.Errorf("permission denied: uid %d may not use the netinit control socket", cred.Uid)
	}
	return nil
}

// handle answers one request. A panic in the handler is contained: the
// peer gets an error, the daemon goes on.
func (s *Server) handle(line []byte) (reply Reply) {
	defer func() {
		if r := recover(); r != nil {
			reply = Reply{Error: fmt.Sprintf("internal error (contained): %v", r)}
			if s.Logf != nil {
				s.Logf("control: internal error (contained): %v\n%s", r, debug.Stack())
			}
		}
	}()
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Reply{Error: "malformed request: " + err.Error()}
	}
	switch req.Cmd {
	case "status":
		return Reply{OK: true, State: s.h.Status()}
	case "renew":
		s.h.Renew()
		return Reply{OK: true}
	case "probe":
		s.h.Probe()
		return Reply{OK: true}
	case "identity":
		is, ok := s.h.(IdentitySetter)
		switch {
		case !ok:
			return Reply{Error: "identity: this daemon runs no overlays"}
		case !filepath.IsAbs(req.Path):
			return Reply{Error: fmt.Sprintf("identity: %q is not an absolute path", req.Path)}
		}
		if err := is.SetIdentity(req.Path); err != nil {
			return Reply{Error: "identity: " + err.Error()}
		}
		return Reply{OK: true}
	case "":
		return Reply{Error: `missing "cmd"`}
	}
	return Reply{Error: fmt.Sprintf("unknown command %q (want status, renew, probe or identity)", req.Cmd)}
}

// Call sends one request to the socket at path and returns the reply,
// bounded by ctx.
func Call(ctx context.Context, path, cmd string) (*Reply, error) {
	return Do(ctx, path, Request{Cmd: cmd})
}

// Do sends one request to the socket at path and returns the reply,
// bounded by ctx.
func Do(ctx context.Context, path string, req Request) (*Reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// A refusing server answers and closes without reading: the write may
	// fail while its reply is already waiting to be read.
	werr := json.NewEncoder(c).Encode(req)
	var r Reply
	dec := json.NewDecoder(bufio.NewReader(c))
	if err := dec.Decode(&r); err != nil {
		if werr != nil {
			return nil, werr
		}
		return nil, fmt.Errorf("reading reply: %w", err)
	}
	if !r.OK {
		return &r, fmt.Errorf("%s", r.Error)
	}
	return &r, nil
}
