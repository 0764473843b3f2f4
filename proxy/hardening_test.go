package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/testkit"
)

// newH2Front serves srv's client listener over TLS with HTTP/2 on; it
// returns the address. The front is closed in t's Cleanup.
func newH2Front(t testing.TB, srv *Server) string {
	t.Helper()
	front := newTLSFront(t, srv.Handler(ListenerClient, true))
	return front.Listener.Addr().String()
}

// newLimitedServer is mxedge's request path for cfg with a limiter over
// cfg's rate limits; both are closed in t's Cleanup.
func newLimitedServer(t testing.TB, cfg *config.Config) *Server {
	t.Helper()
	limiter, err := ratelimit.New(cfg.RateLimits, ratelimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { limiter.Close() })
	srv, err := New(cfg, Options{Logger: discardLogger(), Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// h2Request sends one request over HTTP/2 with the pseudo-headers exactly as
// given (Go's client would refuse these) and returns the status.
func h2Request(t *testing.T, addr, method, path string, fields ...string) int {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", "matrix.example.org"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	body := method != "GET " && method != "HEAD "
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: !body})
	if body {
		fr.WriteData(1, true, []byte(`{"type":"m.login.password","user":"a","password":"b"}`))
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return -1 // Go's server dropped the connection (a connection error)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return -1
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			return -int(f.ErrCode) // refused by Go's own server
		case *http2.HeadersFrame:
			hf, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hf {
				if h.Name == ":status" {
					var code int
					for _, d := range h.Value {
						code = code*10 + int(d-'0')
					}
					return code
				}
			}
		}
	}
}

// Go's HTTP/2 server lets spaces and tabs through in :method and :path.
// Such a request must be refused before anything classifies it or writes a
// request line from it: "POST " would skip the login limit, and Twisted would
// read the forwarded line as a plain POST.
func TestHTTP2MethodAndPathChecked(t *testing.T) {
	hs := newLenientUpstream(t)
	cfg := loadConfig(t, hs.url, "rate_limits: {enabled: false}\n")
	srv, err := New(cfg, Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	addr := newH2Front(t, srv)
	tests := []struct{ method, path string }{
		{"POST ", "/_matrix/client/v3/login"},
		{"POST\t", "/_matrix/client/v3/login"},
		{"HEAD ", "/_matrix/client/v3/sync"},
		{"PO ST", "/_matrix/client/v3/login"},
		{"POST", "/_matrix/client/v3/login "},
		{"POST", "/_matrix/client/v3/login\tx"},
		{"GET", "/_matrix/client/v3/sync HTTP/1.1\x7f"},
		{"GET", "/_matrix/client/v3/profile/\xc3\xa9"},
	}
	for _, tt := range tests {
		status := h2Request(t, addr, tt.method, tt.path)
		if status != 400 && status >= 0 {
			t.Errorf("%q %q: status %d, want 400 (or a stream reset)", tt.method, tt.path, status)
		}
	}
	if heads := hs.heads(); len(heads) != 0 {
		t.Errorf("the homeserver saw %d of these requests: %q", len(heads), heads)
	}
	if status := h2Request(t, addr, "GET", "/_matrix/client/versions"); status != 200 {
		t.Errorf("a plain HTTP/2 GET: status %d", status)
	}
}

// The login limit holds over HTTP/2 too, whatever the method's spelling.
func TestHTTP2LoginLimited(t *testing.T) {
	hs := newLenientUpstream(t)
	cfg := loadConfig(t, hs.url, "rate_limits: {exempt: {addresses: []}, rc_login: {address: {per_second: 0.001, burst_count: 1}}}\n")
	addr := newH2Front(t, newLimitedServer(t, cfg))
	got := []int{}
	for _, m := range []string{"POST", "POST ", "POST"} {
		got = append(got, h2Request(t, addr, m, "/_matrix/client/v3/login"))
	}
	if got[0] != 200 || got[1] != 400 || got[2] != 429 {
		t.Errorf("statuses %v, want [200 400 429]", got)
	}
}

// Paths whose normalised views would classify otherwise are refused, and
// never reach the homeserver.
func TestNormalisedLoginRefused(t *testing.T) {
	e := newEdgeWith(t, "rate_limits: {exempt: {addresses: []}, rc_login: {address: {per_second: 0.001, burst_count: 1}}}\n", nil, time.Now)
	for _, p := range []string{"/_matrix/client/v3/./login", "/_matrix/client/v3/login;x", "/_matrix/client/v3/a/../login", "/_matrix/client/v3/%2e/login"} {
		res := e.raw(t, "POST "+p+" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		if res.StatusCode != 400 {
			t.Errorf("POST %s: status %d, want 400", p, res.StatusCode)
		}
	}
	if n := len(e.hs.requests()); n != 0 {
		t.Errorf("the homeserver saw %d requests", n)
	}
}

// A query parameter whose name is percent-encoded is still the parameter the
// homeserver reads: access%5Ftoken is access_token. Its value never reaches a
// log line.
func TestEncodedSecretNamesRedacted(t *testing.T) {
	e := newEdge(t, "", nil)
	queries := []string{
		"access%5Ftoken=syt_SECRET1",
		"%61ccess_token=syt_SECRET2",
		"ACCESS_TOKEN=syt_SECRET3",
		"x=1&access_token=syt_SECRET4&y=2",
		"x=1;access_token=syt_SECRET5",
		"access_token%zz=syt_SECRET6",
		"client%5fsecret=SECRET7&sid=SECRET8",
		"code=SECRET9&state=s",
	}
	for _, q := range queries {
		e.raw(t, get("/_matrix/client/v3/sync?"+q))
	}
	e.hs.Close() // and through an upstream failure
	e.raw(t, get("/_matrix/client/v3/sync?access%5Ftoken=syt_SECRET10"))
	logs := e.logs.String()
	for i := 1; i <= 10; i++ {
		if s := "SECRET" + itoa(i); strings.Contains(logs, s+"\"") || strings.Contains(logs, s+"&") || strings.Contains(logs, s+";") {
			t.Errorf("log contains %s:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, `access%5Ftoken=REDACTED`) || !strings.Contains(logs, `x=1&access_token=REDACTED&y=2`) {
		t.Errorf("redacted names not kept as sent:\n%s", logs)
	}
}

func itoa(i int) string {
	if i >= 10 {
		return itoa(i/10) + string(rune('0'+i%10))
	}
	return string(rune('0' + i))
}

// Header names with '_' never reach the homeserver by default; with
// forward.allow_underscores_in_headers they do, except those that read as a
// header mxedge sets or strips.
func TestUnderscoreHeadersDropped(t *testing.T) {
	for _, allow := range []bool{false, true} {
		yaml := ""
		if allow {
			yaml = "forward: {allow_underscores_in_headers: true}\n"
		}
		e := newEdge(t, yaml, nil)
		e.raw(t, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\n"+
			"Transfer_Encoding: chunked\r\nX_Request_Id: forged\r\nX_Custom: c\r\nConnection: close\r\n\r\n")
		h := e.hs.last(t).Header
		for _, k := range []string{"X_forwarded_for", "X_real_ip", "Transfer_encoding", "X_request_id"} {
			if v := h.Values(k); len(v) > 0 {
				t.Errorf("allow=%v: upstream got %s: %q", allow, k, v)
			}
		}
		if got := h.Get("X_custom") == "c"; got != allow {
			t.Errorf("allow=%v: X_Custom forwarded %v", allow, got)
		}
		if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
			t.Errorf("allow=%v: X-Forwarded-For %q", allow, xff)
		}
	}
}

// rawConn sends request bytes on a new connection and returns the response
// and whether the server closed the connection after it: either the
// connection ends (EOF or reset), or a second request on it is answered.
func rawConn(t *testing.T, addr, req string) (*http.Response, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	io.ReadAll(res.Body)
	if res.Close {
		// The server said so; it must also do so.
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("Connection: close, yet more bytes came")
		}
		return res, true
	}
	io.WriteString(c, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(br, nil); err != nil {
		return res, true
	}
	return res, false
}

// Framing RFC 9112 says to reject or close on.
func TestFramingRejectedOrClosed(t *testing.T) {
	e := newEdge(t, "", nil)
	addr := e.Listener.Addr().String()
	tests := []struct {
		name       string
		req        string
		wantStatus int
		wantClosed bool
	}{
		// RFC 9112 §6.1: faulty framing. net/http dropped the field and
		// forwarded; mxedge's server refuses it.
		{"HTTP/1.0 with Transfer-Encoding", "POST /_matrix/client/v3/keys/upload HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", 400, true},
		{"Content-Length with Transfer-Encoding", "POST /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400, true},
		{"two Content-Lengths", "POST /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, true},
		{"obs-fold", "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, true},
		{"bare LF in the head", "GET /_matrix/client/versions HTTP/1.1\nHost: x\n\n", 400, true},
		{"gzip coding", "POST /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 501, true},
		{"HTTP/1.0 keep-alive", "GET /_matrix/client/versions HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 200, true},
		{"bare LF in chunk size", "POST /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n", 400, true},
		{"bare LF after chunk data", "POST /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\n0\r\n\r\n", 400, true},
		{"chunk extension flood", "POST /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 500)+"\r\nx\r\n", 64) + "0\r\n\r\n", 400, true},
		{"request target over 16 KiB", "GET /_matrix/client/v3/sync?x=" + strings.Repeat("a", 16<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, true},
		{"head over max_header_bytes", "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 40<<10) + "\r\n\r\n", 431, true},
		{"a clean request keeps the connection", "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.hs.requests())
			res, closed := rawConn(t, addr, tt.req)
			if res.StatusCode != tt.wantStatus || closed != tt.wantClosed {
				t.Errorf("status %d closed %v, want %d closed %v", res.StatusCode, closed, tt.wantStatus, tt.wantClosed)
			}
			if tt.wantStatus >= 400 {
				if res.Header.Get("Content-Type") != "application/json" {
					t.Errorf("error answer is not Matrix JSON: %v", res.Header)
				}
				for _, r := range e.hs.requests()[before:] {
					if r.BodyErr == nil && r.Method == "POST" {
						t.Errorf("the homeserver received a complete request: %+v", r)
					}
				}
			}
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// Through the whole request path: an upstream answers a HEAD with a body in a
// later segment; the next client must get its own answer, never those bytes.
func TestUnsolicitedBytesThroughTheEdge(t *testing.T) {
	headDone := make(chan struct{})
	laterSent := make(chan struct{})
	up := testkit.NewRawUpstream(t, nil, func(n int, _ *http.Request, c net.Conn) bool {
		if n > 1 {
			io.WriteString(c, okAnswer)
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
		<-headDone
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE")
		close(laterSent)
		return false
	})
	front, _ := newEdgeTo(t, up.URL(), "")
	if status, _, _, err := fetch(t, front, "HEAD", "/_matrix/client/v1/media/download/a/b"); err != nil || status != 200 {
		t.Fatalf("HEAD: %d %v", status, err)
	}
	close(headDone)
	<-laterSent // on loopback, written bytes are in the receiving socket when write returns
	for i := range 3 {
		_, _, body, err := fetch(t, front, "GET", "/_matrix/client/versions")
		if err != nil || body != "reused" {
			t.Fatalf("client %d after the HEAD got %q %v, want its own answer", i, body, err)
		}
	}
}

// lenientUpstream reads request heads as raw bytes, the way a lenient server
// (Twisted) would take "POST  /path HTTP/1.1", records them, and answers 200
// to each, closing after it.
type lenientUpstream struct {
	url string
	mu  sync.Mutex
	got []string
}

func newLenientUpstream(t *testing.T) *lenientUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &lenientUpstream{url: "http://" + ln.Addr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				head.WriteString(line)
				if err != nil || line == "\r\n" {
					break
				}
			}
			u.mu.Lock()
			u.got = append(u.got, head.String())
			u.mu.Unlock()
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return u
}

func (u *lenientUpstream) heads() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}
