package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

const okReply = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"

// Bytes an upstream sends after the end of an answer (a HEAD, 204 or 304
// answered with a body, a Content-Length too small, a response nobody asked
// for) are an answer to no request: the next client must get its own answer,
// never those bytes, and the connection is dropped.
func TestUnsolicitedBytesNeverReachTheNextClient(t *testing.T) {
	const stale = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE"
	tests := []struct {
		name, method  string
		first, later  string // later is written after the first exchange ended
		wantFirstBody string
	}{
		{"HEAD answered with a body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", stale, ""},
		{"HEAD with a body in the same segment", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + stale, "", ""},
		{"204 answered with a body", "GET", "HTTP/1.1 204 No Content\r\n\r\n", stale, ""},
		{"304 answered with a body", "GET", "HTTP/1.1 304 Not Modified\r\n\r\n", stale, ""},
		{"Content-Length too small, same segment", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + stale, "", "ok"},
		{"Content-Length too small, later segment", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", stale, "ok"},
		{"chunked, then more", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", stale, "ok"},
		{"unsolicited response while idle", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", stale, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			firstDone := make(chan struct{})
			laterSent := make(chan struct{})
			u := testkit.NewRawUpstream(t, nil, func(n int, _ *http.Request, c net.Conn) bool {
				if n > 1 {
					io.WriteString(c, okReply)
					return false
				}
				io.WriteString(c, tt.first)
				if tt.later != "" {
					<-firstDone
					io.WriteString(c, tt.later)
				}
				close(laterSent)
				return false
			})
			p := poolTo(t, u, nil)
			r := do(t, p, tt.method, "/first", "")
			if r.err != nil || r.status == 0 || r.body != tt.wantFirstBody {
				t.Fatalf("first exchange: %d %q %v", r.status, r.body, r.err)
			}
			close(firstDone)
			<-laterSent
			if p.Idle() == 1 {
				waitIdleDead(t, p) // the bytes have arrived
			}
			r = do(t, p, "GET", "/second", "")
			if r.err != nil || r.body != "second" {
				t.Fatalf("second client got %d %q %v, want its own answer \"second\"", r.status, r.body, r.err)
			}
			if got := u.Accepts(); got != 2 {
				t.Errorf("upstream accepted %d connections, want 2 (the tainted one dropped)", got)
			}
		})
	}
}

// The same over TLS: bytes may then sit inside crypto/tls (whole records read
// with the answer's last one) or in the kernel as records still to decrypt.
func TestUnsolicitedBytesOverTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	const stale = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE"
	for _, mode := range []string{"same record", "next record", "later record"} {
		t.Run(mode, func(t *testing.T) {
			firstDone := make(chan struct{})
			laterSent := make(chan struct{})
			u := testkit.NewRawUpstream(t, serverTLS, func(n int, _ *http.Request, c net.Conn) bool {
				switch {
				case n > 1:
					io.WriteString(c, okReply)
				case mode == "same record":
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+stale)
					close(laterSent)
				case mode == "next record":
					// Two records back to back: crypto/tls may read both
					// from the socket with the answer and keep the second.
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					io.WriteString(c, stale)
					close(laterSent)
				default:
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					<-firstDone
					io.WriteString(c, stale)
					close(laterSent)
				}
				return false
			})
			p := poolTo(t, u, clientTLS)
			if r := do(t, p, "GET", "/first", ""); r.err != nil || r.body != "ok" {
				t.Fatalf("first exchange: %d %q %v", r.status, r.body, r.err)
			}
			close(firstDone)
			<-laterSent
			if mode == "later record" && p.Idle() == 1 {
				waitIdleDead(t, p)
			}
			if r := do(t, p, "GET", "/second", ""); r.err != nil || r.body != "second" {
				t.Fatalf("second client got %d %q %v, want its own answer", r.status, r.body, r.err)
			}
			if got := u.Accepts(); got != 2 {
				t.Errorf("upstream accepted %d connections, want 2", got)
			}
		})
	}
}

// An upstream that closes idle connections sooner than mxedge's idle expiry
// (a short keep-alive): the next request, a POST that may not be repeated,
// must go over a fresh connection, plain or TLS, and never cost a 502.
func TestClosedPooledConnectionIsNotA502(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[useTLS], func(t *testing.T) {
			srv, cli := serverTLS, clientTLS
			if !useTLS {
				srv, cli = nil, nil
			}
			idle := make(chan struct{})
			u := testkit.NewRawUpstream(t, srv, func(n int, _ *http.Request, c net.Conn) bool {
				io.WriteString(c, okReply)
				if n == 1 {
					<-idle
					return true // the keep-alive ran out: close
				}
				return false
			})
			p := poolTo(t, u, cli)
			if r := do(t, p, "GET", "/", ""); r.err != nil || r.status != 200 {
				t.Fatalf("first: %v", r.err)
			}
			close(idle)
			<-u.Closed
			waitIdleDead(t, p)
			r := do(t, p, "POST", "/_matrix/client/v3/createRoom", "{}")
			if r.err != nil || r.status != 200 {
				t.Fatalf("POST after the upstream closed the idle connection: %d %v, want 200 over a new connection", r.status, r.err)
			}
			if got := u.Accepts(); got != 2 {
				t.Errorf("upstream accepted %d connections, want 2", got)
			}
		})
	}
}

// When the close crosses the request on the wire (the check passed, then the
// upstream's close came), what is safe to repeat is repeated on a fresh
// connection; a POST is not.
func TestRetryAfterCrossedClose(t *testing.T) {
	tests := []struct {
		method, body string
		wantRetry    bool
	}{
		{"GET", "", true},
		{"HEAD", "", true},
		{"PUT", `{"msgtype":"m.text"}`, true},
		{"DELETE", "", true},
		{"POST", "{}", false},
		{"PATCH", "{}", false},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			u := testkit.NewRawUpstream(t, nil, func(n int, req *http.Request, c net.Conn) bool {
				if n == 2 {
					return true // read the request, close without a byte
				}
				io.WriteString(c, okReply)
				return false
			})
			p := poolTo(t, u, nil)
			if r := do(t, p, "GET", "/", ""); r.err != nil {
				t.Fatal(r.err)
			}
			r := do(t, p, tt.method, "/x", tt.body)
			if tt.wantRetry {
				if r.err != nil || r.status != 200 {
					t.Fatalf("%s: %d %v, want it sent again on a fresh connection", tt.method, r.status, r.err)
				}
				if got := u.Accepts(); got != 2 {
					t.Errorf("accepts %d, want 2", got)
				}
				return
			}
			if r.err == nil {
				t.Fatalf("%s was sent twice (got %d), want an error", tt.method, r.status)
			}
			if got := Kind(r.err); got != "reset" {
				t.Errorf("Kind = %q, want reset", got)
			}
		})
	}
}

// An upstream sending endless interim answers on a route without a header
// timeout (a long-poll) makes the exchange fail after a few, not read
// forever.
func TestInterimResponsesCapped(t *testing.T) {
	var sent atomic.Int64
	u := testkit.NewRawUpstream(t, nil, func(_ int, _ *http.Request, c net.Conn) bool {
		for {
			n, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
			sent.Add(int64(n))
			if err != nil {
				return true
			}
		}
	})
	p := poolTo(t, u, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := exchange(ctx, p, &Request{Method: "GET", Path: "/_matrix/client/v3/sync", Host: "h", Header: http.Header{}, LongPoll: true})
	if !errors.Is(r.err, ErrTooManyInterim) {
		t.Fatalf("got %d %v, want ErrTooManyInterim", r.status, r.err)
	}
	// A few interim answers pass, and so do their bytes.
	for range 3 {
		r = exchange(ctx, p, &Request{Method: "GET", Path: "/", Host: "h", Header: http.Header{}})
		if r.err == nil {
			t.Fatal("an exchange ended without error")
		}
	}
	// And a big interim head counts toward the byte cap.
	big := testkit.NewRawUpstream(t, nil, func(_ int, _ *http.Request, c net.Conn) bool {
		for i := 0; i < 3; i++ {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\nX: "+strings.Repeat("a", 30<<10)+"\r\n\r\n")
		}
		io.WriteString(c, okReply)
		return false
	})
	r = do(t, poolTo(t, big, nil), "GET", "/", "")
	if !errors.Is(r.err, ErrHeadTooLarge) {
		t.Errorf("90 KiB of interim heads: %d %v, want ErrHeadTooLarge", r.status, r.err)
	}
}

func TestInterimResponsesSkipped(t *testing.T) {
	u := testkit.NewRawUpstream(t, nil, answers("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+okReply))
	if r := do(t, poolTo(t, u, nil), "GET", "/", ""); r.err != nil || r.body != "second" || r.header.Get("Link") != "" {
		t.Fatalf("%d %q %v %v", r.status, r.body, r.header, r.err)
	}
}

func TestUnaskedSwitchRefused(t *testing.T) {
	u := testkit.NewRawUpstream(t, nil, answers("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	if r := do(t, poolTo(t, u, nil), "GET", "/", ""); !errors.Is(r.err, ErrSwitch) {
		t.Fatalf("got %d %v, want ErrSwitch", r.status, r.err)
	}
}

func TestChunkedFramingRefused(t *testing.T) {
	tests := []struct {
		name, body string
		want       error
	}{
		{"bare LF after size", "2\nok\r\n0\r\n\r\n", ErrChunked},
		{"bare LF after data", "2\r\nok\n0\r\n\r\n", ErrChunked},
		{"CR inside size line", "2\r;x\r\nok\r\n0\r\n\r\n", ErrChunked},
		{"space before size", " 2\r\nok\r\n0\r\n\r\n", ErrChunked},
		{"space before extension", "2 ;x\r\nok\r\n0\r\n\r\n", ErrChunked},
		{"no digits", ";x\r\nok\r\n0\r\n\r\n", ErrChunked},
		{"too many digits", "0000000000000002\r\nok\r\n0\r\n\r\n", ErrChunked},
		{"extension flood", strings.Repeat("1;"+strings.Repeat("e", 200)+"\r\nx\r\n", 200) + "0\r\n\r\n", ErrChunkOverhead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := testkit.NewRawUpstream(t, nil, answers("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+tt.body))
			r := do(t, poolTo(t, u, nil), "GET", "/", "")
			if !errors.Is(r.err, tt.want) {
				t.Fatalf("got %d %q %v, want %v", r.status, r.body, r.err, tt.want)
			}
		})
	}
	// Accepted like net/http: trailing white space after the size, extensions, trailers.
	u := testkit.NewRawUpstream(t, nil, answers("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \t\r\nok\r\n1;a=b\r\n!\r\n0\r\nX-T: 1\r\n\r\n"))
	if r := do(t, poolTo(t, u, nil), "GET", "/", ""); r.err != nil || r.body != "ok!" {
		t.Fatalf("got %q %v", r.body, r.err)
	}
}

func TestUnixSocketPool(t *testing.T) {
	sock := t.TempDir() + "/hs.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "unix") })}
	go hs.Serve(ln)
	defer hs.Close()
	p := NewPool(PoolOptions{Network: "unix", Addr: sock})
	defer p.Close()
	for range 3 {
		if r := do(t, p, "GET", "/", ""); r.err != nil || r.body != "unix" {
			t.Fatalf("%q %v", r.body, r.err)
		}
	}
	if p.Dials() != 1 {
		t.Errorf("%d dials, want 1", p.Dials())
	}
}
