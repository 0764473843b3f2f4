package check

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// result returns the check with id, failing the test when there is none.
func result(t *testing.T, rep *Report, id string) Result {
	t.Helper()
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("got no check %s in %+v", id, rep.Checks)
	return Result{}
}

func hasCheck(rep *Report, id string) bool {
	for _, c := range rep.Checks {
		if c.ID == id {
			return true
		}
	}
	return false
}

// runWithEnv runs check --json with an environment and returns the report.
func runWithEnv(t *testing.T, env map[string]string, args ...string) (*Report, error, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), append([]string{"--json"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	var rep Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("bad JSON output (%v): %s\nstderr: %s", jerr, stdout.String(), stderr.String())
	}
	return &rep, err, stderr.String()
}

func TestAccessToken(t *testing.T) {
	p := newPKI(t)
	fc := defaultFake()
	d := startFake(t, p, fc)
	const wrong = "syt_not_a_token"
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantToken Status // "" when the access_token line must be absent
		wantRTC   Status
		wantWhy   string // detail of the skipped checks
	}{
		{name: "none", wantRTC: Skip, wantWhy: "skipped: needs --access-token"},
		{name: "from env", env: map[string]string{tokenEnv: fc.token}, wantToken: Pass, wantRTC: Pass},
		{name: "flag beats env", env: map[string]string{tokenEnv: wrong}, args: []string{"--access-token", fc.token}, wantToken: Pass, wantRTC: Pass},
		{name: "flag beats env, wrong flag", env: map[string]string{tokenEnv: fc.token}, args: []string{"--access-token", wrong}, wantToken: Fail, wantRTC: Skip, wantWhy: "skipped: the access token was not accepted"},
		{name: "rejected", args: []string{"--access-token", wrong}, wantToken: Fail, wantRTC: Skip, wantWhy: "skipped: the access token was not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err, _ := runWithEnv(t, tt.env, append(append(d.argsNoToken(), tt.args...), "example.org")...)
			if tt.wantToken == "" {
				if hasCheck(rep, "access_token") {
					t.Errorf("got an access_token line without a token")
				}
			} else if got := result(t, rep, "access_token"); got.Status != tt.wantToken {
				t.Errorf("access_token: got %s (%s), want %s", got.Status, got.Detail, tt.wantToken)
			}
			rtc := result(t, rep, "rtc_transports")
			if rtc.Status != tt.wantRTC || (tt.wantWhy != "" && rtc.Detail != tt.wantWhy) {
				t.Errorf("rtc_transports: got %s %q, want %s %q", rtc.Status, rtc.Detail, tt.wantRTC, tt.wantWhy)
			}
			ui := result(t, rep, "openid_userinfo")
			if ui.Status != Pass {
				t.Errorf("openid_userinfo: got %s (%s), want pass", ui.Status, ui.Detail)
			}
			if tt.wantToken == Fail && !strings.Contains(ui.Detail, "OpenID round trip skipped: the access token was not accepted") {
				t.Errorf("openid_userinfo: got %q, want the round trip skipped", ui.Detail)
			}
			if tt.wantToken == Pass && !strings.Contains(ui.Detail, "a fresh OpenID token came back as @alice:example.org") {
				t.Errorf("openid_userinfo: got %q, want the round trip", ui.Detail)
			}
			wantFailed := 0
			if tt.wantToken == Fail {
				wantFailed = 1
			}
			if rep.Failed != wantFailed || (wantFailed == 0) != (err == nil) {
				t.Errorf("got %d failed (%v), want %d", rep.Failed, err, wantFailed)
			}
		})
	}

	// --help never shows the token from the environment.
	var stdout, stderr bytes.Buffer
	env := map[string]string{tokenEnv: fc.token}
	if err := Run(context.Background(), []string{"-h"}, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("-h: got %v", err)
	}
	if out := stdout.String() + stderr.String(); strings.Contains(out, fc.token) || !strings.Contains(out, "--access-token") && !strings.Contains(out, "-access-token") {
		t.Errorf("-h printed the token or no flag:\n%s", out)
	}
}

// TestTokensRedacted: answers that echo the access token and the OpenID
// token show up with both replaced by REDACTED, in text and JSON.
func TestTokensRedacted(t *testing.T) {
	p := newPKI(t)
	fc := defaultFake()
	fc.handlers["/_matrix/federation/v1/openid/userinfo"] = func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("access_token")
		if tok == "" {
			writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Access Token required"})
			return
		}
		writeJSONBody(w, 401, map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "unknown token " + tok + " (session of " + fc.token + ")"})
	}
	d := startFake(t, p, fc)
	var text, js, stderr bytes.Buffer
	args := append(d.args(), "example.org")
	if err := Run(context.Background(), args, nil, &text, &stderr); exitCode(err) != 1 {
		t.Fatalf("got %v, want exit code 1", err)
	}
	if err := Run(context.Background(), append([]string{"--json"}, args...), nil, &js, &stderr); exitCode(err) != 1 {
		t.Fatalf("--json: got %v, want exit code 1", err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": js.String()} {
		if strings.Contains(out, fc.token) || strings.Contains(out, fc.openID) {
			t.Errorf("%s output shows a token:\n%s", name, out)
		}
		// The URL's access_token, the echoed OpenID token and the echoed
		// access token.
		if n := strings.Count(out, "REDACTED"); n < 3 {
			t.Errorf("%s output: got %d REDACTED, want at least 3:\n%s", name, n, out)
		}
	}
	t.Logf("%s", text.String())
}

// TestClientOnly: a deployment without federation fails the keys check
// unless --no-federation says so; then exactly the two federation checks
// are skipped, and userinfo is still checked.
func TestClientOnly(t *testing.T) {
	p := newPKI(t)
	fc := defaultFake()
	fc.handlers["/.well-known/matrix/server"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 404, map[string]string{"errcode": "M_NOT_FOUND", "error": "Not found"})
	}
	d := startFake(t, p, fc)
	args := append(d.args(), "--resolve", "example.org:8448:"+closedAddr(t), "example.org")

	rep, err := checkAgainst(t, args[len(args)-1], args[:len(args)-1]...)
	keys := result(t, rep, "server_keys")
	if keys.Status != Fail || !strings.HasSuffix(keys.Fix, "; a client-only deployment (federation off) passes --no-federation") {
		t.Errorf("server_keys: got %s (%s; fix: %s), want fail naming --no-federation", keys.Status, keys.Detail, keys.Fix)
	}
	// The keys and the TLS handshake on port 8448 fail, nothing else.
	if exitCode(err) != 1 {
		t.Errorf("got %v, want exit code 1", err)
	}
	for _, c := range rep.Checks {
		if c.Status == Fail && c.ID != "server_keys" && c.ID != "tls_chain:example.org:8448" {
			t.Errorf("%s: got fail (%s), want only the federation endpoint to fail", c.ID, c.Detail)
		}
	}

	rep, err = checkAgainst(t, "example.org", append(d.args(), "--no-federation")...)
	requireAllPass(t, rep, err, true)
	var skipped []string
	for _, c := range rep.Checks {
		if c.Status == Skip {
			skipped = append(skipped, c.ID)
			if c.Detail != "client-only deployment (--no-federation)" {
				t.Errorf("%s: got %q", c.ID, c.Detail)
			}
		}
	}
	if got := strings.Join(skipped, " "); got != "server_wellknown server_keys" {
		t.Errorf("got skipped %q, want server_wellknown server_keys", got)
	}
	if ui := result(t, rep, "openid_userinfo"); !strings.Contains(ui.Detail, "resolving the server name as a federating server would") {
		t.Errorf("openid_userinfo: got %q, want the note on resolution", ui.Detail)
	}
	if rep.Federation != "" {
		t.Errorf("got federation %q, want none", rep.Federation)
	}

	// userinfo is still needed without federation.
	fc.handlers["/_matrix/federation/v1/openid/userinfo"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, 404, map[string]string{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
	}
	rep, err = checkAgainst(t, "example.org", append(d.args(), "--no-federation")...)
	if ui := result(t, rep, "openid_userinfo"); ui.Status != Fail || exitCode(err) != 1 {
		t.Errorf("openid_userinfo: got %s (%s, %v), want fail", ui.Status, ui.Detail, err)
	}
}

// TestWithoutMASOrRTC: a deployment without MAS and MatrixRTC shows one
// skipped line for each.
func TestWithoutMASOrRTC(t *testing.T) {
	p := newPKI(t)
	for _, token := range []bool{true, false} {
		fc := defaultFake()
		fc.noMASNoRTC()
		d := startFake(t, p, fc)
		args := d.argsNoToken()
		if token {
			args = d.args()
		}
		rep, err := checkAgainst(t, "example.org", args...)
		requireAllPass(t, rep, err, true)
		var skipped []string
		for _, c := range rep.Checks {
			if c.Status == Skip {
				skipped = append(skipped, c.ID+": "+c.Detail)
			}
		}
		want := []string{
			"mas_discovery: MAS not advertised (no org.matrix.msc2965.authentication in the client well-known)",
			"rtc_transports: MatrixRTC not deployed (/_matrix/client/unstable/org.matrix.msc4143/rtc/transports answered 404 M_UNRECOGNIZED, no org.matrix.msc4143.rtc_foci in the client well-known)",
		}
		if strings.Join(skipped, "\n") != strings.Join(want, "\n") {
			t.Errorf("token %v: got skipped\n%s\nwant\n%s", token, strings.Join(skipped, "\n"), strings.Join(want, "\n"))
		}
		for _, id := range []string{"mas_issuer", "mas_metadata", "mas_compat_login", "rtc_transports_agree", "lk_jwt_health"} {
			if hasCheck(rep, id) {
				t.Errorf("token %v: got a %s line, want none", token, id)
			}
		}
	}
}
