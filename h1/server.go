package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves HTTP/1.1 on the listeners given to Serve, in place of
// net/http's server: one goroutine per connection that reads each request
// head into a pooled buffer taken only when bytes arrive, no background read
// per request, one allocation for the strings of a head, a response written
// in one system call when it fits. With TLSConfig set it terminates TLS and
// hands connections that chose h2 by ALPN to H2, Go's own server, untouched.
//
// Handlers get an *http.Request and an http.ResponseWriter as from net/http;
// the request (and its Header) is reused for the connection's next request
// once the handler has returned, so a handler must not keep them.
type Server struct {
	Handler http.Handler
	// TLSConfig, when set, is the TLS configuration (certificates come from
	// it); NextProtos gets "h2" (when H2 is set) and "http/1.1" first.
	TLSConfig *tls.Config
	// H2 serves the TLS connections that negotiated h2; nil: h2 not offered.
	H2 *http.Server
	// ReadHeaderTimeout bounds a request head from its first byte, and the
	// TLS handshake. IdleTimeout bounds the wait for the next request.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes caps a request head (request line and fields); a
	// longer one is answered 431. 0: 1 MiB, as net/http.
	MaxHeaderBytes int
	// ErrorLog receives TLS handshake failures and handler panics, in
	// net/http's words; nil: the log package's standard logger.
	ErrorLog *log.Logger

	once     sync.Once
	tlsConf  *tls.Config
	h2ln     *connListener
	h2done   chan struct{}
	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*serverConn]struct{}
	shutting atomic.Bool
}

// Connection states, for Shutdown: idle connections (between requests, or
// before the first) may be closed; active ones are waited for.
const (
	stateNew int32 = iota // accepted, no request begun yet
	stateIdle
	stateActive
	stateClosed
)

// newConnGrace is how long Shutdown lets a new connection bring its first
// request (its bytes may be on the way), as net/http does.
const newConnGrace = 5 * time.Second

func (s *Server) init() {
	s.once.Do(func() {
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
		if s.TLSConfig != nil {
			c := s.TLSConfig.Clone()
			protos := []string{"http/1.1"}
			if s.H2 != nil {
				protos = []string{"h2", "http/1.1"}
			}
			for _, p := range c.NextProtos {
				if !slices.Contains(protos, p) {
					protos = append(protos, p)
				}
			}
			c.NextProtos = protos
			if c.MinVersion < tls.VersionTLS12 {
				c.MinVersion = tls.VersionTLS12
			}
			s.tlsConf = c
			if s.H2 != nil {
				s.h2ln = newConnListener()
				s.h2done = make(chan struct{})
				go func() {
					defer close(s.h2done)
					s.H2.Serve(s.h2ln)
				}()
			}
		}
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// Serve accepts connections on ln until Shutdown or Close; it then returns
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sc := newServerConn(s, nc)
		if !s.track(sc) {
			nc.Close()
			return http.ErrServerClosed
		}
		go sc.serve()
	}
}

func (s *Server) track(sc *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return false
	}
	s.conns[sc] = struct{}{}
	return true
}

func (s *Server) untrack(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// closeListeners stops accepting; the caller holds s.mu.
func (s *Server) closeListeners() {
	for ln := range s.lns {
		ln.Close()
		delete(s.lns, ln)
	}
}

// Shutdown stops accepting, closes idle connections as they become idle,
// lets active requests finish (their answers say Connection: close), and
// returns when every connection is gone, or ctx's error when it ends first.
// The h2 server is shut down alongside. Hijacked connections are not
// waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.shutting.Store(true)
	s.closeListeners()
	s.mu.Unlock()
	h2err := make(chan error, 1)
	if s.H2 != nil && s.h2ln != nil {
		go func() { h2err <- s.H2.Shutdown(ctx) }()
	} else {
		h2err <- nil
	}
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if s.closeIdle() {
			select {
			case err := <-h2err:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			wait = min(2*wait, 100*time.Millisecond)
			t.Reset(wait)
		}
	}
}

// closeIdle closes the idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		if sc.state.CompareAndSwap(stateIdle, stateClosed) ||
			(time.Since(sc.accepted) > newConnGrace && sc.state.CompareAndSwap(stateNew, stateClosed)) {
			sc.c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection at once, h2 ones included.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.shutting.Store(true)
	s.closeListeners()
	for sc := range s.conns {
		sc.state.Store(stateClosed)
		sc.c.nc.Close()
	}
	s.mu.Unlock()
	if s.H2 != nil && s.h2ln != nil {
		return s.H2.Close()
	}
	return nil
}

// connListener hands connections that negotiated h2 to Go's HTTP/2 server,
// which takes them as from any listener (their handshake is done).
type connListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// hand passes c to the h2 server, or closes it when that server is gone.
func (l *connListener) hand(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}
