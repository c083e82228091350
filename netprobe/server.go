package netprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Server is the reflector of docs/probe-protocol.md: it connects back to
// the source address of each request, on the port the request names, and
// says whether that worked. The zero value is usable; zero fields take the
// defaults below.
type Server struct {
	// Window bounds the connect-back: the TCP connect and the nonce echo
	// together (default 1 s). Keep it below the nodes' probe timeout
	// (Config.Timeout, default 2 s) so that a FAIL reaches them in time.
	Window time.Duration
	// PerMinute is the number of requests per minute a source (IPv4
	// address or IPv6 /64) may make after its burst (default 5); Burst
	// defaults to PerMinute.
	PerMinute, Burst int
	// MaxConns bounds the requests handled at once (default 64); beyond
	// that a connection is answered "ERR busy" and closed.
	MaxConns int
	// ReadTimeout bounds the wait for the request line (default 3 s).
	ReadTimeout time.Duration
	// Logf, if set, logs one line per request.
	Logf func(format string, args ...any)
	// Dialer is used for the connect-back (default: a plain net.Dialer).
	Dialer *net.Dialer

	once    sync.Once
	limiter *Limiter
	sem     chan struct{}
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.Window <= 0 {
			s.Window = time.Second
		}
		if s.PerMinute <= 0 {
			s.PerMinute = 5
		}
		if s.Burst <= 0 {
			s.Burst = s.PerMinute
		}
		if s.MaxConns <= 0 {
			s.MaxConns = 64
		}
		if s.ReadTimeout <= 0 {
			s.ReadTimeout = 3 * time.Second
		}
		if s.Dialer == nil {
			s.Dialer = &net.Dialer{}
		}
		s.limiter = NewLimiter(s.PerMinute, s.Burst)
		s.sem = make(chan struct{}, s.MaxConns)
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Serve answers requests on ln until ctx ends, then closes ln and waits
// for the requests in flight (each bounded by ReadTimeout + Window).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("probe-server: accept on %s: %w", ln.Addr(), err)
		}
		src, ok := remoteAddr(c)
		if !ok {
			c.Close()
			continue
		}
		// The rate limit and the concurrency bound are checked before
		// anything is read, so a flood costs the reflector one accept and
		// one short write per connection.
		if !s.limiter.Allow(src) {
			s.logf("%s: rate limited", src)
			refuse(c, ErrRateLimited)
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.logf("%s: busy", src)
			refuse(c, ErrBusy)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.sem }()
			s.handle(ctx, c, src)
		}()
	}
}

func remoteAddr(c net.Conn) (netip.Addr, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ap := ta.AddrPort()
	return ap.Addr().Unmap(), ap.Addr().IsValid()
}

func refuse(c net.Conn, err error) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.WriteString(c, "ERR "+err.Error()+"\n")
	c.Close()
}

// handle serves one request on c from src.
func (s *Server) handle(ctx context.Context, c net.Conn, src netip.Addr) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(s.ReadTimeout + s.Window + time.Second))
	_ = c.SetReadDeadline(time.Now().Add(s.ReadTimeout))
	line, err := readLine(c, MaxLine)
	if err != nil {
		if errors.Is(err, ErrLineTooLong) {
			s.logf("%s: %v", src, err)
			_, _ = io.WriteString(c, "ERR "+err.Error()+"\n")
		}
		return
	}
	req, err := ParseRequest(line)
	if err != nil {
		s.logf("%s: %v", src, err)
		_, _ = io.WriteString(c, "ERR "+err.Error()+"\n")
		return
	}
	answer := s.connectBack(ctx, netip.AddrPortFrom(src, req.Port), req.Nonce)
	s.logf("%s: %s", src, answer)
	_, _ = io.WriteString(c, answer+"\n")
}

// connectBack connects to target (always the request's own source
// address) and checks the nonce echo, within Window.
func (s *Server) connectBack(ctx context.Context, target netip.AddrPort, nonce string) string {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.Window)
	defer cancel()
	fail := func(reason string) string {
		return fmt.Sprintf("FAIL could not connect to %s within %dms: %s", target, s.Window.Milliseconds(), reason)
	}
	c, err := s.Dialer.DialContext(ctx, "tcp", target.String())
	if err != nil {
		return fail(dialReason(err))
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	line, err := readLine(c, MaxLine)
	if err != nil {
		return fail("connected but no nonce echo: " + dialReason(err))
	}
	if strings.TrimRight(line, "\r\n") != EchoMagic+" "+nonce {
		return fail("connected but the listener did not echo the nonce")
	}
	return fmt.Sprintf("OK connected %s in %dms", target, time.Since(start).Milliseconds())
}

// dialReason shortens a dial error to what matters to a farmer.
func dialReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout (inbound filtered?)"
	case errors.Is(err, io.EOF):
		return "connection closed"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// readLine reads one line of at most max bytes (newline included) from r,
// one byte at a time, so nothing past the line is consumed and an
// over-long line is detected after max bytes, whatever follows.
func readLine(r io.Reader, max int) (string, error) {
	var b strings.Builder
	var one [1]byte
	for b.Len() < max {
		n, err := r.Read(one[:])
		if n == 1 {
			b.WriteByte(one[0])
			if one[0] == '\n' {
				return b.String(), nil
			}
			continue
		}
		if err != nil {
			if err == io.EOF && b.Len() > 0 {
				return b.String(), nil
			}
			return "", err
		}
	}
	return "", ErrLineTooLong
}
