package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livekit/protocol/auth"
)

// homeserver is a fake homeserver: the OpenID userinfo endpoint knows the token "good" as
// @alice:e2e.test, and /login accepts alice's password "pw".
func homeserver(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_matrix/federation/v1/openid/userinfo":
			if r.URL.Query().Get("access_token") == "good" {
				writeJSON(w, http.StatusOK, map[string]string{"sub": "@alice:e2e.test"})
				return
			}
			matrixError(w, http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Access Token unknown or expired")
		case "/_matrix/client/v3/login":
			var b struct{ Password string }
			json.NewDecoder(r.Body).Decode(&b)
			if b.Password == "pw" {
				writeJSON(w, http.StatusOK, map[string]string{"user_id": "@alice:e2e.test", "access_token": "syt_x", "device_id": "D"})
				return
			}
			matrixError(w, http.StatusForbidden, "M_FORBIDDEN", "Invalid username or password")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func post(t *testing.T, h http.Handler, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var m map[string]any
	json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

func TestLKJWT(t *testing.T) {
	hs := homeserver(t)
	s := newLKJWT(hs.URL, "ws://edge/livekit/sfu", "k", "secret-secret-secret-secret-secret")
	tok := func(access string) string {
		return `"openid_token": {"access_token": "` + access + `", "token_type": "Bearer", "matrix_server_name": "e2e.test", "expires_in": 3600}`
	}
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantCode         string
	}{
		{"legacy", "/sfu/get", `{"room": "!r:e2e.test", "device_id": "D", ` + tok("good") + `}`, 200, ""},
		{"get_token", "/get_token", `{"room_id": "!r:e2e.test", "slot_id": "m.call#ROOM", "member": {"id": "m", "claimed_user_id": "@alice:e2e.test", "claimed_device_id": "D"}, ` + tok("good") + `}`, 200, ""},
		{"bad token", "/sfu/get", `{"room": "!r:e2e.test", "device_id": "D", ` + tok("bad") + `}`, 401, "M_UNAUTHORIZED"},
		{"claimed user differs", "/get_token", `{"room_id": "!r:e2e.test", "slot_id": "s", "member": {"claimed_user_id": "@bob:e2e.test", "claimed_device_id": "D"}, ` + tok("good") + `}`, 401, "M_UNAUTHORIZED"},
		{"no device", "/sfu/get", `{"room": "!r:e2e.test", ` + tok("good") + `}`, 400, "M_BAD_JSON"},
		{"not JSON", "/sfu/get", `{`, 400, "M_BAD_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m := post(t, s, tt.path, tt.body)
			if code != tt.wantStatus || (tt.wantCode != "" && m["errcode"] != tt.wantCode) {
				t.Fatalf("got %d %v, want %d %s", code, m, tt.wantStatus, tt.wantCode)
			}
			if code != 200 {
				return
			}
			if m["url"] != "ws://edge/livekit/sfu" {
				t.Errorf("url %v", m["url"])
			}
			v, err := auth.ParseAPIToken(m["jwt"].(string))
			if err != nil {
				t.Fatal(err)
			}
			_, grants, err := v.Verify("secret-secret-secret-secret-secret")
			if err != nil {
				t.Fatal(err)
			}
			if grants.Identity != "@alice:e2e.test:D" || !grants.Video.RoomJoin || grants.Video.Room != roomAlias("!r:e2e.test", "m.call#ROOM") {
				t.Errorf("got identity %q, grant %+v", grants.Identity, grants.Video)
			}
		})
	}
}

func TestMAS(t *testing.T) {
	hs := homeserver(t)
	m, err := newMAS("http://auth.e2e.test", hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://auth.e2e.test/.well-known/openid-configuration", nil))
	var d map[string]any
	json.Unmarshal(rec.Body.Bytes(), &d)
	if rec.Code != 200 || d["issuer"] != "http://auth.e2e.test/" || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("discovery: got %d issuer %v ACAO %q", rec.Code, d["issuer"], rec.Header().Get("Access-Control-Allow-Origin"))
	}
	for _, tt := range []struct {
		body       string
		wantStatus int
	}{
		{`{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw"}`, 200},
		{`{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "no"}`, 403},
		{`{"type": "m.login.dummy"}`, 400},
	} {
		if code, _ := post(t, m, "/_matrix/client/r0/login", tt.body); code != tt.wantStatus {
			t.Errorf("login %s: got %d, want %d", tt.body, code, tt.wantStatus)
		}
	}
	rec = httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_standin/stats", nil))
	b, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(b), `"POST /_matrix/client/r0/login":3`) {
		t.Errorf("stats %s", b)
	}
}

func TestCompatPath(t *testing.T) {
	for p, want := range map[string]string{
		"/_matrix/client/v3/login":                  "login",
		"/_matrix/client/r0/logout/all":             "logout/all",
		"/_matrix/client/api/v1/refresh":            "refresh",
		"/_matrix/client/v3/login/sso/redirect/idp": "login/sso/redirect/idp",
		"/_matrix/client/v3/loginx":                 "",
		"/_matrix/client/v3/sync":                   "",
		"/.well-known/openid-configuration":         "",
	} {
		got, ok := compatPath(p)
		if got != want || ok != (want != "") {
			t.Errorf("compatPath(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
}
