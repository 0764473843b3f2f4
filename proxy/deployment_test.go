package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// echoPool is an upstream that answers every request with its name, the
// method and the path and query it received: "name METHOD /path?query".
type echoPool struct {
	*httptest.Server
	name string
	mu   sync.Mutex
	seen []*http.Request
}

func newEchoPool(t *testing.T, name string) *echoPool {
	t.Helper()
	p := &echoPool{name: name}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		p.seen = append(p.seen, r)
		p.mu.Unlock()
		fmt.Fprintf(w, "%s %s %s", p.name, r.Method, r.RequestURI)
	}))
	t.Cleanup(p.Close)
	return p
}

// deployment is mxedge in front of a Synapse + MAS + Element Call + Element
// Web deployment, every pool an echoPool.
type deployment struct {
	front *httptest.Server
	srv   *Server
	pools map[string]*echoPool
	cfg   *config.Config
}

func loadFullConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.LoadOptions{Path: testkit.TempFile(t, "mxedge.yaml", yaml)})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

const deploymentYAML = `server_name: example.org
public_baseurl: https://matrix.example.org/
upstreams:
  homeserver: {members: ["%s"]}
  mas:        {members: ["%s"]}
  lk-jwt:     {members: ["%s"]}
  sfu:        {members: ["%s"], balance: least_conn}
  element:    {members: ["%s"]}
  admin-ui:   {members: ["%s"]}
mas:
  upstream: mas
  public_base: https://auth.example.org/
  account_url: https://auth.example.org/account/
  admin_api: {allow_from: ["192.0.2.1"]}
rtc:
  jwt_upstream: lk-jwt
  sfu_upstream: sfu
routes:
  - {host: element.example.org, upstream: element}
  - {path_prefix: /admin/, upstream: admin-ui, strip_prefix: true, cors: upstream}
rate_limits: {enabled: false}
%s`

func newDeployment(t *testing.T, extra string) *deployment {
	t.Helper()
	d := &deployment{pools: map[string]*echoPool{}}
	names := []string{"homeserver", "mas", "lk-jwt", "sfu", "element", "admin-ui"}
	var urls []any
	for _, n := range names {
		d.pools[n] = newEchoPool(t, n)
		urls = append(urls, d.pools[n].URL)
	}
	d.cfg = loadFullConfig(t, fmt.Sprintf(deploymentYAML, append(urls, extra)...))
	srv, err := New(d.cfg, Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d.srv = srv
	d.front = newFront(t, srv.Handler(ListenerClient, true))
	t.Cleanup(d.front.Close)
	t.Cleanup(srv.Close)
	return d
}

// do sends method host path on a fresh connection and returns status and body.
func (d *deployment) do(t *testing.T, method, host, path string) (int, string, http.Header) {
	t.Helper()
	body := ""
	if method == "POST" || method == "PUT" {
		body = "{}"
	}
	res := rawTo(t, d.front.Listener.Addr().String(), "", fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, host, len(body), body))
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// Every path of every route set, method included, to the pool it must reach
// and the path that pool sees.
func TestDeploymentRouting(t *testing.T) {
	d := newDeployment(t, "")
	const mx, auth, el = "matrix.example.org", "auth.example.org", "element.example.org"
	tests := []struct {
		method, host, path string
		want               string // "pool METHOD /path", or "404", "400"
	}{
		// Matrix API to the homeserver.
		{"GET", mx, "/_matrix/client/versions", "homeserver GET /_matrix/client/versions"},
		{"GET", mx, "/_matrix/client/v3/sync?since=s1", "homeserver GET /_matrix/client/v3/sync?since=s1"},
		{"PUT", mx, "/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1", "homeserver PUT /_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1"},
		{"GET", mx, "/_synapse/client/pick_idp", "homeserver GET /_synapse/client/pick_idp"},
		{"GET", "anything.example", "/_matrix/client/versions", "homeserver GET /_matrix/client/versions"},
		// Compat login, logout, refresh and everything under them to MAS, every version.
		{"GET", mx, "/_matrix/client/v3/login", "mas GET /_matrix/client/v3/login"},
		{"POST", mx, "/_matrix/client/v3/login", "mas POST /_matrix/client/v3/login"},
		{"POST", mx, "/_matrix/client/r0/login", "mas POST /_matrix/client/r0/login"},
		{"POST", mx, "/_matrix/client/api/v1/login", "mas POST /_matrix/client/api/v1/login"},
		{"POST", mx, "/_matrix/client/unstable/login", "mas POST /_matrix/client/unstable/login"},
		{"GET", mx, "/_matrix/client/v3/login/sso/redirect?redirectUrl=x", "mas GET /_matrix/client/v3/login/sso/redirect?redirectUrl=x"},
		{"GET", mx, "/_matrix/client/v3/login/sso/redirect/oidc-google", "mas GET /_matrix/client/v3/login/sso/redirect/oidc-google"},
		{"POST", mx, "/_matrix/client/v3/logout", "mas POST /_matrix/client/v3/logout"},
		{"POST", mx, "/_matrix/client/v3/logout/all", "mas POST /_matrix/client/v3/logout/all"},
		{"POST", mx, "/_matrix/client/v3/refresh", "mas POST /_matrix/client/v3/refresh"},
		{"POST", mx, "/_matrix/client/r0/refresh", "mas POST /_matrix/client/r0/refresh"},
		{"GET", mx, "/_matrix/client/v3/loginx", "homeserver GET /_matrix/client/v3/loginx"},
		// auth_metadata and auth_issuer stay on Synapse.
		{"GET", mx, "/_matrix/client/v1/auth_metadata", "homeserver GET /_matrix/client/v1/auth_metadata"},
		{"GET", mx, "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer", "homeserver GET /_matrix/client/unstable/org.matrix.msc2965/auth_issuer"},
		{"GET", mx, "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", "homeserver GET /_matrix/client/unstable/org.matrix.msc2965/auth_metadata"},
		// /_synapse/mas/ is never reachable.
		{"POST", mx, "/_synapse/mas/provision_user", "404"},
		{"GET", mx, "/_synapse/mas/query_user?localpart=a", "404"},
		{"POST", mx, "/_synapse/client/../mas/provision_user", "400"},
		// MAS's host, whole.
		{"GET", auth, "/.well-known/openid-configuration", "mas GET /.well-known/openid-configuration"},
		{"GET", auth, "/.well-known/webfinger?resource=acct:a", "mas GET /.well-known/webfinger?resource=acct:a"},
		{"POST", auth, "/oauth2/token", "mas POST /oauth2/token"},
		{"GET", auth, "/oauth2/keys.json", "mas GET /oauth2/keys.json"},
		{"GET", auth, "/authorize?client_id=x", "mas GET /authorize?client_id=x"},
		{"GET", "AUTH.example.org:443", "/login", "mas GET /login"},
		{"POST", auth, "/logout", "mas POST /logout"},
		{"GET", auth, "/register", "mas GET /register"},
		{"GET", auth, "/account/", "mas GET /account/"},
		{"GET", auth, "/consent/01H", "mas GET /consent/01H"},
		{"GET", auth, "/upstream/callback/01H?code=c", "mas GET /upstream/callback/01H?code=c"},
		{"GET", auth, "/complete-compat-sso/01H", "mas GET /complete-compat-sso/01H"},
		{"GET", auth, "/device/ABCD", "mas GET /device/ABCD"},
		{"GET", auth, "/recover", "mas GET /recover"},
		{"GET", auth, "/assets/app.js", "mas GET /assets/app.js"},
		{"POST", auth, "/graphql", "mas POST /graphql"},
		{"GET", auth, "/_matrix/client/v3/login", "mas GET /_matrix/client/v3/login"},
		// MAS's admin API is closed unless the peer is allowed.
		{"GET", auth, "/api/admin/v1/users", "404"},
		{"GET", auth, "/api/x/../admin/v1/users", "400"},
		// MatrixRTC: prefixes stripped.
		{"POST", mx, "/livekit/jwt/sfu/get", "lk-jwt POST /sfu/get"},
		{"POST", mx, "/livekit/jwt/get_token", "lk-jwt POST /get_token"},
		{"GET", mx, "/livekit/jwt/healthz", "lk-jwt GET /healthz"},
		{"GET", mx, "/livekit/jwt", "lk-jwt GET /"},
		{"GET", mx, "/livekit/sfu/rtc/validate?access_token=t", "sfu GET /rtc/validate?access_token=t"},
		{"GET", mx, "/livekit/sfu/rtc/v1/validate", "sfu GET /rtc/v1/validate"},
		{"POST", mx, "/livekit/sfu/twirp/livekit.RoomService/CreateRoom", "sfu POST /twirp/livekit.RoomService/CreateRoom"},
		{"GET", mx, "/livekit/sfu/", "sfu GET /"},
		{"GET", mx, "/livekit/sfu/../jwt/healthz", "400"},
		{"GET", mx, "/livekit/other", "404"},
		// OpenID userinfo for lk-jwt-service.
		{"GET", mx, "/_matrix/federation/v1/openid/userinfo?access_token=x", "homeserver GET /_matrix/federation/v1/openid/userinfo?access_token=x"},
		// Element Web's host, whole; the admin UI's prefix, stripped.
		{"GET", el, "/", "element GET /"},
		{"GET", el, "/config.json", "element GET /config.json"},
		{"GET", el, "/_matrix/client/versions", "element GET /_matrix/client/versions"},
		{"GET", mx, "/admin/", "admin-ui GET /"},
		{"GET", mx, "/admin", "admin-ui GET /"},
		{"POST", mx, "/admin/api/users?x=1", "admin-ui POST /api/users?x=1"},
		{"GET", mx, "/adminx", "404"},
		{"GET", mx, "/admin/../_synapse/admin/v1/users", "400"},
		// Not forwarded.
		{"GET", mx, "/_synapse/admin/v1/users", "homeserver GET /_synapse/admin/v1/users"}, // loopback: admin_api's default
		{"GET", mx, "/_synapse/metrics", "404"},
		{"GET", mx, "/", "404"},
	}
	for _, tt := range tests {
		status, body, _ := d.do(t, tt.method, tt.host, tt.path)
		got := body
		if status != 200 {
			got = fmt.Sprint(status)
		}
		if got != tt.want {
			t.Errorf("%s %s%s: got %q, want %q", tt.method, tt.host, tt.path, got, tt.want)
		}
	}
}

// The admin APIs open to allowed socket peers only: Synapse's from loopback
// (the default allow_from), MAS's from 192.0.2.1 (not loopback).
func TestDeploymentAdminGates(t *testing.T) {
	d := newDeployment(t, "admin_api: {allow_from: [\"192.0.2.1\"]}\n")
	if status, _, _ := d.do(t, "GET", "matrix.example.org", "/_synapse/admin/v1/users"); status != 404 {
		t.Errorf("Synapse admin from loopback (not allowed): %d, want 404", status)
	}
	if status, _, _ := d.do(t, "GET", "auth.example.org", "/api/admin/v1/users"); status != 404 {
		t.Errorf("MAS admin from loopback (not allowed): %d, want 404", status)
	}
}

// CORS: the Matrix set exactly once on Matrix routes, MAS-routed compat
// login included (replacing MAS's own); none added on MAS's host and on
// lk-jwt-service and the SFU, which set their own; preflights on those are
// the upstream's to answer.
func TestDeploymentCORS(t *testing.T) {
	d := newDeployment(t, "")
	for _, p := range d.pools {
		p.Config.Handler = corsEcho(p.name, p.Config.Handler)
	}
	_, _, h := d.do(t, "POST", "matrix.example.org", "/_matrix/client/v3/login")
	wantCORSOnce(t, h)
	for _, tc := range []struct{ host, path string }{
		{"auth.example.org", "/oauth2/token"},
		{"matrix.example.org", "/livekit/jwt/sfu/get"},
		{"matrix.example.org", "/livekit/sfu/rtc/validate"},
	} {
		_, body, h := d.do(t, "POST", tc.host, tc.path)
		if v := h.Values("Access-Control-Allow-Origin"); len(v) != 1 || v[0] != "upstream-own" {
			t.Errorf("%s%s: Access-Control-Allow-Origin %q, want only the upstream's (%s)", tc.host, tc.path, v, body)
		}
		status, body, _ := d.do(t, "OPTIONS", tc.host, tc.path)
		if status != 200 || !strings.HasSuffix(body, "OPTIONS "+strings.TrimPrefix(strings.TrimPrefix(tc.path, "/livekit/jwt"), "/livekit/sfu")) {
			t.Errorf("OPTIONS %s%s: %d %q, want the upstream's own answer", tc.host, tc.path, status, body)
		}
	}
}

func corsEcho(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "upstream-own")
		next.ServeHTTP(w, r)
	})
}

// compat_login: false keeps login on the homeserver (syn2mas migration).
func TestDeploymentMigrationSwitch(t *testing.T) {
	d := newDeployment(t, "")
	d2 := loadFullConfig(t, strings.Replace(fmt.Sprintf(deploymentYAML, d.pools["homeserver"].URL, d.pools["mas"].URL, d.pools["lk-jwt"].URL,
		d.pools["sfu"].URL, d.pools["element"].URL, d.pools["admin-ui"].URL, ""), "  account_url:", "  compat_login: false\n  account_url:", 1))
	p, err := d.srv.Prepare(d2)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if _, body, _ := d.do(t, "POST", "matrix.example.org", "/_matrix/client/v3/login"); body != "homeserver POST /_matrix/client/v3/login" {
		t.Errorf("login during migration went to %q", body)
	}
	if _, body, _ := d.do(t, "GET", "auth.example.org", "/account/"); body != "mas GET /account/" {
		t.Errorf("MAS's host during migration: %q", body)
	}
}

// A client-only deployment refuses the federation API except OpenID userinfo.
func TestDeploymentFederationOff(t *testing.T) {
	d := newDeployment(t, "federation: {enabled: false}\n")
	for path, want := range map[string]int{
		"/_matrix/federation/v1/openid/userinfo?access_token=x": 200,
		"/_matrix/federation/v1/version":                        404,
		"/_matrix/key/v2/server":                                404,
		"/_matrix/federation/v1/openid/userinfo/x":              404,
	} {
		if status, _, _ := d.do(t, "GET", "matrix.example.org", path); status != want {
			t.Errorf("%s: %d, want %d", path, status, want)
		}
	}
}

// The login limit still applies to compat login when MAS takes it, fed by
// MAS's 403 for a failed login.
func TestDeploymentCompatLoginLimited(t *testing.T) {
	d := newDeployment(t, "")
	yaml := fmt.Sprintf(deploymentYAML, d.pools["homeserver"].URL, d.pools["mas"].URL, d.pools["lk-jwt"].URL, d.pools["sfu"].URL, d.pools["element"].URL, d.pools["admin-ui"].URL, "")
	yaml = strings.Replace(yaml, "rate_limits: {enabled: false}", "rate_limits: {exempt: {addresses: []}, rc_login: {address: {per_second: 0.001, burst_count: 2}}, mas_address: {per_second: 0.001, burst_count: 3}}", 1)
	srv := newLimitedServer(t, loadFullConfig(t, yaml))
	front := newFront(t, srv.Handler(ListenerClient, true))
	t.Cleanup(front.Close)
	d.front = front
	var got []int
	for range 3 {
		s, _, _ := d.do(t, "POST", "matrix.example.org", "/_matrix/client/v3/login")
		got = append(got, s)
	}
	if got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Errorf("compat logins: %v, want [200 200 429]", got)
	}
	got = nil
	for range 4 {
		s, _, _ := d.do(t, "GET", "auth.example.org", "/login")
		got = append(got, s)
	}
	if got[3] != 429 || got[2] != 200 {
		t.Errorf("MAS's host per address: %v, want 3 then 429", got)
	}
}

// The transports endpoint: the homeserver's answer when it lists transports,
// the configured one when it lists none or does not know the endpoint;
// anything else passed on (it stays authenticated).
func TestRTCTransports(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // "configured", or the upstream body
		wantSt int
	}{
		{"synapse with none configured", 200, `{}`, "configured", 200},
		{"empty list", 200, `{"rtc_transports":[]}`, "configured", 200},
		{"not implemented", 404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`, "configured", 200},
		{"listed", 200, `{"rtc_transports":[{"type":"livekit","livekit_service_url":"https://other/jwt"}]}`, `{"rtc_transports":[{"type":"livekit","livekit_service_url":"https://other/jwt"}]}`, 200},
		{"unauthenticated", 401, `{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}`, `{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}`, 401},
		{"rate limited", 429, `{"errcode":"M_LIMIT_EXCEEDED"}`, `{"errcode":"M_LIMIT_EXCEEDED"}`, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDeployment(t, "")
			d.pools["homeserver"].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			for _, path := range []string{"/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", "/_matrix/client/v1/rtc/transports"} {
				status, body, h := d.do(t, "GET", "matrix.example.org", path)
				want := tt.want
				if want == "configured" {
					want = `{"rtc_transports":[{"livekit_service_url":"https://matrix.example.org/livekit/jwt","type":"livekit"}]}`
				}
				if status != tt.wantSt || body != want {
					t.Errorf("%s: %d %s, want %d %s", path, status, body, tt.wantSt, want)
				}
				wantCORSOnce(t, h)
			}
		})
	}
}

// wsUpstream accepts a WebSocket upgrade (any key: the test does not check
// the accept hash) and echoes every byte back; it records what it read.
type wsUpstream struct {
	ln     net.Listener
	mu     sync.Mutex
	got    []byte
	heads  []string
	closed chan struct{}
}

func newWSUpstream(t *testing.T) *wsUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &wsUpstream{ln: ln, closed: make(chan struct{}, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return u
}

func (u *wsUpstream) serve(c net.Conn) {
	defer func() { c.Close(); u.closed <- struct{}{} }()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	u.mu.Lock()
	u.heads = append(u.heads, req.Method+" "+req.RequestURI+" upgrade="+req.Header.Get("Upgrade")+" connection="+req.Header.Get("Connection"))
	u.mu.Unlock()
	if req.Header.Get("Upgrade") != "websocket" {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\nConnection: close\r\n\r\nno switch")
		return
	}
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			u.mu.Lock()
			u.got = append(u.got, buf[:n]...)
			u.mu.Unlock()
			c.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// wsClient opens a WebSocket through addr to path; it returns the connection
// and its reader after the 101.
func wsClient(t *testing.T, addr, path string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: matrix.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, res
}

// maskedText is a client text frame (masked, as RFC 6455 wants).
func maskedText(s string) []byte {
	m := [4]byte{1, 2, 3, 4}
	b := []byte{0x81, 0x80 | byte(len(s)), m[0], m[1], m[2], m[3]}
	for i := 0; i < len(s); i++ {
		b = append(b, s[i]^m[i%4])
	}
	return b
}

func newWSDeployment(t *testing.T, sfu string, extra string) *deployment {
	t.Helper()
	d := &deployment{pools: map[string]*echoPool{}}
	for _, n := range []string{"homeserver", "mas", "lk-jwt", "element", "admin-ui"} {
		d.pools[n] = newEchoPool(t, n)
	}
	d.cfg = loadFullConfig(t, fmt.Sprintf(deploymentYAML, d.pools["homeserver"].URL, d.pools["mas"].URL, d.pools["lk-jwt"].URL, sfu, d.pools["element"].URL, d.pools["admin-ui"].URL, extra))
	srv, err := New(d.cfg, Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	d.srv = srv
	d.front = newFront(t, srv.Handler(ListenerClient, true))
	t.Cleanup(d.front.Close)
	t.Cleanup(srv.Close)
	return d
}

// A WebSocket to the SFU crosses both ways, lives through a reload, and is
// closed cleanly (a close frame both ways, between frames) on shutdown.
func TestWebSocketTunnel(t *testing.T) {
	up := newWSUpstream(t)
	d := newWSDeployment(t, "http://"+up.ln.Addr().String(), "")
	c, br, res := wsClient(t, d.front.Listener.Addr().String(), "/livekit/sfu/rtc/v1?access_token=t")
	if res.StatusCode != 101 || res.Header.Get("Sec-Websocket-Accept") != "x" || !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("upgrade: %d %v", res.StatusCode, res.Header)
	}
	up.mu.Lock()
	head := up.heads[0]
	up.mu.Unlock()
	if head != "GET /rtc/v1?access_token=t upgrade=websocket connection=Upgrade" {
		t.Errorf("upstream saw %q", head)
	}
	frame := maskedText("hello")
	c.Write(frame)
	echo := make([]byte, len(frame))
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != string(frame) {
		t.Fatalf("echo %x %v, want %x", echo, err, frame)
	}
	// A reload keeps the tunnel.
	p, err := d.srv.Prepare(loadFullConfig(t, fmt.Sprintf(deploymentYAML, d.pools["homeserver"].URL, d.pools["mas"].URL, d.pools["lk-jwt"].URL, "http://"+up.ln.Addr().String(), d.pools["element"].URL, d.pools["admin-ui"].URL, "well_known: {server: \"x.example.org:443\"}\n")))
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	c.Write(maskedText("after"))
	echo = make([]byte, 11)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo[6:]) != string(maskedText("after")[6:]) {
		t.Fatalf("after a reload: %x %v", echo, err)
	}
	if n := d.srv.tunnels.Open(); n != 1 {
		t.Errorf("%d open tunnels, want 1", n)
	}
	// Shutdown: once timeouts.shutdown is over, a close frame each way.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.srv.CloseTunnels(ctx); close(done) }()
	cancel()
	got, _ := io.ReadAll(br)
	if string(got) != "\x88\x02\x03\xe9" {
		t.Errorf("client got %x at shutdown, want a close frame 1001", got)
	}
	<-done
	<-up.closed
	up.mu.Lock()
	tail := up.got[len(up.got)-8:]
	up.mu.Unlock()
	if tail[0] != 0x88 || tail[1] != 0x82 || tail[6]^tail[2] != 0x03 || tail[7]^tail[3] != 0xe9 {
		t.Errorf("upstream got %x at shutdown, want a masked close frame 1001", tail)
	}
}

// Upgrade never crosses where the route does not allow it: the request is
// forwarded as a plain GET.
func TestWebSocketOnlyWhereAllowed(t *testing.T) {
	up := newWSUpstream(t)
	d := newWSDeployment(t, "http://"+up.ln.Addr().String(), "")
	d.pools["homeserver"].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upgrade=%q connection=%q", r.Header.Get("Upgrade"), r.Header.Get("Connection"))
	})
	_, br, res := wsClient(t, d.front.Listener.Addr().String(), "/_matrix/client/v3/sync")
	b, _ := io.ReadAll(res.Body)
	_ = br
	if res.StatusCode != 200 || string(b) != `upgrade="" connection=""` {
		t.Errorf("upgrade on a Matrix route: %d %s", res.StatusCode, b)
	}
}

// A tunnel with no byte either way for timeouts.websocket_idle is closed.
func TestWebSocketIdle(t *testing.T) {
	up := newWSUpstream(t)
	d := newWSDeployment(t, "http://"+up.ln.Addr().String(), "timeouts: {websocket_idle: 300ms}\n")
	_, br, res := wsClient(t, d.front.Listener.Addr().String(), "/livekit/sfu/rtc")
	if res.StatusCode != 101 {
		t.Fatalf("status %d", res.StatusCode)
	}
	start := time.Now()
	if _, err := io.ReadAll(br); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
}

// A pool at max_connections with a full queue answers 429 with Retry-After;
// a pool with no healthy member answers 502 at once.
func TestPoolAnswers(t *testing.T) {
	hold := make(chan struct{})
	arrived := make(chan struct{}, 4)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(503)
			return
		}
		arrived <- struct{}{}
		<-hold
		io.WriteString(w, "{}")
	}))
	t.Cleanup(hs.Close)
	cfg := loadFullConfig(t, "server_name: example.org\nrate_limits: {enabled: false}\nupstreams: {homeserver: {members: [\""+hs.URL+"\"], max_connections: 1, max_queue: 1, queue_timeout: 100ms}}\n")
	srv, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	front := newFront(t, srv.Handler(ListenerClient, false))
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(hold) }) // runs first: the held request ends
	go http.Get(front.URL + "/_matrix/client/v3/sync")
	<-arrived
	res, err := http.Get(front.URL + "/_matrix/client/v3/sync")
	if err != nil {
		t.Fatal(err)
	}
	code, body := matrixError(t, res)
	if res.StatusCode != 429 || code != "M_LIMIT_EXCEEDED" || res.Header.Get("Retry-After") != "1" || body["retry_after_ms"] != 100.0 {
		t.Errorf("queue timeout: %d %v %v", res.StatusCode, body, res.Header)
	}
	wantCORSOnce(t, res.Header)

	// The only member fails its health check: 502 at once, nothing sent.
	cfg = loadFullConfig(t, "server_name: example.org\nrate_limits: {enabled: false}\nupstreams: {homeserver: {members: [\""+hs.URL+"\"], health: {path: /health, interval: 20ms}}}\n")
	srv2, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Close)
	front2 := newFront(t, srv2.Handler(ListenerClient, false))
	t.Cleanup(front2.Close)
	m := srv2.snap.Load().table.pools[0].Members()[0]
	for deadline := time.Now().Add(5 * time.Second); m.Available(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the member never failed its health check")
		}
	}
	res, err = http.Get(front2.URL + "/_matrix/client/v3/sync")
	if err != nil {
		t.Fatal(err)
	}
	code, body = matrixError(t, res)
	if res.StatusCode != 502 || code != "M_UNKNOWN" || body["error"] != "No upstream available" {
		t.Errorf("no healthy member: %d %v", res.StatusCode, body)
	}
	select {
	case <-arrived:
		t.Error("a request reached the unhealthy member")
	default:
	}
}

func TestTransportsAnswerJSON(t *testing.T) {
	var doc map[string][]map[string]string
	if err := json.Unmarshal(transportsAnswer("https://m.example.org/livekit/jwt"), &doc); err != nil || doc["rtc_transports"][0]["type"] != "livekit" {
		t.Errorf("%v %v", doc, err)
	}
}
