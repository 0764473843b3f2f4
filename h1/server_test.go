package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// The server against a hostile client: raw bytes over loopback TCP (and
// TLS), one behaviour per test. The invariant behind most of them: each
// request gets its own answer or an error, never another's bytes, and a
// connection whose framing is in doubt is closed.

// safety bounds every client read, so that a test fails instead of hanging;
// no test waits for it to pass.
const safety = 10 * time.Second

// testServer is a Server on a loopback listener, served in the background
// until the test's end.
type testServer struct {
	*Server
	addr   string
	log    *testkit.Buffer // the server's ErrorLog
	served chan error      // Serve's result
	conns  chan *hookConn  // the server's side of each connection, as accepted
}

func startServer(t testing.TB, s *Server) *testServer {
	t.Helper()
	return startServerHooked(t, s, true)
}

// startServerHooked is startServer, with the server's connections hooked
// (hookConn) or as the listener makes them (no conns then; writev used).
func startServerHooked(t testing.TB, s *Server, hooks bool) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), log: &testkit.Buffer{}, served: make(chan error, 1), conns: make(chan *hookConn, 64)}
	if s.ErrorLog == nil {
		s.ErrorLog = log.New(ts.log, "", 0)
	}
	if hooks {
		ln = &hookListener{Listener: ln, conns: ts.conns}
	}
	go func() { ts.served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-ts.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ts
}

// serve starts a Server with handler h and long timeouts.
func serve(t testing.TB, h http.HandlerFunc) *testServer {
	t.Helper()
	return startServer(t, &Server{Handler: h, ReadHeaderTimeout: safety, IdleTimeout: safety})
}

// conn returns the server's side of the next connection it accepted.
func (ts *testServer) conn(t testing.TB) *hookConn {
	t.Helper()
	select {
	case c := <-ts.conns:
		return c
	case <-time.After(safety):
		t.Fatal("the server accepted no connection")
		return nil
	}
}

// hookListener gives the server connections that tell the test what the
// server does with them.
type hookListener struct {
	net.Listener
	conns chan *hookConn
}

func (l *hookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	hc := &hookConn{Conn: c, tcp: c.(*net.TCPConn), closed: make(chan struct{})}
	select {
	case l.conns <- hc:
	default:
	}
	return hc, nil
}

// hookConn is the server's side of a connection. Write calls are counted
// (writev is not used: net.Buffers falls back to one Write a buffer, so the
// count is the number of system calls; tests of the write paths run
// unhooked too); Close is told.
type hookConn struct {
	net.Conn
	tcp    *net.TCPConn
	writes atomic.Int64
	once   sync.Once
	closed chan struct{}
}

func (c *hookConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *hookConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *hookConn) CloseWrite() error                     { return c.tcp.CloseWrite() }
func (c *hookConn) SyscallConn() (syscall.RawConn, error) { return c.tcp.SyscallConn() }

// waitClosed waits until the server closed its side.
func (c *hookConn) waitClosed(t testing.TB) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(safety):
		t.Fatal("the server never closed the connection")
	}
}

// wait receives from ch, or fails the test after safety.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(safety):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// gate is a channel a handler waits on; it is opened at the latest in the
// test's Cleanup, so that no handler outlives its test.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t testing.TB) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// client is the hostile client: raw bytes out, responses parsed in.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

func dialTLS(t testing.TB, addr string, conf *tls.Config) *client {
	t.Helper()
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, c)
}

func newClient(t testing.TB, c net.Conn) *client {
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(safety))
	return &client{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read reads one response to a request of method, and its body. The
// Connection field is as on the wire (http.ReadResponse drops "close").
func (c *client) read(method string) (*http.Response, string, error) {
	head, err := c.peekHead()
	if err != nil {
		return nil, "", err
	}
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	raw, err := textproto.NewReader(bufio.NewReader(strings.NewReader(head))).ReadMIMEHeader()
	if err != nil {
		return nil, "", err
	}
	res.Header["Connection"] = raw["Connection"]
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), err
}

// peekHead returns the next response head, status line excluded, without
// consuming it.
func (c *client) peekHead() (string, error) {
	for n := 4; ; n++ {
		b, err := c.br.Peek(n)
		if err != nil {
			return "", err
		}
		if string(b[n-4:]) == "\r\n\r\n" {
			_, fields, _ := strings.Cut(string(b), "\r\n")
			return fields, nil
		}
	}
}

// mustRead is read failing the test on an error.
func (c *client) mustRead(method string) (*http.Response, string) {
	c.t.Helper()
	res, body, err := c.read(method)
	if err != nil {
		c.t.Fatalf("reading the answer: %v", err)
	}
	return res, body
}

// expectClosed asserts that the server sends nothing more and closes the
// connection (an end of stream or a reset).
func (c *client) expectClosed() {
	c.t.Helper()
	b, err := io.ReadAll(c.br)
	if len(b) > 0 {
		c.t.Fatalf("got %q after the answer, want the connection closed", b)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("waiting for the close: %v", err)
	}
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n" }

// echo answers the method, the path and the request body.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

func wantStatus(t testing.TB, res *http.Response, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("status %d, want %d", res.StatusCode, code)
	}
}

func wantClose(t testing.TB, res *http.Response, want bool) {
	t.Helper()
	if got := res.Header.Get("Connection") == "close"; got != want {
		t.Fatalf("Connection: %q, want close %v", res.Header.Get("Connection"), want)
	}
}

// ---- Keep-alive and pipelining ----

func TestServerKeepAlive(t *testing.T) {
	var remotes []string
	var mu sync.Mutex
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes = append(remotes, r.RemoteAddr)
		mu.Unlock()
		echo(w, r)
	})
	c := dial(t, ts.addr)
	for _, p := range []string{"/one", "/two"} {
		c.send(get(p))
		res, body := c.mustRead("GET")
		wantClose(t, res, false)
		if body != "GET "+p+" " {
			t.Fatalf("answer %q to %s", body, p)
		}
	}
	ts.conn(t)
	select {
	case c := <-ts.conns:
		t.Fatalf("a second connection %v: want both requests on one", c.RemoteAddr())
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if len(remotes) != 2 || remotes[0] != remotes[1] || remotes[0] != c.c.LocalAddr().String() {
		t.Errorf("handler saw RemoteAddr %v, want the client's %v twice", remotes, c.c.LocalAddr())
	}
}

// Connection: close, asked by the client or set by the handler, is answered
// Connection: close, and the connection closes: a request after it is not
// served.
func TestServerConnectionClose(t *testing.T) {
	var calls atomic.Int64
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path == "/handler" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "bye")
	})
	for _, req := range []string{
		"GET /client HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n",
		get("/handler"),
	} {
		before := calls.Load()
		c := dial(t, ts.addr)
		c.send(req + get("/after"))
		res, body := c.mustRead("GET")
		wantClose(t, res, true)
		if body != "bye" {
			t.Errorf("body %q", body)
		}
		c.expectClosed()
		if n := calls.Load() - before; n != 1 {
			t.Errorf("%q: %d handler calls, want 1", req, n)
		}
	}
}

// Requests in one write, with and without bodies, each get their own answer,
// in order; so do two hundred of them (more than the read buffer holds).
func TestServerPipelined(t *testing.T) {
	ts := startServerHooked(t, &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: safety}, false)
	c := dial(t, ts.addr)
	c.send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		get("/b") +
		"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"HEAD /d HTTP/1.1\r\nHost: h\r\n\r\n" +
		get("/e"))
	for _, want := range []struct{ method, body string }{{"POST", "POST /a hello"}, {"GET", "GET /b "}, {"PUT", "PUT /c abc"}, {"HEAD", ""}, {"GET", "GET /e "}} {
		res, body := c.mustRead(want.method)
		wantStatus(t, res, 200)
		if body != want.body {
			t.Fatalf("answer %q, want %q", body, want.body)
		}
	}

	const n = 200
	var all strings.Builder
	for i := range n {
		all.WriteString(get("/" + strconv.Itoa(i)))
	}
	go io.WriteString(c.c, all.String())
	for i := range n {
		_, body := c.mustRead("GET")
		if want := "GET /" + strconv.Itoa(i) + " "; body != want {
			t.Fatalf("answer %d: %q, want %q", i, body, want)
		}
	}
}

// ---- Request bodies ----

func TestServerRequestBody(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB
	var chunks strings.Builder
	for i := 0; i < len(big); i += 1000 {
		part := big[i:min(i+1000, len(big))]
		fmt.Fprintf(&chunks, "%x\r\n%s\r\n", len(part), part)
	}
	tests := []struct {
		name, head, body, want string
	}{
		{"Content-Length", "Content-Length: 11\r\n", "hello world", "hello world"},
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
		{"chunk extensions", "Transfer-Encoding: chunked\r\n", "5;a=b;c=\"d e\"\r\nhello\r\n6;x\r\n world\r\n0;end\r\n\r\n", "hello world"},
		{"trailer", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n", "hello"},
		{"large Content-Length", "Content-Length: " + strconv.Itoa(len(big)) + "\r\n", big, big},
		{"large chunked", "Transfer-Encoding: chunked\r\n", chunks.String() + "0\r\n\r\n", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := serve(t, echo)
			c := dial(t, ts.addr)
			// The body, then a request in the same stream: the body must
			// be consumed exactly.
			go io.WriteString(c.c, "POST /up HTTP/1.1\r\nHost: h\r\n"+tt.head+"\r\n"+tt.body+get("/next"))
			res, body := c.mustRead("POST")
			wantStatus(t, res, 200)
			wantClose(t, res, false)
			if body != "POST /up "+tt.want {
				t.Fatalf("handler read %d bytes %.40q…, want %d", len(body)-len("POST /up "), body, len(tt.want))
			}
			if _, body := c.mustRead("GET"); body != "GET /next " {
				t.Fatalf("next request answered %q", body)
			}
		})
	}
}

// A body the handler cannot read whole (bad chunk framing, a client that
// stops early) is an error to the handler, and the connection is closed.
func TestServerBadRequestBody(t *testing.T) {
	tests := []struct {
		name, req string
		want      error
	}{
		{"bare LF in chunk size", "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", ErrChunked},
		{"chunk data longer than its size", "Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", ErrChunked},
		{"chunk size not hex", "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", ErrChunked},
		{"chunk size overflow", "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", ErrChunked},
		{"body cut short", "Content-Length: 10\r\n\r\nhello", io.ErrUnexpectedEOF},
		{"chunked body cut short", "Transfer-Encoding: chunked\r\n\r\n5\r\nhel", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := make(chan error, 1)
			ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				errs <- err
				w.WriteHeader(http.StatusBadRequest)
			})
			c := dial(t, ts.addr)
			c.send("POST / HTTP/1.1\r\nHost: h\r\n" + tt.req)
			c.c.(*net.TCPConn).CloseWrite() // the end of the client's bytes
			if err := wait(t, errs, "the handler's read"); !errors.Is(err, tt.want) {
				t.Errorf("handler's read: %v, want %v", err, tt.want)
			}
			res, _ := c.mustRead("POST")
			wantStatus(t, res, 400)
			wantClose(t, res, true)
			c.expectClosed()
		})
	}
}

// Expect: 100-continue is answered 100 only when the handler reads the
// body; a handler answering without reading gets its answer out first,
// with Connection: close, and the body is never waited for.
func TestServerExpectContinue(t *testing.T) {
	t.Run("handler reads", func(t *testing.T) {
		ts := serve(t, echo)
		c := dial(t, ts.addr)
		c.send("POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		res, _ := c.mustRead("POST")
		if res.StatusCode != http.StatusContinue || res.Proto != "HTTP/1.1" {
			t.Fatalf("first answer %s, want HTTP/1.1 100 Continue", res.Status)
		}
		c.send("hello")
		res, body := c.mustRead("POST")
		wantStatus(t, res, 200)
		wantClose(t, res, false)
		if body != "POST /up hello" {
			t.Fatalf("body %q", body)
		}
		// And again, the body sent without waiting (allowed): the same.
		c.send("POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
		if res, _ := c.mustRead("POST"); res.StatusCode != http.StatusContinue {
			t.Fatalf("first answer %s, want 100", res.Status)
		}
		if _, body := c.mustRead("POST"); body != "POST /up ok" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("handler refuses", func(t *testing.T) {
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusUnauthorized)
		})
		c := dial(t, ts.addr)
		c.send("POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
		res, body := c.mustRead("POST")
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("answer %s, want 401 without 100 Continue", res.Status)
		}
		wantClose(t, res, true)
		if body != "no\n" {
			t.Errorf("body %q", body)
		}
		c.expectClosed()
	})
}

// A handler that leaves the body unread: the answer says Connection: close,
// the connection closes, and the request after the body is never served
// (it could be the body's own bytes).
func TestServerUnreadBody(t *testing.T) {
	for _, size := range []int{5, 64 << 10} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			var calls atomic.Int64
			ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				io.WriteString(w, "unread")
			})
			c := dial(t, ts.addr)
			go io.WriteString(c.c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"+strings.Repeat("x", size)+get("/smuggled"))
			res, body := c.mustRead("POST")
			wantClose(t, res, true)
			if body != "unread" {
				t.Errorf("body %q", body)
			}
			c.expectClosed()
			if n := calls.Load(); n != 1 {
				t.Errorf("handler called %d times, want 1", n)
			}
		})
	}
}

// ---- Refusals ----

func TestServerRefusals(t *testing.T) {
	long := "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("a", 2000) + "\r\n"
	tests := []struct {
		name, req string
		status    int
		maxHead   int
	}{
		{"bare LF", "GET / HTTP/1.1\nHost: h\n\n", 400, 0},
		{"bare LF after a field", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400, 0},
		{"CR inside a field", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400, 0},
		{"empty line first", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, 0},
		{"obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400, 0},
		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, 0},
		{"two Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, 0},
		{"two equal Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, 0},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello", 400, 0},
		{"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", 400, 0},
		{"Content-Length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, 0},
		{"Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 0},
		{"Transfer-Encoding gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, 0},
		{"two Transfer-Encodings", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, 0},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, 0},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, 0},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, 0},
		{"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400, 0},
		{"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400, 0},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
		{"empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400, 0},
		{"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 0},
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, 0},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400, 0},
		{"absolute-form target", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0},
		{"two spaces in the request line", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0},
		{"bad percent-encoding", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0},
		{"Expect other than 100-continue", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417, 0},
		{"two Expects", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", 417, 0},
		{"head over MaxHeaderBytes", long + "\r\n", 431, 1024},
		{"head over MaxHeaderBytes, unfinished", long, 431, 1024},
		{"head over the default 1 MiB", "GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("a", 1<<20+64<<10) + "\r\n\r\n", 431, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			ts := startServer(t, &Server{
				Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }),
				ReadHeaderTimeout: safety,
				MaxHeaderBytes:    tt.maxHead,
			})
			c := dial(t, ts.addr)
			go io.WriteString(c.c, tt.req)
			res, body := c.mustRead("GET")
			wantStatus(t, res, tt.status)
			wantClose(t, res, true)
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var js struct{ Errcode, Error string }
			if err := json.Unmarshal([]byte(body), &js); err != nil || js.Errcode != "M_UNKNOWN" || js.Error == "" {
				t.Errorf("body %q (%v), want Matrix JSON", body, err)
			}
			c.expectClosed()
			if n := calls.Load(); n != 0 {
				t.Errorf("handler called %d times", n)
			}
		})
	}
}

// ---- Slow clients ----

// A head trickled a byte at a time is cut at ReadHeaderTimeout, without a
// handler call.
func TestServerSlowloris(t *testing.T) {
	const timeout = 200 * time.Millisecond
	var calls atomic.Int64
	ts := startServer(t, &Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }),
		ReadHeaderTimeout: timeout,
		IdleTimeout:       safety,
	})
	// The bound runs from the accept (until the first byte) and from the
	// first byte: both are after start.
	start := time.Now()
	c := dial(t, ts.addr)
	head := "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + strings.Repeat("a", 1<<20)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// The pace of the trickle only; nothing waits on it.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(head); i++ {
			if _, err := c.c.Write([]byte{head[i]}); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	c.expectClosed()
	if d := time.Since(start); d < timeout {
		t.Errorf("closed after %v, before ReadHeaderTimeout %v", d, timeout)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times", n)
	}

	// A connection that sends nothing at all: the same bound.
	start = time.Now()
	dial(t, ts.addr).expectClosed()
	if d := time.Since(start); d < timeout {
		t.Errorf("silent connection closed after %v, before ReadHeaderTimeout %v", d, timeout)
	}
}

// An idle keep-alive connection is closed after IdleTimeout (not the much
// longer ReadHeaderTimeout).
func TestServerIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	ts := startServer(t, &Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: time.Hour, IdleTimeout: idle})
	c := dial(t, ts.addr)
	start := time.Now()
	c.send(get("/"))
	res, _ := c.mustRead("GET")
	wantClose(t, res, false)
	c.expectClosed()
	if d := time.Since(start); d < idle {
		t.Errorf("closed after %v, before IdleTimeout %v", d, idle)
	}
}

// ---- Responses ----

func TestServerResponseSmallBody(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "1")
		io.WriteString(w, "hello, ")
		io.WriteString(w, "world")
	})
	c := dial(t, ts.addr)
	sc := ts.conn(t)
	c.send(get("/"))
	res, body := c.mustRead("GET")
	if body != "hello, world" || res.ContentLength != 12 || res.TransferEncoding != nil || res.Header.Get("X-A") != "1" {
		t.Errorf("answer %q length %d coding %v header %v, want a Content-Length and no Transfer-Encoding", body, res.ContentLength, res.TransferEncoding, res.Header)
	}
	if n := sc.writes.Load(); n != 1 {
		t.Errorf("answer written in %d writes, want 1", n)
	}
	d, err := http.ParseTime(res.Header.Get("Date"))
	if err != nil || time.Since(d) > time.Minute || time.Until(d) > time.Minute {
		t.Errorf("Date %q (%v), want now", res.Header.Get("Date"), err)
	}
	// A handler writing nothing gets an empty body, Content-Length: 0.
	ts2 := serve(t, func(http.ResponseWriter, *http.Request) {})
	c2 := dial(t, ts2.addr)
	c2.send(get("/"))
	if res, body := c2.mustRead("GET"); body != "" || res.ContentLength != 0 || res.Header.Get("Content-Length") != "0" {
		t.Errorf("empty answer: %q length %q", body, res.Header.Get("Content-Length"))
	}
}

// Bodies that are not known whole at the first write are chunked, and
// arrive whole, whatever the head's size, plain and over TLS.
func TestServerResponseChunked(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	tests := []struct {
		name    string
		bigHead bool
		write   func(w http.ResponseWriter)
		want    string
		chunked bool
	}{
		{"flush then writes", false, func(w http.ResponseWriter) {
			io.WriteString(w, "abc")
			w.(http.Flusher).Flush()
			io.WriteString(w, "def")
			io.WriteString(w, "ghi")
		}, "abcdefghi", true},
		{"flush before any byte", false, func(w http.ResponseWriter) {
			w.(http.Flusher).Flush()
			io.WriteString(w, "late")
		}, "late", true},
		{"flush only", false, func(w http.ResponseWriter) {
			http.NewResponseController(w).Flush()
		}, "", true},
		{"over 4 KiB without a flush", false, func(w http.ResponseWriter) {
			io.WriteString(w, big[:3000])
			io.WriteString(w, big[3000:])
		}, big, true},
		{"one large write", false, func(w http.ResponseWriter) { io.WriteString(w, big) }, big, true},
		{"large head, small body", true, func(w http.ResponseWriter) { io.WriteString(w, "small") }, "small", false},
		{"large head, flush", true, func(w http.ResponseWriter) {
			io.WriteString(w, "abc")
			w.(http.Flusher).Flush()
			io.WriteString(w, "def")
		}, "abcdef", true},
		{"large head, over 4 KiB", true, func(w http.ResponseWriter) {
			io.WriteString(w, big[:4000])
			io.WriteString(w, big[4000:])
		}, big, true},
	}
	serverTLS, clientTLS := testTLS(t)
	for _, useTLS := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if useTLS {
				name += " TLS"
			}
			t.Run(name, func(t *testing.T) {
				s := &Server{ReadHeaderTimeout: safety, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tt.bigHead {
						w.Header().Set("X-Big", strings.Repeat("b", 3000))
					}
					tt.write(w)
				})}
				if useTLS {
					s.TLSConfig = serverTLS
				}
				ts := startServerHooked(t, s, false) // writev on plain sockets
				var c *client
				if useTLS {
					c = dialTLS(t, ts.addr, clientTLS)
				} else {
					c = dial(t, ts.addr)
				}
				c.send(get("/") + get("/next"))
				res, body := c.mustRead("GET")
				if body != tt.want {
					t.Errorf("body of %d bytes %.20q…, want %d", len(body), body, len(tt.want))
				}
				if chunked := len(res.TransferEncoding) == 1 && res.TransferEncoding[0] == "chunked"; chunked != tt.chunked {
					t.Errorf("Transfer-Encoding %v Content-Length %d, want chunked %v", res.TransferEncoding, res.ContentLength, tt.chunked)
				}
				if tt.bigHead && len(res.Header.Get("X-Big")) != 3000 {
					t.Errorf("X-Big of %d bytes", len(res.Header.Get("X-Big")))
				}
				wantClose(t, res, false)
				if _, body := c.mustRead("GET"); body != tt.want {
					t.Errorf("second answer of %d bytes, want %d", len(body), len(tt.want))
				}
			})
		}
	}
}

// HEAD, 204 and 304 answers carry no body, whatever the handler writes: the
// next answer on the connection starts right after the head.
func TestServerResponseNoBody(t *testing.T) {
	errs := make(chan error, 4)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusNotModified)
		case "/head-length":
			w.Header().Set("Content-Length", "5")
		case "/next":
			io.WriteString(w, "next")
			return
		}
		_, err := io.WriteString(w, "hello")
		errs <- err
	})
	for _, tt := range []struct {
		method, path string
		status       int
		wantErr      error
	}{
		{"HEAD", "/", 200, nil},
		{"HEAD", "/head-length", 200, nil},
		{"GET", "/204", 204, http.ErrBodyNotAllowed},
		{"GET", "/304", 304, http.ErrBodyNotAllowed},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.send(tt.method + " " + tt.path + " HTTP/1.1\r\nHost: h\r\n\r\n" + get("/next"))
			res, body := c.mustRead(tt.method)
			wantStatus(t, res, tt.status)
			if err := wait(t, errs, "the handler's write"); !errors.Is(err, tt.wantErr) {
				t.Errorf("handler's Write: %v, want %v", err, tt.wantErr)
			}
			if body != "" {
				t.Errorf("body %q", body)
			}
			if tt.status == 204 && res.Header.Get("Content-Length") != "" {
				t.Errorf("204 with Content-Length %q", res.Header.Get("Content-Length"))
			}
			if (tt.path == "/head-length" || tt.path == "/304") && res.Header.Get("Content-Length") != "5" {
				t.Errorf("Content-Length %q, want the handler's 5", res.Header.Get("Content-Length"))
			}
			res, body = c.mustRead("GET")
			if body != "next" {
				t.Fatalf("next answer %d %q: the bodiless answer leaked bytes", res.StatusCode, body)
			}
		})
	}
}

// The handler's Content-Length is a promise: writing more is refused with
// http.ErrContentLength; writing less closes the connection (the client
// sees a short body).
func TestServerResponseContentLength(t *testing.T) {
	t.Run("short", func(t *testing.T) {
		for _, flush := range []bool{false, true} {
			var calls atomic.Int64
			ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "hello")
				if flush {
					w.(http.Flusher).Flush()
				}
			})
			c := dial(t, ts.addr)
			c.send(get("/") + get("/next"))
			res, body, err := c.read("GET")
			if res == nil || res.ContentLength != 10 || body != "hello" || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("flush %v: %v %q %v, want 5 of 10 bytes and an unexpected EOF", flush, res, body, err)
			}
			c.expectClosed()
			if n := calls.Load(); n != 1 {
				t.Errorf("handler called %d times, want 1 (no request after a short answer)", n)
			}
		}
	})
	t.Run("long", func(t *testing.T) {
		errs := make(chan error, 1)
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			n, err := io.WriteString(w, "hello")
			if n != 0 {
				err = fmt.Errorf("%d bytes written, %v", n, err)
			}
			errs <- err
			io.WriteString(w, "abc")
		})
		c := dial(t, ts.addr)
		c.send(get("/"))
		if err := wait(t, errs, "the handler's write"); !errors.Is(err, http.ErrContentLength) {
			t.Errorf("Write beyond Content-Length: %v, want http.ErrContentLength", err)
		}
		res, body := c.mustRead("GET")
		wantClose(t, res, false)
		if body != "abc" {
			t.Errorf("body %q, want abc", body)
		}
		c.send(get("/"))
		if _, body := c.mustRead("GET"); body != "abc" {
			t.Errorf("second answer %q", body)
		}
	})
}

// An HTTP/1.0 request gets an HTTP/1.0 answer and the connection closes,
// even when it asks for keep-alive; a body of unknown length ends with the
// connection.
func TestServerHTTP10(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one")
		if r.URL.Path == "/flush" {
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
		}
	})
	for _, tt := range []struct{ req, body string }{
		{"GET / HTTP/1.0\r\n\r\n", "one"},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n", "one"},
		{"GET /flush HTTP/1.0\r\n\r\n", "onetwo"},
	} {
		c := dial(t, ts.addr)
		c.send(tt.req)
		line, err := c.br.Peek(len("HTTP/1.0 200 OK\r\n"))
		if err != nil || string(line) != "HTTP/1.0 200 OK\r\n" {
			t.Fatalf("%q: status line %q %v", tt.req, line, err)
		}
		res, body := c.mustRead("GET")
		wantClose(t, res, true)
		if body != tt.body || res.TransferEncoding != nil {
			t.Errorf("%q: body %q coding %v", tt.req, body, res.TransferEncoding)
		}
		c.expectClosed()
	}
}

// Field values with CR or LF set by a handler cannot split the answer: no
// field or answer of the attacker's making reaches the client.
func TestServerResponseSplitting(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Evil", "a\r\nSet-Cookie: pwn=1")
		h.Set("Location", "/x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\npwn")
		h["X-Bad\r\nSet-Cookie"] = []string{"pwn=2"}
		h["X-Lf"] = []string{"b\nSet-Cookie: pwn=3"}
		if r.URL.Path == "/interim" {
			w.WriteHeader(http.StatusEarlyHints)
		}
		io.WriteString(w, "body")
	})
	for _, path := range []string{"/", "/interim"} {
		c := dial(t, ts.addr)
		c.send(get(path) + get("/next"))
		res, body := c.mustRead("GET")
		if res.StatusCode == http.StatusEarlyHints {
			if len(res.Header["Set-Cookie"]) != 0 {
				t.Errorf("103 carries Set-Cookie %v", res.Header["Set-Cookie"])
			}
			res, body = c.mustRead("GET")
		}
		for _, r := range []*http.Response{res} {
			if len(r.Header["Set-Cookie"]) != 0 {
				t.Errorf("%s: Set-Cookie %v injected", path, r.Header["Set-Cookie"])
			}
			if v := r.Header.Get("X-Evil"); strings.ContainsAny(v, "\r\n") || v != "a  Set-Cookie: pwn=1" {
				t.Errorf("%s: X-Evil %q", path, v)
			}
		}
		if body != "body" {
			t.Errorf("%s: body %q", path, body)
		}
		if _, body := c.mustRead("GET"); body != "body" {
			t.Errorf("%s: second answer %q: an injected answer took its place", path, body)
		}
	}
}

// ---- Panics ----

func TestServerHandlerPanic(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			io.WriteString(w, "kept back")
			panic("boom")
		case "/abort":
			io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "alive")
	})
	t.Run("panic", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.send(get("/panic") + get("/next"))
		if res, body, err := c.read("GET"); err == nil {
			t.Fatalf("got an answer %v %q after a panic, want the connection closed", res.Status, body)
		}
		if l := ts.log.String(); !strings.Contains(l, "http: panic serving") || !strings.Contains(l, "boom") {
			t.Errorf("log %q, want the panic", l)
		}
	})
	t.Run("abort after a flush", func(t *testing.T) {
		before := ts.log.String()
		c := dial(t, ts.addr)
		c.send(get("/abort") + get("/next"))
		res, body, err := c.read("GET")
		if res == nil || len(res.TransferEncoding) != 1 || body != "part" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v %q %v, want a chunked body cut after \"part\" (no last chunk)", res, body, err)
		}
		c.expectClosed()
		if ts.log.String() != before {
			t.Errorf("http.ErrAbortHandler logged: %q", strings.TrimPrefix(ts.log.String(), before))
		}
	})
	t.Run("server still serves", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.send(get("/"))
		if _, body := c.mustRead("GET"); body != "alive" {
			t.Fatalf("answer %q", body)
		}
	})
}

// ---- Hijack ----

// Bytes the client sent after the head, already read by the server when the
// handler hijacks, come first on the returned reader; the server writes
// nothing after the hijack.
func TestServerHijack(t *testing.T) {
	type seen struct {
		buffered int
		peek     string
		err      error
	}
	seenc := make(chan seen, 1)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			seenc <- seen{err: err}
			return
		}
		defer nc.Close()
		var s seen
		s.buffered = brw.Reader.Buffered()
		p, err := brw.Reader.Peek(len("EARLY"))
		s.peek, s.err = string(p), err
		seenc <- s
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		// Echo until the client half-closes.
		io.Copy(nc, brw.Reader)
	})
	c := dial(t, ts.addr)
	c.send("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nEARLY")
	s := wait(t, seenc, "the hijack")
	if s.err != nil || s.buffered != len("EARLY") || s.peek != "EARLY" {
		t.Fatalf("after Hijack: Buffered %d, Peek %q %v; want the 5 bytes sent with the head", s.buffered, s.peek, s.err)
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("%v %v", res, err)
	}
	c.send("later")
	c.c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(c.br)
	if string(rest) != "EARLYlater" || err != nil {
		t.Errorf("echo %q %v, want EARLYlater and nothing of the server's", rest, err)
	}
}

// ---- The request context ----

// The request context is cancelled when the client goes away during a long
// handler that waits on it (context.AfterFunc or Done), plain and over TLS.
func TestServerContextCancelledOnClose(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, useTLS := range []bool{false, true} {
		for _, how := range []string{"AfterFunc", "Done"} {
			name := how
			if useTLS {
				name += " TLS"
			}
			t.Run(name, func(t *testing.T) {
				started := make(chan struct{})
				result := make(chan error, 1)
				s := &Server{ReadHeaderTimeout: safety, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ctx := r.Context()
					fired := make(chan struct{})
					if how == "AfterFunc" {
						context.AfterFunc(ctx, func() { close(fired) })
					} else {
						go func() {
							select {
							case <-ctx.Done():
								close(fired)
							case <-time.After(safety):
							}
						}()
					}
					close(started)
					select {
					case <-fired:
						result <- ctx.Err()
					case <-time.After(safety):
						result <- errors.New("not cancelled")
					}
				})}
				if useTLS {
					s.TLSConfig = serverTLS
				}
				ts := startServer(t, s)
				var c *client
				if useTLS {
					c = dialTLS(t, ts.addr, clientTLS)
				} else {
					c = dial(t, ts.addr)
				}
				sc := ts.conn(t)
				c.send(get("/long"))
				<-started
				c.c.Close()
				if err := wait(t, result, "the handler"); !errors.Is(err, context.Canceled) {
					t.Fatalf("request context: %v, want context.Canceled", err)
				}
				sc.waitClosed(t)
			})
		}
	}
}

// A request that waits on its context but ends normally is not cancelled
// while it runs; its context ends with the handler (as net/http's), and the
// client's later close touches no request.
func TestServerContextNotCancelled(t *testing.T) {
	var fired atomic.Int64
	firedCh := make(chan struct{}, 4)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/check" {
			fmt.Fprint(w, r.Context().Err())
			return
		}
		context.AfterFunc(r.Context(), func() { fired.Add(1); firedCh <- struct{}{} })
		io.WriteString(w, "ok")
	})
	c := dial(t, ts.addr)
	sc := ts.conn(t)
	c.send(get("/"))
	c.mustRead("GET")
	wait(t, firedCh, "the AfterFunc at the handler's end")
	c.send(get("/check"))
	if _, body := c.mustRead("GET"); body != "<nil>" {
		t.Errorf("next request's context: %s", body)
	}
	c.c.Close()
	sc.waitClosed(t)
	// As net/http's: the context ends with the handler, so the one
	// AfterFunc ran once then, and the close of the connection adds nothing.
	if n := fired.Load(); n != 1 {
		t.Errorf("AfterFunc of the ended request fired %d times, want 1", n)
	}
}

// A request's Done channel is closed once its handler has returned, as
// net/http's: a goroutine left waiting on it ends.
func TestServerContextDoneAfterHandler(t *testing.T) {
	dones := make(chan (<-chan struct{}), 1)
	var ctx context.Context
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		ctx = r.Context()
		dones <- r.Context().Done()
		io.WriteString(w, "ok")
	})
	c := dial(t, ts.addr)
	c.send(get("/"))
	c.mustRead("GET")
	done := wait(t, dones, "the handler")
	select {
	case <-done:
	case <-time.After(safety):
		t.Fatal("Done not closed after the handler returned")
	}
	if err := ctx.Err(); err != context.Canceled {
		t.Fatalf("Err() = %v after the handler returned; want context.Canceled", err)
	}
}

// With no head timeout (read_header 0), a keep-alive request whose head
// starts during the short wait on the serving goroutine and ends later is
// served: the wait's own deadline does not outlive it.
func TestServerNoHeadTimeoutKeepAlive(t *testing.T) {
	ts := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }), IdleTimeout: safety})
	c := dial(t, ts.addr)
	c.send(get("/a"))
	c.mustRead("GET")
	c.send("G")
	time.Sleep(3 * handoffDelay) // the head stalls past the wait's deadline
	c.send("ET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := c.mustRead("GET"); body != "/b" {
		t.Fatalf("second answer %q, want /b", body)
	}
}

// A handler that waits on its context before it reads the body (a proxy
// arms the upstream exchange's cancellation, then streams the body) is
// watched once the body is read: the client's close cancels it, whether the
// body came at once or only after the watch delay.
func TestServerContextCancelledAfterBody(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "body at once", true: "body after the watch delay"}[late], func(t *testing.T) {
			bodies := make(chan string, 1)
			result := make(chan error, 1)
			ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				fired := make(chan struct{})
				context.AfterFunc(ctx, func() { close(fired) })
				b, _ := io.ReadAll(r.Body)
				bodies <- string(b)
				select {
				case <-fired:
					result <- ctx.Err()
				case <-time.After(safety / 2):
					result <- errors.New("not cancelled")
				}
			})
			c := dial(t, ts.addr)
			c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")
			if late {
				// Only sets the case up: the watch's timer fires while the
				// body is still open. Had it not fired yet, the test would
				// pass without covering the case, never fail for it.
				time.Sleep(3 * watchDelay)
			}
			c.send("world")
			if b := wait(t, bodies, "the body"); b != "helloworld" {
				t.Fatalf("body %q", b)
			}
			c.c.Close()
			if err := wait(t, result, "the handler"); !errors.Is(err, context.Canceled) {
				t.Fatalf("request context: %v, want context.Canceled", err)
			}
		})
	}
}

// Bytes that come while a long handler's connection is watched belong to the
// client's next request: the watch (epoll) reads none of them, so none is
// lost or put out of order, whether the next request starts with them, was
// partly read already, or the handler hijacks.
func TestServerWatchKeepsBytes(t *testing.T) {
	tests := []struct {
		name        string
		first, more string // sent before the watch starts, while it reads
		second      string // the answer to the second request; "": a hijack
	}{
		{"next request", get("/long"), get("/next"), "GET /next "},
		{"next request partly read", get("/long") + "GET /next HT", "TP/1.1\r\nHost: h\r\n\r\n", "GET /next "},
		{"next request with a body", get("/long") + "POST /next HTTP/1.1\r\nHost: h\r\n", "Content-Length: 2\r\n\r\nok", "POST /next ok"},
		{"next request over the read buffer", get("/long") + "POST /next HTTP/1.1\r\nHost: h\r\nContent-Length: 5005\r\n\r\n" + strings.Repeat("a", 5000), "bbbbb", "POST /next " + strings.Repeat("a", 5000) + "bbbbb"},
		{"hijack", "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", "EARLY", ""},
		{"hijack, bytes read already", "GET /ws HTTP/1.1\r\nHost: h\r\n\r\nEA", "RLY", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			release := newGate(t)
			var fired atomic.Int64
			ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/long", "/ws":
					context.AfterFunc(r.Context(), func() {}) // arms the watch
					started <- struct{}{}
					<-release.ch
					if r.Context().Err() != nil {
						fired.Add(1)
					}
				}
				if r.URL.Path != "/ws" {
					echo(w, r)
					return
				}
				nc, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer nc.Close()
				nc.SetReadDeadline(time.Now().Add(safety / 4)) // before the client's
				b := make([]byte, len("EARLY"))
				n, err := io.ReadFull(brw, b)
				fmt.Fprintf(nc, "%s %v", b[:n], err)
			})
			watched := make(chan struct{}, 1)
			testHookWatched = func() { watched <- struct{}{} }
			t.Cleanup(func() { testHookWatched = nil })
			c := dial(t, ts.addr)
			c.send(tt.first)
			wait(t, started, "the long handler")
			wait(t, watched, "the peer watch")
			c.send(tt.more)
			release.open()
			if tt.second == "" {
				b, err := io.ReadAll(c.br)
				if string(b) != "EARLY <nil>" {
					t.Fatalf("hijacking handler read %q (%v), want EARLY", b, err)
				}
			} else {
				if _, body := c.mustRead("GET"); body != "GET /long " {
					t.Fatalf("first answer %q", body)
				}
				if res, body := c.mustRead("GET"); body != tt.second {
					t.Fatalf("second answer %d %q, want %q", res.StatusCode, body, tt.second)
				}
			}
			if n := fired.Load(); n != 0 {
				t.Errorf("the request context was cancelled (%d) while the client was there", n)
			}
		})
	}
}

// ---- TLS ----

func TestServerTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	protos := make(chan int, 4)
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		protos <- r.ProtoMajor
		if r.TLS == nil {
			t.Error("r.TLS not set")
		}
		io.WriteString(w, r.Proto)
	})
	acme := serverTLS.Clone()
	acme.NextProtos = []string{"acme-tls/1"}
	acme.MinVersion = tls.VersionTLS10 // the server raises it
	ts := startServer(t, &Server{Handler: h, TLSConfig: acme, H2: &http.Server{Handler: h}, ReadHeaderTimeout: safety})

	t.Run("http/1.1", func(t *testing.T) {
		c := dialTLS(t, ts.addr, clientTLS)
		if p := c.c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Errorf("ALPN %q", p)
		}
		c.send(get("/") + get("/"))
		for range 2 {
			if _, body := c.mustRead("GET"); body != "HTTP/1.1" {
				t.Fatalf("answer %q", body)
			}
			if p := wait(t, protos, "the handler"); p != 1 {
				t.Errorf("handler saw HTTP/%d", p)
			}
		}
	})
	t.Run("no ALPN", func(t *testing.T) {
		conf := clientTLS.Clone()
		conf.NextProtos = nil
		c := dialTLS(t, ts.addr, conf)
		c.send(get("/"))
		if _, body := c.mustRead("GET"); body != "HTTP/1.1" {
			t.Fatalf("answer %q", body)
		}
		wait(t, protos, "the handler")
	})
	t.Run("h2", func(t *testing.T) {
		conf := clientTLS.Clone()
		conf.NextProtos = []string{"h2", "http/1.1"}
		tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr, Timeout: safety}).Get("https://" + ts.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
			t.Errorf("answer %s %q, want HTTP/2.0", res.Proto, body)
		}
		if p := wait(t, protos, "the handler"); p != 2 {
			t.Errorf("handler saw HTTP/%d, want 2", p)
		}
	})
	t.Run("acme-tls/1", func(t *testing.T) {
		before := calls.Load()
		conf := clientTLS.Clone()
		conf.NextProtos = []string{"acme-tls/1"}
		c := dialTLS(t, ts.addr, conf)
		if p := c.c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "acme-tls/1" {
			t.Fatalf("ALPN %q", p)
		}
		io.WriteString(c.c, get("/")) // may fail: the server is closing
		c.expectClosed()
		if calls.Load() != before {
			t.Error("a request on an acme-tls/1 connection was served")
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		conf := clientTLS.Clone()
		conf.MinVersion, conf.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(safety))
		err = tls.Client(nc, conf).Handshake()
		if err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("TLS 1.1 handshake: %v, want a protocol version alert", err)
		}
	})
	t.Run("handshake never sent", func(t *testing.T) {
		s := startServer(t, &Server{Handler: h, TLSConfig: serverTLS, ReadHeaderTimeout: 200 * time.Millisecond})
		start := time.Now()
		dial(t, s.addr).expectClosed()
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("closed after %v, before ReadHeaderTimeout", d)
		}
	})
}

// ---- Shutdown and Close ----

func TestServerShutdownIdle(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	ts := startServer(t, &Server{Handler: http.HandlerFunc(echo), TLSConfig: serverTLS, ReadHeaderTimeout: safety, IdleTimeout: safety})
	used := dialTLS(t, ts.addr, clientTLS)
	used.send(get("/"))
	used.mustRead("GET")
	fresh := dialTLS(t, ts.addr, clientTLS) // handshake done, no request yet
	// Over TLS 1.2 the server's side of the handshake ends with its own
	// flight, which the client waits for: the server is done with the
	// handshake, or about to be, when the client's is.
	conf12 := clientTLS.Clone()
	conf12.MaxVersion = tls.VersionTLS12
	fresh12 := dialTLS(t, ts.addr, conf12)
	for range 3 {
		ts.conn(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	used.expectClosed()
	fresh.expectClosed()
	fresh12.expectClosed()
	if err := wait(t, ts.served, "Serve's return"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	ts.served <- http.ErrServerClosed // for the Cleanup
	if c, err := net.Dial("tcp", ts.addr); err == nil {
		c.Close()
		t.Error("dial after Shutdown succeeded")
	}
}

// An active request finishes during Shutdown; its answer says
// Connection: close; Shutdown returns after it.
func TestServerShutdownActive(t *testing.T) {
	started := make(chan struct{}, 1)
	release := newGate(t)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release.ch
		io.WriteString(w, "finished")
	})
	c := dial(t, ts.addr)
	c.send(get("/") + get("/next"))
	wait(t, started, "the handler")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), safety)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	served := wait(t, ts.served, "Serve's return") // Shutdown has begun
	ts.served <- served
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a request was active", err)
	default:
	}
	release.open()
	res, body := c.mustRead("GET")
	if body != "finished" {
		t.Errorf("body %q", body)
	}
	wantClose(t, res, true)
	c.expectClosed()
	if err := wait(t, done, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// Shutdown with a context that ends first returns its error; the request
// still runs to its end.
func TestServerShutdownExpired(t *testing.T) {
	started := make(chan struct{}, 1)
	release := newGate(t)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release.ch
		io.WriteString(w, "finished")
	})
	c := dial(t, ts.addr)
	c.send(get("/"))
	wait(t, started, "the handler")
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	release.open()
	res, body := c.mustRead("GET")
	if body != "finished" {
		t.Errorf("body %q", body)
	}
	wantClose(t, res, true)
	c.expectClosed()
}

// Close closes every connection at once, active ones included.
func TestServerClose(t *testing.T) {
	started := make(chan struct{}, 1)
	release := newGate(t)
	flushed := make(chan error, 1)
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			started <- struct{}{}
			<-release.ch
			io.WriteString(w, "late")
			flushed <- http.NewResponseController(w).Flush()
			return
		}
		io.WriteString(w, "ok")
	})
	idle := dial(t, ts.addr)
	idle.send(get("/"))
	idle.mustRead("GET")
	active := dial(t, ts.addr)
	active.send(get("/long"))
	wait(t, started, "the handler")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	idle.expectClosed()
	active.expectClosed()
	if err := wait(t, ts.served, "Serve's return"); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	ts.served <- http.ErrServerClosed
	release.open()
	if err := wait(t, flushed, "the handler's flush"); err == nil {
		t.Error("a flush on a closed connection succeeded")
	}
}
