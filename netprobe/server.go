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
	"syscall"
	"time"

	"github.com/threefoldtech/netinit/boot/console"
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
	// MaxPerSource bounds the requests of one source (IPv4 address or
	// IPv6 /64) handled at once (default 2), MaxPerSite those of one IPv6
	// /48 (default 8): idle connections from one network cannot take
	// every slot.
	MaxPerSource, MaxPerSite int
	// ReadTimeout bounds the wait for the request line (default 1 s: a
	// client sends it right after connecting).
	ReadTimeout time.Duration
	// Logf, if set, logs one line per request.
	Logf console.Logf
	// Dialer is used for the connect-back (default: a plain net.Dialer).
	Dialer *net.Dialer

	once    sync.Once
	limiter *Limiter
	sem     chan struct{}

	mu     sync.Mutex
	active map[netip.Prefix]int // requests in flight per source and /48
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
		if s.MaxPerSource <= 0 {
			s.MaxPerSource = 2
		}
		if s.MaxPerSite <= 0 {
			s.MaxPerSite = 8
		}
		if s.ReadTimeout <= 0 {
			s.ReadTimeout = time.Second
		}
		if s.Dialer == nil {
			s.Dialer = &net.Dialer{}
		}
		s.limiter = NewLimiter(s.PerMinute, s.Burst)
		s.sem = make(chan struct{}, s.MaxConns)
		s.active = make(map[netip.Prefix]int)
	})
}

// enter counts a request of src in flight, unless its source or /48 has
// as many as allowed already; leave undoes it.
func (s *Server) enter(src netip.Addr) bool {
	k, site := sourceKey(src), siteKey(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[k] >= s.MaxPerSource || (site.IsValid() && s.active[site] >= s.MaxPerSite) {
		return false
	}
	s.active[k]++
	if site.IsValid() {
		s.active[site]++
	}
	return true
}

func (s *Server) leave(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []netip.Prefix{sourceKey(src), siteKey(src)} {
		if k.IsValid() {
			if s.active[k]--; s.active[k] <= 0 {
				delete(s.active, k)
			}
		}
	}
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
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("probe-server: accept on %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors or memory, or a connection aborted
			// before it was accepted: wait and go on, as net/http does
			// (5 ms doubling up to 1 s), rather than end the reflector.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logf("accept on %s: %v; retrying in %v", ln.Addr(), err, backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
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
		if !s.enter(src) {
			s.logf("%s: busy (requests in flight from its network)", src)
			refuse(c, ErrBusy)
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.leave(src)
			s.logf("%s: busy", src)
			refuse(c, ErrBusy)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.leave(src)
			defer func() { <-s.sem }()
			s.handle(ctx, c, src)
		}()
	}
}

// temporary reports whether an accept error is worth retrying.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
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
