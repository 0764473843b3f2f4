package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// checkAgainst runs `mxedge check --json [args] target` and returns the parsed
// report and Run's error. It works against any deployment: pass the flags
// (--resolve, --ca-file, --insecure-http, --server-name) that reach it.
func checkAgainst(t *testing.T, target string, args ...string) (*Report, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append(append([]string{"--json"}, args...), target)
	err := Run(context.Background(), all, nil, &stdout, &stderr)
	var rep Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("check %v: bad JSON output (%v): %s\nstderr: %s", all, jerr, stdout.String(), stderr.String())
	}
	return &rep, err
}

// requireAllPass fails the test unless every check passed (skips allowed when
// allowSkip).
func requireAllPass(t *testing.T, rep *Report, err error, allowSkip bool) {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Status == Fail || (c.Status == Skip && !allowSkip) {
			t.Errorf("%s: got %s (%s; fix: %s), want pass", c.ID, c.Status, c.Detail, c.Fix)
		}
	}
	if err != nil {
		t.Errorf("got error %v, want nil", err)
	}
}

func TestGoodSetup(t *testing.T) {
	p := newPKI(t)
	d := startFake(t, p, defaultFake())
	rep, err := checkAgainst(t, "example.org", d.args()...)
	requireAllPass(t, rep, err, false)
	if got, want := strings.Join(rep.Versions, ","), "v1.11,v1.12"; got != want {
		t.Errorf("got versions %q, want %q", got, want)
	}
	if got, want := rep.Federation, "matrix.example.org:443"; got != want {
		t.Errorf("got federation %q, want %q", got, want)
	}
	if got, want := rep.BaseURL, "https://matrix.example.org"; got != want {
		t.Errorf("got base URL %q, want %q", got, want)
	}
	wantIDs := []string{
		"client_wellknown", "client_wellknown_json", "client_wellknown_content_type", "client_wellknown_cors",
		"client_versions", "matrix_cors", "preflight",
		"access_token", "mas_discovery", "mas_issuer", "mas_metadata", "mas_compat_login",
		"rtc_transports", "rtc_transports_agree", "lk_jwt_health", "openid_userinfo",
		"server_wellknown", "server_keys", "support_wellknown",
		"tls_chain:example.org:443", "tls_names:example.org:443", "tls_expiry:example.org:443",
		"tls_chain:matrix.example.org:443", "tls_names:matrix.example.org:443", "tls_expiry:matrix.example.org:443",
		"tls_chain:auth.example.org:443", "tls_names:auth.example.org:443", "tls_expiry:auth.example.org:443",
	}
	var gotIDs []string
	for _, c := range rep.Checks {
		gotIDs = append(gotIDs, c.ID)
	}
	if strings.Join(gotIDs, " ") != strings.Join(wantIDs, " ") {
		t.Errorf("got checks\n  %v\nwant\n  %v", gotIDs, wantIDs)
	}

	// The text output: one line per check, all ✓, and a summary.
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), append(d.args(), "example.org"), nil, &stdout, &stderr); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	out := stdout.String()
	t.Logf("mxedge check example.org:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got, want := len(lines), len(wantIDs)+2; got != want {
		t.Errorf("got %d lines, want %d (header, one per check, summary)", got, want)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !strings.HasPrefix(l, "✓ ") {
			t.Errorf("got line %q, want ✓", l)
		}
	}
}

// TestPlainHTTPTarget runs against a base URL over plain http, the way a test
// runs against mxedge's http listener with a fake homeserver behind it.
func TestPlainHTTPTarget(t *testing.T) {
	fc := defaultFake()
	fc.plain = true
	addr := ""
	fc.handlers["/.well-known/matrix/client"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 200, map[string]any{
			"m.homeserver":                      map[string]string{"base_url": "http://" + addr},
			"org.matrix.msc2965.authentication": map[string]string{"issuer": fc.issuer},
			"org.matrix.msc4143.rtc_foci":       []map[string]string{{"type": "livekit", "livekit_service_url": fc.livekitURL}},
		})
	}
	d := startFake(t, nil, fc)
	addr = d.srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	fc.issuer = "http://" + masHost + ":" + port + "/"
	fc.masIssuer = fc.issuer
	fc.livekitURL = "http://" + addr + "/livekit/jwt"
	rep, err := checkAgainst(t, "http://"+addr, "--insecure-http", "--server-name", "example.org",
		"--resolve", "matrix.example.org:443:"+addr, "--resolve", masHost+":"+port+":"+addr, "--access-token", fc.token)
	requireAllPass(t, rep, err, false)

	// Without --insecure-http an http target is a usage error.
	var stdout, stderr bytes.Buffer
	err = Run(context.Background(), []string{"http://" + addr}, nil, &stdout, &stderr)
	if code := exitCode(err); code != 2 {
		t.Errorf("got exit code %d (%v), want 2", code, err)
	}
}

// closedAddr returns a loopback address where nothing listens (a port 0
// listener, closed).
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

func TestBrokenSetups(t *testing.T) {
	p := newPKI(t)
	status := func(code int, body string, ct string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(code)
			w.Write([]byte(body))
		}
	}
	tests := []struct {
		name       string
		breakIt    func(fc *fakeConfig)
		extraArgs  []string
		dropCA     bool
		wantID     string
		wantDetail string
		wantFix    string   // part of the fix, when set
		alsoHosts  []string // more names --resolve maps to the fake (port 443)
	}{
		{
			name: "client well-known missing",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/client"] = status(404, `{"errcode":"M_NOT_FOUND"}`, "application/json")
			},
			wantID:     "client_wellknown",
			wantDetail: "answered 404, want 200",
		},
		{
			name: "client well-known invalid JSON",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/client"] = status(200, `{"m.homeserver":`, "application/json")
			},
			wantID:     "client_wellknown_json",
			wantDetail: "not valid JSON",
		},
		{
			name: "client well-known without base_url",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/client"] = status(200, `{"m.identity_server":{"base_url":"https://id.example.org"}}`, "application/json")
			},
			wantID:     "client_wellknown_json",
			wantDetail: "m.homeserver.base_url is missing",
		},
		{
			name: "client well-known as text/plain",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/client"] = status(200, `{"m.homeserver":{"base_url":"https://matrix.example.org"}}`, "text/plain")
			},
			wantID:     "client_wellknown_content_type",
			wantDetail: `Content-Type is "text/plain", want application/json`,
		},
		{
			name: "client well-known without CORS",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/client"] = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Del("Access-Control-Allow-Origin")
					writeJSONBody(w, 200, map[string]any{"m.homeserver": map[string]string{"base_url": "https://matrix.example.org"}})
				}
			},
			wantID:     "client_wellknown_cors",
			wantDetail: "no Access-Control-Allow-Origin header",
		},
		{
			name: "base_url points nowhere",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/client"] = func(w http.ResponseWriter, r *http.Request) {
					writeJSONBody(w, 200, map[string]any{"m.homeserver": map[string]string{"base_url": "https://matrix.example.org:1"}})
				}
			},
			extraArgs:  []string{"--resolve", "matrix.example.org:1:" + closedAddr(t)},
			wantID:     "client_versions",
			wantDetail: "connection refused",
		},
		{
			name: "versions not JSON",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/client/versions"] = status(200, "<html>nginx</html>", "text/html")
			},
			wantID:     "client_versions",
			wantDetail: "not valid JSON",
		},
		{
			name:       "versions 502",
			breakIt:    func(fc *fakeConfig) { fc.handlers["/_matrix/client/versions"] = status(502, "", "") },
			wantID:     "client_versions",
			wantDetail: "answered 502, want 200",
		},
		{
			name: "duplicate CORS value on /_matrix/",
			breakIt: func(fc *fakeConfig) {
				fc.cors = func(h http.Header) { goodCORS(h); h.Set("Access-Control-Allow-Origin", "*, *") }
			},
			wantID:     "matrix_cors",
			wantDetail: `Access-Control-Allow-Origin is "*, *": duplicate values`,
		},
		{
			name: "duplicate CORS header lines on /_matrix/",
			breakIt: func(fc *fakeConfig) {
				fc.cors = func(h http.Header) { goodCORS(h); h.Add("Access-Control-Allow-Origin", "*") }
			},
			wantID:     "matrix_cors",
			wantDetail: "Access-Control-Allow-Origin sent 2 times",
		},
		{
			name: "no CORS on error answers",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/client/v3/account/whoami"] = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Del("Access-Control-Allow-Origin")
					writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN"})
				}
			},
			wantID:     "matrix_cors",
			wantDetail: "no Access-Control-Allow-Origin header on GET /_matrix/client/v3/account/whoami (401)",
		},
		{
			name:       "preflight refused",
			breakIt:    func(fc *fakeConfig) { fc.handlers["OPTIONS /_matrix/client/v3/sync"] = status(405, "", "") },
			wantID:     "preflight",
			wantDetail: "answered 405, want 204 or 200",
		},
		{
			name: "preflight without Authorization",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["OPTIONS /_matrix/client/v3/sync"] = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Access-Control-Allow-Headers", "*")
					w.WriteHeader(204)
				}
			},
			wantID:     "preflight",
			wantDetail: "a wildcard never covers Authorization",
		},
		{
			name: "preflight with duplicated methods",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["OPTIONS /_matrix/client/v3/sync"] = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Add("Access-Control-Allow-Methods", "GET, POST")
					w.WriteHeader(204)
				}
			},
			wantID:     "preflight",
			wantDetail: "Access-Control-Allow-Methods sent 2 times",
		},
		{
			name:       "incomplete chain",
			breakIt:    func(fc *fakeConfig) { fc.leafOnly = true },
			wantID:     "tls_chain:example.org:443",
			wantDetail: "does not lead to a trusted root",
		},
		{
			name:       "private CA not trusted",
			dropCA:     true,
			wantID:     "tls_chain:example.org:443",
			wantDetail: "does not lead to a trusted root",
		},
		{
			name:       "certificate misses a name",
			breakIt:    func(fc *fakeConfig) { fc.certNames = []string{"example.org"} },
			wantID:     "tls_names:matrix.example.org:443",
			wantDetail: "certificate names (example.org) do not cover matrix.example.org",
		},
		{
			name:       "certificate about to expire",
			breakIt:    func(fc *fakeConfig) { fc.certNotAfter = time.Now().Add(5*24*time.Hour + time.Hour) },
			wantID:     "tls_expiry:example.org:443",
			wantDetail: "5 days left",
		},
		{
			name: "server well-known malformed",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/server"] = status(200, `{"m.server":"https://matrix.example.org/"}`, "application/json")
			},
			wantID:     "server_wellknown",
			wantDetail: "bad server name",
		},
		{
			name:       "server well-known 500",
			breakIt:    func(fc *fakeConfig) { fc.handlers["/.well-known/matrix/server"] = status(500, "", "") },
			wantID:     "server_wellknown",
			wantDetail: "answered 500, want 200 or 404",
		},
		{
			name: "keys of another server",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/key/v2/server"] = func(w http.ResponseWriter, r *http.Request) {
					writeJSONBody(w, 200, map[string]any{"server_name": "matrix.example.org", "verify_keys": map[string]any{"ed25519:a": map[string]string{"key": "x"}}})
				}
			},
			wantID:     "server_keys",
			wantDetail: `serves keys for "matrix.example.org", want "example.org"`,
		},
		{
			name: "federation not forwarded",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/key/v2/server"] = status(404, `{"errcode":"M_UNRECOGNIZED"}`, "application/json")
			},
			wantID:     "server_keys",
			wantDetail: "answered 404, want 200",
		},
		{
			name: "delegation to a closed port",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/server"] = status(200, `{"m.server":"matrix.example.org:8448"}`, "application/json")
			},
			extraArgs:  []string{"--resolve", "matrix.example.org:8448:" + closedAddr(t)},
			wantID:     "server_keys",
			wantDetail: "connection refused",
		},
		{
			name: "compat login not routed to MAS",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/client/v3/login"] = status(200, `{"flows":[{"type":"m.login.password"},{"type":"m.login.sso","identity_providers":[]},{"type":"m.login.token"}]}`, "application/json")
			},
			wantID:     "mas_compat_login",
			wantDetail: "lists flows m.login.password, m.login.sso, m.login.token but m.login.sso has no oauth_aware_preferred (MSC3824): the homeserver's own login answers",
			wantFix:    "/_matrix/client/{api/v1,r0,v3,unstable}/login, /logout, /refresh",
		},
		{
			name: "compat login without SSO",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/client/v3/login"] = status(200, `{"flows":[{"type":"m.login.password"}]}`, "application/json")
			},
			wantID:     "mas_compat_login",
			wantDetail: "lists flows m.login.password but no m.login.sso",
			wantFix:    "MAS#1941",
		},
		{
			name: "compat login 404",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/client/v3/login"] = status(404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`, "application/json")
			},
			wantID:     "mas_compat_login",
			wantDetail: "answered 404 M_UNRECOGNIZED: the homeserver got it (Synapse does not serve /login under MAS), so compat login is not routed to MAS",
			wantFix:    "mas.compat_login: true",
		},
		{
			name:       "issuer without trailing slash",
			breakIt:    func(fc *fakeConfig) { fc.masIssuer = "https://auth.example.org" },
			wantID:     "mas_issuer",
			wantDetail: `the discovery document says issuer "https://auth.example.org", the client well-known "https://auth.example.org/" (they differ only in the trailing slash)`,
			wantFix:    "trailing slash included",
		},
		{
			name:       "issuer on another host",
			breakIt:    func(fc *fakeConfig) { fc.masIssuer = "https://mas.internal:8080/" },
			wantID:     "mas_issuer",
			wantDetail: "(another host: mas.internal:8080, not auth.example.org)",
			wantFix:    "OpenID Connect Discovery",
		},
		{
			name: "discovery without registration and S256",
			breakIt: func(fc *fakeConfig) {
				fc.handlers[masHost+"/.well-known/openid-configuration"] = func(w http.ResponseWriter, r *http.Request) {
					doc := discoveryDoc(fc.masIssuer)
					delete(doc, "registration_endpoint")
					doc["code_challenge_methods_supported"] = []string{"plain"}
					w.Header().Set("Access-Control-Allow-Origin", "*")
					writeJSONBody(w, 200, doc)
				}
			},
			wantID:     "mas_metadata",
			wantDetail: "the discovery document is incomplete: no registration_endpoint; code_challenge_methods_supported lacks S256",
		},
		{
			name: "discovery 404",
			breakIt: func(fc *fakeConfig) {
				fc.handlers[masHost+"/.well-known/openid-configuration"] = status(404, "not found", "text/plain")
			},
			wantID:     "mas_discovery",
			wantDetail: "GET https://auth.example.org/.well-known/openid-configuration answered 404, want 200",
			wantFix:    "mas.public_base's host goes to mas.upstream",
		},
		{
			name: "discovery with a doubled CORS header",
			breakIt: func(fc *fakeConfig) {
				fc.handlers[masHost+"/.well-known/openid-configuration"] = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Add("Access-Control-Allow-Origin", "*")
					w.Header().Add("Access-Control-Allow-Origin", "*")
					writeJSONBody(w, 200, discoveryDoc(fc.masIssuer))
				}
			},
			wantID:     "mas_discovery",
			wantDetail: "Access-Control-Allow-Origin sent 2 times",
			wantFix:    "MAS sets its own",
		},
		{
			name:       "plain-http issuer",
			breakIt:    func(fc *fakeConfig) { fc.issuer = "http://auth.example.org/" },
			wantID:     "mas_discovery",
			wantDetail: `issuer "http://auth.example.org/" is plain http`,
		},
		{
			name:       "transports {}",
			breakIt:    func(fc *fakeConfig) { fc.handlers[transportsPath] = status(200, `{}`, "application/json") },
			wantID:     "rtc_transports",
			wantDetail: "answered 200 with no transports ({}): Element X takes this as final and caches it for a day, and Element Call 0.24+ has no other source",
			wantFix:    "matrix_rtc.transports",
		},
		{
			name: "transports empty list",
			breakIt: func(fc *fakeConfig) {
				fc.handlers[transportsPath] = status(200, `{"rtc_transports":[]}`, "application/json")
			},
			wantID:     "rtc_transports",
			wantDetail: `answered 200 with no transports ({"rtc_transports":[]})`,
		},
		{
			name: "transports 404 with rtc_foci advertised",
			breakIt: func(fc *fakeConfig) {
				fc.handlers[transportsPath] = status(404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`, "application/json")
			},
			wantID:     "rtc_transports",
			wantDetail: "answered 404 M_UNRECOGNIZED while the client well-known advertises org.matrix.msc4143.rtc_foci: Element Call 0.24+ dropped the well-known fallback",
		},
		{
			name: "transports and well-known disagree",
			breakIt: func(fc *fakeConfig) {
				fc.handlers[transportsPath] = status(200, `{"rtc_transports":[{"type":"livekit","livekit_service_url":"https://rtc.example.org/livekit/jwt"}]}`, "application/json")
			},
			alsoHosts:  []string{"rtc.example.org"},
			wantID:     "rtc_transports_agree",
			wantDetail: "the transports endpoint names https://rtc.example.org/livekit/jwt, the client well-known https://matrix.example.org/livekit/jwt: clients split by source",
			wantFix:    "rtc.livekit_service_url feeds both",
		},
		{
			name: "lk-jwt-service prefix not stripped",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/livekit/jwt/healthz"] = status(404, "404 page not found", "text/plain")
			},
			wantID:     "lk_jwt_health",
			wantDetail: "GET https://matrix.example.org/livekit/jwt/healthz answered 404: the prefix is not stripped",
			wantFix:    "rtc.jwt_upstream strips it",
		},
		{
			name: "userinfo not forwarded",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/federation/v1/openid/userinfo"] = status(404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`, "application/json")
			},
			wantID:     "openid_userinfo",
			wantDetail: "answered 404 M_UNRECOGNIZED (Unrecognized request): not forwarded to the homeserver",
			wantFix:    "whether federation is on or off, otherwise lk-jwt-service answers \"Failed to look up user info\"",
		},
		{
			name: "userinfo answered by something else",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/federation/v1/openid/userinfo"] = status(401, "<html>401 Authorization Required</html>", "text/html")
			},
			wantID:     "openid_userinfo",
			wantDetail: "answered 401 without a Matrix errcode",
		},
		{
			name: "userinfo refuses the fresh OpenID token",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/federation/v1/openid/userinfo"] = status(401, `{"errcode":"M_UNKNOWN_TOKEN","error":"Access Token unknown or expired"}`, "application/json")
			},
			wantID:     "openid_userinfo",
			wantDetail: "refused a fresh OpenID token of @alice:example.org: answered 401 M_UNKNOWN_TOKEN",
		},
		{
			name:       "access token rejected",
			extraArgs:  []string{"--access-token", "syt_wrong"},
			wantID:     "access_token",
			wantDetail: "the homeserver does not accept the access token: whoami answered 401 M_MISSING_TOKEN",
		},
		{
			name: "homeserver cannot reach MAS",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/_matrix/client/v3/account/whoami"] = status(503, `{"errcode":"M_UNKNOWN","error":"Service unavailable"}`, "application/json")
			},
			wantID:     "access_token",
			wantDetail: "the homeserver cannot check the token with MAS",
			wantFix:    "matrix_authentication_service.endpoint",
		},
		{
			name: "support well-known invalid",
			breakIt: func(fc *fakeConfig) {
				fc.handlers["/.well-known/matrix/support"] = status(200, `{"contacts":[{"role":"m.role.admin"}]}`, "application/json")
			},
			wantID:     "support_wellknown",
			wantDetail: "contacts[0] needs a role and a matrix_id or email_address",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := defaultFake()
			if tt.breakIt != nil {
				tt.breakIt(fc)
			}
			d := startFake(t, p, fc)
			args := append(d.args(), tt.extraArgs...)
			for _, h := range tt.alsoHosts {
				args = append(args, "--resolve", h+":443:"+d.srv.Listener.Addr().String())
			}
			if tt.dropCA {
				args = args[2:] // drop --ca-file
			}
			rep, err := checkAgainst(t, "example.org", args...)
			if code := exitCode(err); code != 1 {
				t.Errorf("got exit code %d (%v), want 1", code, err)
			}
			var found bool
			for _, c := range rep.Checks {
				if c.ID != tt.wantID {
					continue
				}
				found = true
				t.Logf("%s %s: %s. Fix: %s", c.Status, c.ID, c.Detail, c.Fix)
				if c.Status != Fail {
					t.Errorf("%s: got %s (%s), want fail", c.ID, c.Status, c.Detail)
				}
				if !strings.Contains(c.Detail, tt.wantDetail) {
					t.Errorf("%s: got detail %q, want it to contain %q", c.ID, c.Detail, tt.wantDetail)
				}
				if c.Fix == "" {
					t.Errorf("%s: got no fix, want one", c.ID)
				}
				if !strings.Contains(c.Fix, tt.wantFix) {
					t.Errorf("%s: got fix %q, want it to contain %q", c.ID, c.Fix, tt.wantFix)
				}
			}
			if !found {
				t.Errorf("got no check %s in %+v", tt.wantID, rep.Checks)
			}
		})
	}
}

// TestOptionalParts: no support file and no server well-known are fine.
func TestOptionalParts(t *testing.T) {
	p := newPKI(t)
	fc := defaultFake()
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 404, map[string]string{"errcode": "M_NOT_FOUND"})
	}
	fc.handlers["/.well-known/matrix/support"] = notFound
	fc.handlers["/.well-known/matrix/server"] = notFound
	d := startFake(t, p, fc)
	// Without delegation federation goes to example.org:8448.
	fc.handlers["/_matrix/key/v2/server"] = func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "example.org" {
			t.Errorf("got Host %q, want example.org", r.Host)
		}
		writeJSONBody(w, 200, map[string]any{"server_name": "example.org", "verify_keys": map[string]any{"ed25519:a": map[string]string{"key": "x"}}})
	}
	addr := d.srv.Listener.Addr().String()
	rep, err := checkAgainst(t, "example.org", append(d.args(), "--resolve", "example.org:8448:"+addr)...)
	requireAllPass(t, rep, err, true)
	if got, want := rep.Federation, "example.org:8448"; got != want {
		t.Errorf("got federation %q, want %q", got, want)
	}
	for _, c := range rep.Checks {
		if c.ID == "support_wellknown" && c.Status != Skip {
			t.Errorf("support: got %s, want skip", c.Status)
		}
	}
}

func TestTextOutputOnFailure(t *testing.T) {
	p := newPKI(t)
	fc := defaultFake()
	fc.cors = func(h http.Header) { goodCORS(h); h.Set("Access-Control-Allow-Origin", "*, *") }
	d := startFake(t, p, fc)
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), append(d.args(), "example.org"), nil, &stdout, &stderr)
	if exitCode(err) != 1 {
		t.Fatalf("got %v, want exit code 1", err)
	}
	if !strings.Contains(stdout.String(), "✗ CORS on /_matrix/: Access-Control-Allow-Origin is \"*, *\"") ||
		!strings.Contains(stdout.String(), "Fix: let exactly one layer set CORS headers") {
		t.Errorf("got output\n%s\nwant a ✗ line with its fix", stdout.String())
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no target", nil, 2},
		{"two targets", []string{"a.org", "b.org"}, 2},
		{"bad resolve", []string{"--resolve", "a.org:x:1.2.3.4", "a.org"}, 2},
		{"bad flag", []string{"--nope", "a.org"}, 2},
		{"bad scheme", []string{"ftp://a.org"}, 2},
		{"missing CA file", []string{"--ca-file", "/nonexistent", "a.org"}, 2},
		{"help", []string{"-h"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Run(context.Background(), tt.args, nil, &stdout, &stderr)
			if got := exitCode(err); got != tt.want {
				t.Errorf("got exit code %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

func TestResolveFlag(t *testing.T) {
	tests := []struct {
		in, key, want string
		wantErr       bool
	}{
		{in: "example.org:443:127.0.0.1", key: "example.org:443", want: "127.0.0.1:443"},
		{in: "Example.org:443:127.0.0.1:17501", key: "example.org:443", want: "127.0.0.1:17501"},
		{in: "example.org:8448:[::1]", key: "example.org:8448", want: "[::1]:8448"},
		{in: "example.org:8448:[::1]:17502", key: "example.org:8448", want: "[::1]:17502"},
		{in: "example.org:443", wantErr: true},
		{in: "example.org:0:1.2.3.4", wantErr: true},
		{in: ":443:1.2.3.4", wantErr: true},
	}
	for _, tt := range tests {
		r := resolveFlag{}
		err := r.Set(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Set(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && r[tt.key] != tt.want {
			t.Errorf("Set(%q): got %v, want %s → %s", tt.in, r, tt.key, tt.want)
		}
	}
}

func TestSplitServerName(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPort int
		wantErr  bool
	}{
		{in: "example.org", wantHost: "example.org"},
		{in: "example.org:8448", wantHost: "example.org", wantPort: 8448},
		{in: "1.2.3.4:443", wantHost: "1.2.3.4", wantPort: 443},
		{in: "[::1]:8448", wantHost: "::1", wantPort: 8448},
		{in: "[::1]", wantHost: "::1"},
		{in: "", wantErr: true},
		{in: "example.org:x", wantErr: true},
		{in: "https://example.org/", wantErr: true},
		{in: "[::1", wantErr: true},
	}
	for _, tt := range tests {
		h, p, err := splitServerName(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && (h != tt.wantHost || p != tt.wantPort)) {
			t.Errorf("splitServerName(%q): got %q, %d, %v; want %q, %d, error %v", tt.in, h, p, err, tt.wantHost, tt.wantPort, tt.wantErr)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(404)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		w.Write([]byte("upstream not ready"))
	}))
	defer down.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"ready", []string{"--url", ok.URL + "/readyz"}, 0},
		{"not ready", []string{"--url", down.URL + "/readyz"}, 1},
		{"wrong path", []string{"--url", ok.URL + "/nope"}, 1},
		{"nothing listening", []string{"--url", closedURL + "/readyz", "--timeout", "2s"}, 1},
		{"stray argument", []string{"x"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Healthcheck(context.Background(), tt.args, &stdout, &stderr)
			if got := exitCode(err); got != tt.want {
				t.Errorf("got exit code %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}
