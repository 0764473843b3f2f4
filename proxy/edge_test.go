package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/testkit"
)

// recorded is what reached the fake homeserver.
type recorded struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	BodySHA    string
	BodyLen    int64
	BodyErr    error
}

// homeserver is a recording fake upstream. Its handler answers; by default
// 200 {"ok":true} with Synapse-like CORS headers of its own.
type homeserver struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []recorded
	handler  http.HandlerFunc
	arrived  chan struct{} // see watch
	recorded chan struct{}
}

func newHomeserver(t testing.TB, h http.HandlerFunc) *homeserver {
	t.Helper()
	hs := &homeserver{handler: h}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		arrived, recordedc := hs.arrived, hs.recorded
		hs.mu.Unlock()
		if arrived != nil {
			arrived <- struct{}{}
		}
		rec := recorded{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone()}
		if hs.handler == nil || r.Method != http.MethodGet {
			sum := sha256.New()
			rec.BodyLen, rec.BodyErr = io.Copy(sum, r.Body)
			rec.BodySHA = hex.EncodeToString(sum.Sum(nil))
		}
		hs.mu.Lock()
		hs.reqs = append(hs.reqs, rec)
		hs.mu.Unlock()
		if recordedc != nil {
			recordedc <- struct{}{}
		}
		if hs.handler != nil {
			hs.handler(w, r)
			return
		}
		synapseCORS(w.Header())
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(hs.Close)
	return hs
}

// synapseCORS sets the CORS headers Synapse sets on its own responses.
func synapseCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization, Date")
	h.Set("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server")
}

// watch returns two channels that each receive once for every request
// reaching the homeserver from now on (at most 64 unread): arrived when its
// head is in, before the body is read; recorded once its body read ended,
// complete or aborted, and it is in requests().
func (hs *homeserver) watch() (arrived, recorded <-chan struct{}) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.arrived, hs.recorded = make(chan struct{}, 64), make(chan struct{}, 64)
	return hs.arrived, hs.recorded
}

// waitSignal waits a bounded time for one signal from a watch channel.
func waitSignal(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("the homeserver gave no signal within 10s: %s", what)
	}
}

func (hs *homeserver) requests() []recorded {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]recorded(nil), hs.reqs...)
}

func (hs *homeserver) last(t *testing.T) recorded {
	t.Helper()
	r := hs.requests()
	if len(r) == 0 {
		t.Fatal("the homeserver saw no request")
	}
	return r[len(r)-1]
}

type edge struct {
	*httptest.Server
	srv  *Server
	hs   *homeserver
	logs *testkit.Buffer
	cfg  *config.Config
}

// loadConfig writes yaml (with the upstream filled in) to a file and loads it.
func loadConfig(t testing.TB, upstream, yaml string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mxedge.yaml")
	doc := fmt.Sprintf("server_name: example.org\nupstream: %s\n%s", upstream, yaml)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// newEdge starts mxedge's request path in front of a recording homeserver.
func newEdge(t testing.TB, yaml string, h http.HandlerFunc) *edge {
	t.Helper()
	return newEdgeWith(t, "rate_limits: {enabled: false}\n"+yaml, h, nil)
}

// newEdgeWith is newEdge with rate limits as yaml says, on the clock now
// (nil: no limiter).
func newEdgeWith(t testing.TB, yaml string, h http.HandlerFunc, now func() time.Time) *edge {
	t.Helper()
	hs := newHomeserver(t, h)
	cfg := loadConfig(t, hs.URL, yaml)
	logs := &testkit.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var limiter *ratelimit.Limiter
	if now != nil {
		var err error
		if limiter, err = ratelimit.New(cfg.RateLimits, ratelimit.Options{Logger: log, Now: now}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { limiter.Close() })
	}
	srv, err := New(cfg, Options{Logger: log, Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	front := newFront(t, srv.Handler(ListenerClient, false))
	t.Cleanup(srv.Close)
	return &edge{Server: front, srv: srv, hs: hs, logs: logs, cfg: cfg}
}

// newFront serves h as mxedge does, on h1.Server (plain HTTP/1.1), behind
// an httptest.Server's URL and Client. It is closed in t's Cleanup.
func newFront(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	front := httptest.NewUnstartedServer(h)
	ln := testkit.Divert(front)
	front.Start()
	serveFront(t, front, ln, h, nil)
	return front
}

// newTLSFront is newFront over TLS, HTTP/2 offered by ALPN (to Go's server,
// as in mxedge).
func newTLSFront(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	front := httptest.NewUnstartedServer(h)
	front.EnableHTTP2 = true
	ln := testkit.Divert(front)
	front.StartTLS()
	serveFront(t, front, ln, h, front.TLS)
	return front
}

func serveFront(t testing.TB, front *httptest.Server, ln net.Listener, h http.Handler, tlsConf *tls.Config) {
	s := &h1.Server{Handler: h, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	if tlsConf != nil {
		s.H2 = &http.Server{Handler: h}
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		front.Close()
		s.Close()
	})
}

// raw sends request bytes exactly as given and reads the response.
func (e *edge) raw(t *testing.T, req string) *http.Response {
	t.Helper()
	return rawTo(t, e.Listener.Addr().String(), "", req)
}

// rawTo sends req to addr, from local address from (empty: any).
func rawTo(t *testing.T, addr, from, req string) *http.Response {
	t.Helper()
	d := net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: matrix.example.org\r\nConnection: close\r\n\r\n"
}

// matrixError decodes a Matrix error body.
func matrixError(t *testing.T, res *http.Response) (errcode string, body map[string]any) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	errcode, _ = body["errcode"].(string)
	return errcode, body
}

// wantCORSOnce checks the CORS headers appear exactly once each.
func wantCORSOnce(t *testing.T, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
		"Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, got, v)
		}
	}
	exp := h.Values("Access-Control-Expose-Headers")
	if len(exp) != 1 || !strings.Contains(exp[0], "Retry-After") {
		t.Errorf("Access-Control-Expose-Headers = %q, want one line with Retry-After", exp)
	}
}

func TestRawPathsForwardedByteExact(t *testing.T) {
	e := newEdge(t, "", nil)
	paths := []string{
		"/_matrix/client/v3/rooms/%21abc%3Aexample.org/state/m.room.member/%40alice%3Aexample.org",
		"/_matrix/client/v3/rooms/!abc:example.org/state/org.example/a%2Fb%25c%3Fd%23e%20f%C3%A9",
		"/_matrix/client/v3/rooms/%21abc%3Aexample.org/state/org.example/..",
		"/_matrix/client/v3/rooms/%21abc%3Aexample.org/state/org.example/.",
		"/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message/txn%2F1%21",
		"/_matrix/federation/v1/send/1234%2F5",
		"/_matrix/client/v3/directory/room/%23room%3Aexample.org",
		"/_matrix/media/v3/download/example.org/AbC-_123",
		"/_matrix/client/v3/rooms/%21abc%3aexample.org/event/%24ev+ent",
		"/_synapse/client/oidc/callback",
	}
	for _, p := range paths {
		for _, q := range []string{"", "?since=s1_2&timeout=0&filter=%7B%22a%22%3A1%7D"} {
			res := e.raw(t, get(p+q))
			if res.StatusCode != http.StatusOK {
				t.Errorf("%s: status %d, want 200", p+q, res.StatusCode)
				continue
			}
			if got := e.hs.last(t).RequestURI; got != p+q {
				t.Errorf("upstream saw %q, want %q", got, p+q)
			}
		}
	}
}

func TestForwardingHeaders(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		header    string
		wantXFF   string
		wantProto string
	}{
		{"untrusted peer, spoofed headers dropped", "",
			"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n",
			"127.0.0.1", "http"},
		{"trusted peer, rightmost untrusted entry", "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]\n",
			"X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.2.3\r\nX-Forwarded-Proto: https\r\n",
			"203.0.113.7", "https"},
		{"trusted peer, Forwarded header", "trusted_proxies: [127.0.0.1/32]\n",
			"Forwarded: for=\"[2001:db8::7]:4711\";proto=https\r\n",
			"2001:db8::7", "https"},
		{"trusted peer without forwarding headers", "trusted_proxies: [127.0.0.1/32]\n", "", "127.0.0.1", "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEdge(t, tt.yaml, nil)
			res := e.raw(t, "GET /_matrix/client/versions HTTP/1.1\r\nHost: matrix.example.org:8080\r\n"+tt.header+"Connection: close\r\n\r\n")
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			h := e.hs.last(t)
			if got := h.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != tt.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want [%q]", got, tt.wantXFF)
			}
			if got := h.Header.Values("X-Real-Ip"); len(got) != 1 || got[0] != tt.wantXFF {
				t.Errorf("X-Real-IP = %q, want [%q]", got, tt.wantXFF)
			}
			if got := h.Header.Get("X-Forwarded-Proto"); got != tt.wantProto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tt.wantProto)
			}
			if got := h.Header.Get("Forwarded"); got != "" {
				t.Errorf("Forwarded = %q, want none", got)
			}
			if h.Host != "matrix.example.org:8080" {
				t.Errorf("Host = %q, want matrix.example.org:8080", h.Host)
			}
			if got := h.Header.Get("X-Forwarded-Host"); got != "matrix.example.org:8080" {
				t.Errorf("X-Forwarded-Host = %q", got)
			}
			id := h.Header.Get("X-Request-Id")
			if id == "" || res.Header.Get("X-Request-Id") != id {
				t.Errorf("request id upstream %q, to client %q: want equal and non-empty", id, res.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestRequestIDFromTrustedProxyOnly(t *testing.T) {
	for _, tt := range []struct {
		yaml    string
		wantOwn bool
	}{{"", false}, {"trusted_proxies: [127.0.0.1/32]\n", true}} {
		e := newEdge(t, tt.yaml, nil)
		e.raw(t, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Request-Id: lb-abc-123\r\nConnection: close\r\n\r\n")
		got := e.hs.last(t).Header.Get("X-Request-Id")
		if (got == "lb-abc-123") != tt.wantOwn {
			t.Errorf("trusted=%v: upstream X-Request-Id = %q", tt.wantOwn, got)
		}
	}
}

func TestHopByHopStripped(t *testing.T) {
	e := newEdge(t, "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Internal")
		w.Header().Set("X-Internal", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	})
	res := e.raw(t, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n"+
		"Connection: X-Strip-Me, Upgrade\r\nX-Strip-Me: 1\r\nUpgrade: websocket\r\nHTTP2-Settings: AAA\r\nProxy-Authorization: Basic eA==\r\nTE: gzip\r\n\r\n")
	h := e.hs.last(t).Header
	for _, k := range []string{"X-Strip-Me", "Upgrade", "Http2-Settings", "Proxy-Authorization", "Te"} {
		if v := h.Get(k); v != "" {
			t.Errorf("upstream got %s: %q, want it stripped", k, v)
		}
	}
	if v := h.Get("Connection"); strings.Contains(strings.ToLower(v), "upgrade") {
		t.Errorf("upstream Connection = %q", v)
	}
	if res.Header.Get("X-Internal") != "" || res.Header.Get("Keep-Alive") != "" {
		t.Errorf("client got response hop-by-hop headers: %v", res.Header)
	}
}

func TestCORSExactlyOnce(t *testing.T) {
	e := newEdge(t, "", nil) // the fake homeserver sets Synapse's CORS headers
	for _, p := range []string{"/_matrix/client/versions", "/_matrix/client/v3/nothing-here", "/.well-known/matrix/client"} {
		res := e.raw(t, "GET "+p+" HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n")
		wantCORSOnce(t, res.Header)
	}
	res := e.raw(t, get("/_matrix/client/versions"))
	exp := res.Header.Get("Access-Control-Expose-Headers")
	for _, want := range []string{"Synapse-Trace-Id", "Server", "Retry-After"} {
		if !strings.Contains(exp, want) {
			t.Errorf("Expose-Headers %q lacks %s", exp, want)
		}
	}
}

func TestCORSOnErrors(t *testing.T) {
	e := newEdge(t, "limits: {max_json_body_size: 10, max_body_size: 20}\nadmin_api: {allow_from: [10.9.9.9/32]}\n",
		func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) })
	for _, req := range []string{
		get("/_matrix/client/v3/account/whoami"),
		get("/_matrix/client/v3/../../_synapse/admin/v1/users"),
		"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\n01234567890",
		get("/.well-known/matrix/support"),
	} {
		res := e.raw(t, req)
		if res.StatusCode < 400 {
			t.Errorf("%q: status %d", req, res.StatusCode)
		}
		wantCORSOnce(t, res.Header)
	}
}

func TestPreflightNeverForwarded(t *testing.T) {
	e := newEdge(t, "", nil)
	for _, p := range []string{"/_matrix/client/v3/login", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/1", "/.well-known/matrix/client"} {
		res := e.raw(t, "OPTIONS "+p+" HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"+
			"Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n")
		if res.StatusCode != http.StatusNoContent {
			t.Errorf("%s: status %d, want 204", p, res.StatusCode)
		}
		wantCORSOnce(t, res.Header)
		if res.Header.Get("Access-Control-Max-Age") == "" {
			t.Errorf("%s: no Access-Control-Max-Age", p)
		}
	}
	if n := len(e.hs.requests()); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestNotForwarded(t *testing.T) {
	e := newEdge(t, "", nil)
	for _, p := range []string{"/_synapse/replication/send_event/x", "/_synapse/metrics", "/", "/index.html", "/health", "/_synapse/admin/../metrics"} {
		res := e.raw(t, get(p))
		if res.StatusCode != 404 && res.StatusCode != 400 {
			t.Errorf("%s: status %d, want 404 or 400", p, res.StatusCode)
		}
		if code, _ := matrixError(t, res); code != "M_UNRECOGNIZED" {
			t.Errorf("%s: errcode %q", p, code)
		}
	}
	if n := len(e.hs.requests()); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestExtraPrefixes(t *testing.T) {
	e := newEdge(t, "forward: {extra_prefixes: [/]}\n", nil)
	res := e.raw(t, get("/index.html"))
	if res.StatusCode != 200 || e.hs.last(t).RequestURI != "/index.html" {
		t.Errorf("status %d; extra prefix / should forward /index.html", res.StatusCode)
	}
	res = e.raw(t, get("/_synapse/metrics"))
	if res.StatusCode != 404 {
		t.Errorf("/_synapse/metrics with extra prefix /: status %d, want 404", res.StatusCode)
	}
}

func TestAdminGate(t *testing.T) {
	allowed := newEdge(t, "", nil) // default: loopback allowed
	res := allowed.raw(t, get("/_synapse/admin/v1/server_version"))
	if res.StatusCode != 200 {
		t.Fatalf("allowed peer: status %d", res.StatusCode)
	}
	e := newEdge(t, "admin_api: {allow_from: [127.0.0.2/32]}\ntrusted_proxies: [127.0.0.1/32]\n", nil)
	bypasses := []string{
		"/_synapse/admin/v1/users",
		"/_synapse/%61dmin/v1/users",
		"/_synapse//admin/v1/users",
		"/_synapse/./admin/v1/users",
		"/_matrix/../_synapse/admin/v1/users",
		"/_matrix/client/v3/%2e%2e/%2e%2e/%2e%2e/_synapse/admin/v1/users",
		"/_matrix/client/..%2F..%2F_synapse/admin/v1/users",
		"/_SYNAPSE/admin/v1/users",
		"/_synapse/admin%2Fv1/users",
		"/_synapse;x/admin/v1/users",
		"/_matrix/client\\..\\..\\_synapse/admin",
		"//_synapse/admin/v1/users",
		"/_synapse/admin/v1/users%00",
	}
	for _, p := range bypasses {
		// The forwarding header names an allowed address: it must not count.
		res := e.raw(t, "GET "+p+" HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.2\r\nConnection: close\r\n\r\n")
		if res.StatusCode != 404 && res.StatusCode != 400 {
			t.Errorf("%s: status %d, want 404 or 400", p, res.StatusCode)
		}
	}
	if n := len(e.hs.requests()); n != 0 {
		t.Errorf("upstream saw %d requests from bypass attempts: %+v", n, e.hs.requests())
	}
	// The allowed address reaches it as the socket peer.
	res = rawTo(t, e.Listener.Addr().String(), "127.0.0.2", get("/_synapse/admin/v1/users"))
	if res.StatusCode != 200 {
		t.Errorf("peer 127.0.0.2: status %d, want 200", res.StatusCode)
	}
}

func TestBadQueryRefused(t *testing.T) {
	e := newEdge(t, "", nil)
	for _, q := range []string{"a=1;b=2", "a=%zz", "a=%"} {
		res := e.raw(t, get("/_matrix/client/v3/sync?"+q))
		if res.StatusCode != 400 {
			t.Errorf("?%s: status %d, want 400", q, res.StatusCode)
		}
	}
	if n := len(e.hs.requests()); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	e := newEdge(t, "limits: {max_header_bytes: 4K}\n", nil)
	res := e.raw(t, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 5000)+"\r\nConnection: close\r\n\r\n")
	if res.StatusCode != 431 {
		t.Fatalf("status %d, want 431", res.StatusCode)
	}
	if code, _ := matrixError(t, res); code != "M_UNKNOWN" {
		t.Errorf("errcode %q", code)
	}
	wantCORSOnce(t, res.Header)
}

func TestSecretsNotLogged(t *testing.T) {
	e := newEdge(t, "", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(403)
	})
	secrets := []string{"syt_SECRETTOKEN1", "hunter2-PASSWORD", "syt_QUERYTOKEN2", "REGTOKEN3"}
	body := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"hunter2-PASSWORD"}`
	e.raw(t, fmt.Sprintf("POST /_matrix/client/v3/login?access_token=syt_QUERYTOKEN2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer syt_SECRETTOKEN1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
	e.raw(t, get("/_matrix/client/v1/register/m.login.registration_token/validity?token=REGTOKEN3"))
	// An upstream failure is logged too: its error must not carry the query.
	e.hs.Close()
	e.raw(t, "GET /_matrix/client/v3/sync?access_token=syt_QUERYTOKEN2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer syt_SECRETTOKEN1\r\nConnection: close\r\n\r\n")
	logs := e.logs.String()
	if !strings.Contains(logs, `"path":"/_matrix/client/v3/login?access_token=REDACTED"`) {
		t.Errorf("access line with redacted path missing:\n%s", logs)
	}
	if !strings.Contains(logs, "upstream request failed") {
		t.Errorf("upstream failure not logged:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q:\n%s", s, logs)
		}
	}
}

// A request target is visible ASCII (RFC 9112 §3.2): raw UTF-8 is refused,
// since servers split or decode it differently; clients percent-encode it.
func TestRawUTF8PathRefused(t *testing.T) {
	e := newEdge(t, "", nil)
	res := e.raw(t, get("/_matrix/client/v3/rooms/%21a%3Ab/state/org.example/\xc3\xa9t\xc3\xa9"))
	if res.StatusCode != 400 {
		t.Fatalf("status %d, want 400", res.StatusCode)
	}
	wantCORSOnce(t, res.Header)
	p := "/_matrix/client/v3/rooms/%21a%3Ab/state/org.example/%C3%A9t%C3%A9"
	if res := e.raw(t, get(p)); res.StatusCode != 200 || e.hs.last(t).RequestURI != p {
		t.Fatalf("percent-encoded: status %d, upstream saw %q", res.StatusCode, e.hs.last(t).RequestURI)
	}
}
