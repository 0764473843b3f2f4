package h1

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// answers is an answer func writing a fixed reply to each request (the last
// one repeats).
func answers(replies ...string) func(int, *http.Request, net.Conn) bool {
	return func(n int, _ *http.Request, c net.Conn) bool {
		io.WriteString(c, replies[min(n, len(replies))-1])
		return false
	}
}

func poolTo(t testing.TB, u *testkit.RawUpstream, tlsConf *tls.Config) *Pool {
	t.Helper()
	p := NewPool(PoolOptions{Network: "tcp", Addr: u.Addr(), TLS: tlsConf})
	t.Cleanup(p.Close)
	return p
}

// sink collects a response body; it counts flushes.
type sink struct {
	bytes.Buffer
	flushes int
}

func (s *sink) FlushError() error { s.flushes++; return nil }

// result is one exchange as a client saw it.
type result struct {
	status int
	header http.Header
	body   string
	err    error
}

func do(t testing.TB, p *Pool, method, path, body string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &Request{Method: method, Path: path, Host: "hs.example", Header: http.Header{}}
	if body != "" {
		req.Body, req.ContentLength = strings.NewReader(body), int64(len(body))
	}
	return exchange(ctx, p, req)
}

func exchange(ctx context.Context, p *Pool, req *Request) result {
	res, err := p.RoundTrip(ctx, req)
	if err != nil {
		return result{err: err}
	}
	defer res.Close()
	out := result{status: res.Status, header: http.Header{}}
	res.Header(out.header)
	var s sink
	out.err = res.WriteBody(&s)
	out.body = s.String()
	return out
}

// waitIdleDead waits until the kernel reports the pool's idle connection
// closed by the peer or holding unread bytes: the signal that what the
// upstream sent has arrived. The connection stays in the pool.
func waitIdleDead(t *testing.T, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		var c *conn
		if len(p.idle) > 0 {
			c = p.idle[len(p.idle)-1]
		}
		p.mu.Unlock()
		if c == nil {
			t.Fatal("no idle connection")
		}
		if !peekIdle(c.raw) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection never showed the upstream's bytes or close")
		}
		time.Sleep(time.Millisecond)
	}
}

// testTLS returns a server config with a fresh certificate and a client
// config trusting it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	hs.StartTLS()
	defer hs.Close()
	server = hs.TLS.Clone()
	client = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	client.ServerName = "example.com"
	client.NextProtos = []string{"http/1.1"}
	server.NextProtos = []string{"http/1.1"}
	return server, client
}

// memConn is a net.Conn reading from a fixed byte stream (parsers' tests).
type memConn struct {
	net.Conn
	r io.Reader
}

func (m *memConn) Read(p []byte) (int, error)       { return m.r.Read(p) }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }
func (m *memConn) Write(p []byte) (int, error)      { return len(p), nil }

var tlsConfigNoRoots = tls.Config{RootCAs: x509.NewCertPool(), ServerName: "example.com"}
