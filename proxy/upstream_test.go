package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// newRawUpstream is a scripted homeserver speaking raw bytes: for every
// request it reads, answer gives the bytes to send and whether to close
// afterwards.
func newRawUpstream(t testing.TB, answer func(n int, req *http.Request) (resp string, closeAfter bool)) *testkit.RawUpstream {
	t.Helper()
	return testkit.NewRawUpstream(t, nil, func(n int, req *http.Request, c net.Conn) bool {
		resp, closeAfter := answer(n, req)
		_, err := io.WriteString(c, resp)
		return err != nil || closeAfter
	})
}

// newEdgeTo starts mxedge's request path in front of upstream (a URL or unix:path).
func newEdgeTo(t testing.TB, upstream, yaml string) (*httptest.Server, *Server) {
	t.Helper()
	cfg := loadConfig(t, upstream, "rate_limits: {enabled: false}\n"+yaml)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv, err := New(cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	front := newFront(t, srv.Handler(ListenerClient, false))
	t.Cleanup(front.Close)
	t.Cleanup(srv.Close)
	return front, srv
}

// fetch sends one request through front on a new client connection and
// returns status, body, and the body read error.
func fetch(t *testing.T, front *httptest.Server, method, path string) (int, http.Header, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: matrix.example.org\r\nConnection: close\r\n\r\n")
	req, _ := http.NewRequest(method, "http://x"+path, nil)
	res, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0, nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b), err
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreused"

func TestUpstreamResponseFraming(t *testing.T) {
	tests := []struct {
		name       string
		resp       string
		closeAfter bool
		wantStatus int
		wantBody   string
		wantAbort  bool // the client must see a broken response, not a clean one
		wantReuse  bool // the next request goes over the same upstream connection
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}", false, 200, `{"a":"b c"}`, false, true},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", false, 200, "hello world", false, true},
		{"chunked upper-case hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", false, 200, "0123456789", false, true},
		{"close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true, 200, "until the end", false, false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", false, false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", false, false},
		{"bare LF line ends (net/http's leniency)", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, 200, "ok", false, true},
		{"repeated identical content-length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", false, true},
		{"no reason phrase", "HTTP/1.1 201\r\nContent-Length: 2\r\n\r\nok", false, 201, "ok", false, true},
		{"1xx skipped", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", false, true},
		{"204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", false, true},
		{"304 has no body even with a length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, 304, "", false, true},

		// A malicious or broken upstream: 502 and the connection is dropped.
		{"101 switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, 502, "", false, false},
		{"content-length and transfer-encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, 502, "", false, false},
		{"differing content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 12\r\n\r\nokHTTP/1.1 2", false, 502, "", false, false},
		{"content-length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", false, 502, "", false, false},
		{"signed content-length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false, 502, "", false, false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\nContent-Length: 2\r\n\r\nok", false, 502, "", false, false},
		{"obs-fold into content-length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 0\r\n\r\nok", false, 502, "", false, false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", false, 502, "", false, false},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", false, 502, "", false, false},
		{"bare CR in value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", false, 502, "", false, false},
		{"transfer-encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", false, 502, "", false, false},
		{"transfer-encoding twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, 502, "", false, false},
		{"chunked in http/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, 502, "", false, false},
		{"bad status line", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", false, 502, "", false, false},
		{"http/2 status line", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 502, "", false, false},
		{"head too large", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\nContent-Length: 2\r\n\r\nok", false, 502, "", false, false},
		{"closed before the head", "HTTP/1.1 2", true, 502, "", false, false},

		// Broken after the head: the client's response is aborted.
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", false, 200, "", true, false},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", false, 200, "", true, false},
		{"short content-length body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true, 200, "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, func(n int, _ *http.Request) (string, bool) {
				if n == 1 {
					return tt.resp, tt.closeAfter
				}
				return okAnswer, false
			})
			front, _ := newEdgeTo(t, up.URL(), "")
			status, _, body, err := fetch(t, front, "GET", "/_matrix/client/v3/profile/%40a%3Ab")
			switch {
			case tt.wantAbort:
				if err == nil {
					t.Errorf("client read %q and a clean end; want an aborted response", body)
				}
			case err != nil:
				t.Fatalf("client: %v", err)
			case status != tt.wantStatus:
				t.Fatalf("status %d, want %d (body %q)", status, tt.wantStatus, body)
			case tt.wantStatus != 502 && body != tt.wantBody:
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			status, _, body, err = fetch(t, front, "GET", "/_matrix/client/v3/profile/%40a%3Ab")
			if err != nil || status != 200 || body != "reused" {
				t.Fatalf("second request: %d %q %v", status, body, err)
			}
			wantAccepts := int64(2)
			if tt.wantReuse {
				wantAccepts = 1
			}
			if got := up.Accepts(); got != wantAccepts {
				t.Errorf("upstream accepted %d connections, want %d (reuse %v)", got, wantAccepts, tt.wantReuse)
			}
		})
	}
}

func TestUpstreamHeadRequestNoBody(t *testing.T) {
	up := newRawUpstream(t, func(n int, req *http.Request) (string, bool) {
		if req.Method == "HEAD" {
			return "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1234\r\n\r\n", false
		}
		return okAnswer, false
	})
	front, _ := newEdgeTo(t, up.URL(), "")
	status, h, body, err := fetch(t, front, "HEAD", "/_matrix/client/v1/media/download/a/b")
	if err != nil || status != 200 || body != "" {
		t.Fatalf("HEAD: %d %q %v", status, body, err)
	}
	if got := h.Get("Content-Length"); got != "1234" {
		t.Errorf("HEAD Content-Length %q, want 1234", got)
	}
	if _, _, body, _ := fetch(t, front, "GET", "/_matrix/client/versions"); body != "reused" || up.Accepts() != 1 {
		t.Errorf("after HEAD: body %q, %d upstream connections; want the connection reused", body, up.Accepts())
	}
}

func TestUpstreamRequestHeadExact(t *testing.T) {
	up := newRawUpstream(t, func(int, *http.Request) (string, bool) { return okAnswer, false })
	front, _ := newEdgeTo(t, up.URL(), "")
	c, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PUT /_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t%2F1?ts=1&x=%7B%7D HTTP/1.1\r\n"+
		"Host: matrix.example.org\r\nExpect: 100-continue\r\nTE: trailers\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"+
		"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTrailer: X-T\r\nX-Keep: kept\r\nTransfer-Encoding: chunked\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 100 {
		t.Fatalf("want 100 Continue first (when the body is read), got %v %v", res, err)
	}
	io.WriteString(c, "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
	if res, err = http.ReadResponse(br, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("response %v %v", res, err)
	}
	head := up.LastHead(t)
	line, rest, _ := strings.Cut(head, "\r\n")
	if want := "PUT /_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t%2F1?ts=1&x=%7B%7D HTTP/1.1"; line != want {
		t.Errorf("request line %q, want %q", line, want)
	}
	if !strings.HasPrefix(rest, "Host: matrix.example.org\r\n") {
		t.Errorf("head does not start with the client's Host:\n%s", head)
	}
	lower := strings.ToLower(head)
	for _, k := range []string{"expect:", "te:", "x-drop:", "keep-alive:", "proxy-connection:", "trailer:", "connection:"} {
		if strings.Contains(lower, "\n"+k) {
			t.Errorf("upstream head carries %s\n%s", k, head)
		}
	}
	for _, k := range []string{"X-Keep: kept\r\n", "Transfer-Encoding: chunked\r\n", "X-Forwarded-For: 127.0.0.1\r\n", "X-Real-Ip: 127.0.0.1\r\n", "X-Forwarded-Proto: http\r\n"} {
		if !strings.Contains(head, k) {
			t.Errorf("upstream head lacks %q:\n%s", k, head)
		}
	}
}

func TestUpstreamConnectionReuse(t *testing.T) {
	up := newRawUpstream(t, func(int, *http.Request) (string, bool) { return okAnswer, false })
	front, _ := newEdgeTo(t, up.URL(), "")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range 50 {
		method := "GET"
		var body io.Reader
		if i%2 == 1 {
			method, body = "PUT", strings.NewReader(`{"body":"hi"}`)
		}
		req, _ := http.NewRequest(method, front.URL+"/_matrix/client/v3/rooms/%21a%3Ab/send/m/"+string(rune('a'+i%26)), body)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "reused" {
			t.Fatalf("request %d: body %q", i, b)
		}
	}
	if got := up.Accepts(); got != 1 {
		t.Errorf("50 sequential requests opened %d upstream connections, want 1", got)
	}
}

// Many concurrent exchanges, each with its own path, body and answer: any
// buffer shared by two of them shows up as a mixed-up request or answer.
func TestUpstreamConcurrentExchanges(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(r.RequestURI)+len(b)))
		}
		io.WriteString(w, r.RequestURI)
		w.Write(b)
	}))
	defer hs.Close()
	e, _ := newEdgeTo(t, hs.URL, "")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				uri := fmt.Sprintf("/_matrix/client/v3/rooms/%%21r%d%%3Ax/send/m.room.message/t%d", g, i)
				var body io.Reader
				method, want := "GET", uri
				if i%3 == 1 {
					uri += "?chunked=1"
					want = uri
				}
				if i%2 == 1 {
					method = "PUT"
					payload := strings.Repeat(fmt.Sprintf("<%d.%d>", g, i), 1+i*50)
					body, want = strings.NewReader(payload), want+payload
				}
				req, _ := http.NewRequest(method, e.URL+uri, body)
				res, err := client.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Sprintf("%s %s: got %d bytes %.80q, want %.80q (%v)", method, uri, len(b), b, want, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// An upstream that closes each connection after its answer, without saying
// so: the pooled connection is dead when the next request takes it, and the
// next requests, a GET and a POST, go over fresh connections (h1's tests
// cover the reuse check in detail).
func TestUpstreamStaleConnection(t *testing.T) {
	up := newRawUpstream(t, func(int, *http.Request) (string, bool) { return okAnswer, true })
	front, srv := newEdgeTo(t, up.URL(), "")
	pool := srv.snap.Load().table.pools[0].Members()[0].Conns()
	for i, method := range []string{"GET", "GET", "POST", "PUT"} {
		if i > 0 {
			select {
			case <-up.Closed: // the upstream closed the connection the pool holds
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream did not close its connection")
			}
		}
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, method+" /_matrix/client/v3/keys/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Errorf("%s %d on a stale connection: status %d, want 200 over a fresh one", method, i, res.StatusCode)
		}
	}
	if got := pool.Dials(); got != 4 {
		t.Errorf("%d upstream connections, want 4", got)
	}
}

func TestUnixSocketUpstream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "hs.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	var gotHost, gotBody atomic.Value
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			gotHost.Store(r.Host)
			gotBody.Store(string(b))
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"via":"unix"}`)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	front, _ := newEdgeTo(t, "unix:"+sock, "")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range 3 {
		res, err := client.Post(front.URL+"/_matrix/client/v3/keys/upload", "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != `{"via":"unix"}` {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, b)
		}
	}
	if h := gotHost.Load(); h != strings.TrimPrefix(front.URL, "http://") {
		t.Errorf("upstream Host %q, want the client's %q", h, strings.TrimPrefix(front.URL, "http://"))
	}
	if b := gotBody.Load(); b != `{"n":1}` {
		t.Errorf("upstream body %q", b)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d unix connections for 3 requests, want 1", n)
	}
}

// A streaming answer without Content-Length reaches the client as it comes:
// the proxy flushes when the upstream pauses.
func TestUpstreamStreamingFlush(t *testing.T) {
	release := make(chan struct{})
	e := newEdge(t, "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first ")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second")
	})
	client := &http.Client{Timeout: 20 * time.Second}
	res, err := client.Get(e.URL + "/_matrix/client/v1/media/download/a/b")
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 6)
	got := make(chan string, 1)
	go func() { io.ReadFull(res.Body, buf); got <- string(buf) }()
	select {
	case s := <-got:
		if s != "first " {
			t.Errorf("first part %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Error("the first part did not reach the client while the upstream paused")
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "second" {
		t.Errorf("rest %q", rest)
	}
}

func TestUpstreamHopByHopResponseNamed(t *testing.T) {
	up := newRawUpstream(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nConnection: x-secret, close\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok", false
	})
	front, _ := newEdgeTo(t, up.URL(), "")
	status, h, body, err := fetch(t, front, "GET", "/_matrix/client/versions")
	if err != nil || status != 200 || body != "ok" {
		t.Fatalf("%d %q %v", status, body, err)
	}
	for _, k := range []string{"X-Secret", "Keep-Alive", "Upgrade"} {
		if v := h.Get(k); v != "" {
			t.Errorf("client got %s: %q", k, v)
		}
	}
	if h.Get("X-Kept") != "k" {
		t.Errorf("X-Kept lost: %v", h)
	}
	fetch(t, front, "GET", "/_matrix/client/versions")
	if got := up.Accepts(); got != 2 {
		t.Errorf("upstream accepts %d, want 2 (Connection: close honoured)", got)
	}
}
