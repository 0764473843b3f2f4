package check

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/testkit"
)

// TestAgainstMxedge runs every check against mxedge's own request path in
// front of a fake homeserver that sets its own CORS headers (as Synapse does):
// mxedge must make all of them pass.
func TestAgainstMxedge(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server")
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_matrix/client/versions":
			io.WriteString(w, `{"versions":["v1.11","v1.12"]}`)
		case "/_matrix/key/v2/server":
			json.NewEncoder(w).Encode(map[string]any{
				"server_name":     "example.org",
				"valid_until_ts":  4102444800000,
				"verify_keys":     map[string]any{"ed25519:a": map[string]string{"key": "Kd8b5E6vKqzDThh0Z0gPqh8XqJjK2Ww2j+qN0nT0bxA"}},
				"old_verify_keys": map[string]any{},
			})
		default:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}`)
		}
	}))
	defer hs.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	doc := fmt.Sprintf(`server_name: example.org
upstream: %s
public_baseurl: http://%s/
rate_limits: {enabled: false}
well_known:
  server: "%s"
  support:
    contacts:
      - {role: m.role.admin, matrix_id: "@admin:example.org"}
`, hs.URL, addr, addr)
	path := testkit.TempFile(t, "mxedge.yaml", doc)
	cfg, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	front := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler(proxy.ListenerClient, false)}}
	front.Start()
	defer front.Close()

	rep, err := checkAgainst(t, "http://"+addr, "--insecure-http", "--server-name", "example.org")
	requireAllPass(t, rep, err, true)
	if rep.Passed < 8 {
		t.Errorf("only %d checks passed: %+v", rep.Passed, rep.Checks)
	}
	if got := strings.Join(rep.Versions, ","); got != "v1.11,v1.12" {
		t.Errorf("versions %q", got)
	}
}

// fullDeployment is mxedge (plain http, on one loopback port) in front of
// fakes of Synapse under MAS, MAS, lk-jwt-service and a LiveKit SFU, with
// matrix.example.org and auth.example.org both on that port.
type fullDeployment struct {
	addr, port string
	token      string
}

// fake tokens of the full deployment.
const (
	fullToken  = "mct_fullDeploymentAccessToken"
	fullOpenID = "fullDeploymentOpenIDToken"
	fullUser   = "@alice:example.org"
)

// startFullMxedge starts the fakes and mxedge with mas.compat_login and
// federation.enabled as given (federation on delegates to the Matrix host).
func startFullMxedge(t *testing.T, compatLogin, federation bool) *fullDeployment {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	matrixHost, masPublic := "matrix.example.org:"+port, "http://auth.example.org:"+port+"/"
	jsonAnswer := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	// Synapse under MAS: no /login, {} transports (matrix_rtc unset), its
	// own CORS headers.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server")
		authed := r.Header.Get("Authorization") == "Bearer "+fullToken
		switch r.URL.Path {
		case "/_matrix/client/versions":
			jsonAnswer(w, 200, map[string]any{"versions": []string{"v1.11", "v1.12"}})
		case "/_matrix/key/v2/server":
			jsonAnswer(w, 200, map[string]any{
				"server_name":     "example.org",
				"valid_until_ts":  4102444800000,
				"verify_keys":     map[string]any{"ed25519:a": map[string]string{"key": "Kd8b5E6vKqzDThh0Z0gPqh8XqJjK2Ww2j+qN0nT0bxA"}},
				"old_verify_keys": map[string]any{},
			})
		case "/_matrix/client/v3/account/whoami":
			if !authed {
				jsonAnswer(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
				return
			}
			jsonAnswer(w, 200, map[string]string{"user_id": fullUser, "device_id": "DEV"})
		case transportsPath:
			if !authed {
				jsonAnswer(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
				return
			}
			jsonAnswer(w, 200, map[string]any{})
		case "/_matrix/client/v3/user/" + fullUser + "/openid/request_token":
			if !authed || r.Method != http.MethodPost {
				jsonAnswer(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
				return
			}
			jsonAnswer(w, 200, map[string]any{"access_token": fullOpenID, "token_type": "Bearer", "matrix_server_name": "example.org", "expires_in": 3600})
		case "/_matrix/federation/v1/openid/userinfo":
			switch r.URL.Query().Get("access_token") {
			case "":
				jsonAnswer(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Access Token required"})
			case fullOpenID:
				jsonAnswer(w, 200, map[string]string{"sub": fullUser})
			default:
				jsonAnswer(w, 401, map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "Access Token unknown or expired"})
			}
		default:
			jsonAnswer(w, 404, map[string]string{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
		}
	}))
	t.Cleanup(hs.Close)
	// MAS: its discovery document (own CORS) on its host, compat login on
	// the Matrix host.
	mas := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Host == "auth.example.org:"+port && r.URL.Path == "/.well-known/openid-configuration":
			w.Header().Set("Access-Control-Allow-Origin", "*")
			jsonAnswer(w, 200, discoveryDoc(masPublic))
		case r.Host == matrixHost && r.URL.Path == "/_matrix/client/v3/login":
			jsonAnswer(w, 200, masLoginFlows)
		default:
			jsonAnswer(w, 404, map[string]string{"errcode": "M_NOT_FOUND", "error": "Not found: " + r.Host + r.URL.Path})
		}
	}))
	t.Cleanup(mas.Close)
	// lk-jwt-service serves /healthz at its root only.
	jwt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "OK")
	}))
	t.Cleanup(jwt.Close)
	sfu := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(sfu.Close)

	fed := "federation: {enabled: false}\n"
	wk := "well_known:\n  support: {contacts: [{role: m.role.admin, matrix_id: \"@admin:example.org\"}]}\n"
	if federation {
		fed, wk = "", wk+fmt.Sprintf("  server: %q\n", matrixHost)
	}
	doc := fmt.Sprintf(`server_name: example.org
public_baseurl: http://%s/
upstreams:
  homeserver: {members: [%q]}
  mas:        {members: [%q]}
  lk-jwt:     {members: [%q]}
  sfu:        {members: [%q]}
mas:
  upstream: mas
  public_base: %s
  compat_login: %t
rtc:
  jwt_upstream: lk-jwt
  sfu_upstream: sfu
rate_limits: {enabled: false}
%s%s`, matrixHost, hs.URL, mas.URL, jwt.URL, sfu.URL, masPublic, compatLogin, fed, wk)
	cfg, err := config.Load(config.LoadOptions{Path: testkit.TempFile(t, "mxedge.yaml", doc)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	front := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler(proxy.ListenerClient, false)}}
	front.Start()
	t.Cleanup(front.Close)
	return &fullDeployment{addr: addr, port: port, token: fullToken}
}

// check runs mxedge check against the deployment with more flags.
func (d *fullDeployment) check(t *testing.T, args ...string) (*Report, error) {
	t.Helper()
	all := append([]string{"--insecure-http", "--server-name", "example.org",
		"--resolve", "matrix.example.org:" + d.port + ":" + d.addr,
		"--resolve", "auth.example.org:" + d.port + ":" + d.addr,
		"--access-token", d.token}, args...)
	return checkAgainst(t, "http://matrix.example.org:"+d.port, all...)
}

func failedIDs(rep *Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Status == Fail {
			out = append(out, c.ID)
		}
	}
	return out
}

// TestAgainstMxedgeFull: every check passes against mxedge in front of
// Synapse, MAS and MatrixRTC. That proves compat login goes to MAS, MAS's
// host is forwarded whole, mxedge replaces the homeserver's {} transports by
// its configured list, /livekit/jwt/ is stripped and userinfo is forwarded.
func TestAgainstMxedgeFull(t *testing.T) {
	d := startFullMxedge(t, true, true)
	rep, err := d.check(t)
	requireAllPass(t, rep, err, false)
	for _, id := range []string{"access_token", "mas_discovery", "mas_issuer", "mas_metadata", "mas_compat_login",
		"rtc_transports", "rtc_transports_agree", "lk_jwt_health", "openid_userinfo", "server_keys"} {
		if c := result(t, rep, id); c.Status != Pass {
			t.Errorf("%s: got %s, want pass", id, c.Status)
		}
	}
	want := "livekit http://matrix.example.org:" + d.port + "/livekit/jwt"
	if c := result(t, rep, "rtc_transports"); !strings.Contains(c.Detail, want) {
		t.Errorf("rtc_transports: got %q, want it to list %s", c.Detail, want)
	}
	if c := result(t, rep, "openid_userinfo"); !strings.Contains(c.Detail, "a fresh OpenID token came back as "+fullUser) {
		t.Errorf("openid_userinfo: got %q, want the round trip", c.Detail)
	}
}

// TestAgainstMxedgeCompatLoginOff: with mas.compat_login false /login
// reaches Synapse, which does not serve it under MAS: exactly the compat
// login check fails.
func TestAgainstMxedgeCompatLoginOff(t *testing.T) {
	d := startFullMxedge(t, false, true)
	rep, err := d.check(t)
	if got := strings.Join(failedIDs(rep), " "); got != "mas_compat_login" || exitCode(err) != 1 {
		t.Errorf("got failed %q (%v), want mas_compat_login", got, err)
	}
	if c := result(t, rep, "mas_compat_login"); !strings.Contains(c.Detail, "answered 404 M_UNRECOGNIZED: the homeserver got it") {
		t.Errorf("mas_compat_login: got %q", c.Detail)
	}
}

// TestAgainstMxedgeFederationOff: with federation.enabled false the keys
// check fails (nothing on example.org:8448) and its fix names
// --no-federation; with it every check passes, userinfo included.
func TestAgainstMxedgeFederationOff(t *testing.T) {
	d := startFullMxedge(t, true, false)
	closed := closedAddr(t)
	rep, err := d.check(t, "--resolve", "example.org:8448:"+closed)
	if got := strings.Join(failedIDs(rep), " "); got != "server_keys" || exitCode(err) != 1 {
		t.Errorf("got failed %q (%v), want server_keys", got, err)
	}
	if c := result(t, rep, "server_keys"); !strings.HasSuffix(c.Fix, clientOnlyHint) {
		t.Errorf("server_keys: got fix %q, want it to end with %q", c.Fix, clientOnlyHint)
	}

	rep, err = d.check(t, "--resolve", "example.org:8448:"+closed, "--no-federation")
	requireAllPass(t, rep, err, true)
	if rep.Skipped != 2 || result(t, rep, "server_wellknown").Status != Skip || result(t, rep, "server_keys").Status != Skip {
		t.Errorf("got %d skipped, want the two federation checks", rep.Skipped)
	}
	if c := result(t, rep, "openid_userinfo"); c.Status != Pass || !strings.Contains(c.Detail, "a fresh OpenID token came back") {
		t.Errorf("openid_userinfo: got %s %q, want the round trip through mxedge", c.Status, c.Detail)
	}
}
