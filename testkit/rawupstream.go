package testkit

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// RawUpstream is an HTTP/1.1 upstream on loopback that speaks raw bytes, for
// tests of a client's framing and connection reuse. It reads each request
// with http.ReadRequest, keeps the request's head as it came on the wire, and
// hands the request to the test's answer func, which writes what it wants to
// the connection (it may write in several parts and wait in between) and says
// whether to close the connection afterwards.
type RawUpstream struct {
	// Closed receives one value per connection the upstream closed, after
	// the close. It holds up to 64 values; beyond that, closes are not told.
	Closed chan struct{}

	ln      net.Listener
	tls     bool
	answer  func(n int, req *http.Request, c net.Conn) (closeAfter bool)
	accepts atomic.Int64
	mu      sync.Mutex
	heads   []string
	conns   map[net.Conn]struct{} // open connections
	stopped bool                  // set in Cleanup: connections are closed as accepted
	wg      sync.WaitGroup
}

// NewRawUpstream starts a RawUpstream on 127.0.0.1, behind TLS when tlsConf
// is not nil. answer is called for the n-th request the upstream read (from
// 1, counted over all connections), after its body was read. In t's Cleanup
// the upstream stops listening, closes the connections still open and waits
// for their goroutines (an answer func still blocked holds the Cleanup up).
func NewRawUpstream(t testing.TB, tlsConf *tls.Config, answer func(n int, req *http.Request, c net.Conn) (closeAfter bool)) *RawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	u := &RawUpstream{ln: ln, tls: tlsConf != nil, answer: answer, conns: map[net.Conn]struct{}{}, Closed: make(chan struct{}, 64)}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			u.mu.Lock()
			if u.stopped {
				c.Close()
			}
			u.conns[c] = struct{}{}
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				u.serveConn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		u.stopped = true
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *RawUpstream) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
		select {
		case u.Closed <- struct{}{}:
		default:
		}
	}()
	// seen holds what was read from c from the current request on (the
	// next requests may already be in it, when the client pipelines).
	var seen bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &seen))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		raw := seen.String()
		if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
			raw = raw[:i+4]
		}
		io.Copy(io.Discard, req.Body)
		seen.Next(seen.Len() - br.Buffered())
		u.mu.Lock()
		u.heads = append(u.heads, raw)
		n := len(u.heads)
		u.mu.Unlock()
		if u.answer(n, req, c) {
			return
		}
	}
}

// Addr is the upstream's host:port.
func (u *RawUpstream) Addr() string { return u.ln.Addr().String() }

// URL is the upstream's base URL: http://host:port, or https:// behind TLS.
func (u *RawUpstream) URL() string {
	if u.tls {
		return "https://" + u.Addr()
	}
	return "http://" + u.Addr()
}

// Accepts is how many connections the upstream accepted so far.
func (u *RawUpstream) Accepts() int64 { return u.accepts.Load() }

// Heads are the raw heads of the requests read so far, in order, each up to
// and including the blank line that ends it.
func (u *RawUpstream) Heads() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.heads...)
}

// LastHead is the raw head of the last request read; it fails the test when
// there was none.
func (u *RawUpstream) LastHead(t testing.TB) string {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.heads) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return u.heads[len(u.heads)-1]
}
