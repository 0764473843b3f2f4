package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// mas stands in for the Matrix Authentication Service on both of its faces:
//
//   - its own host (http.public_base): OpenID Provider discovery at
//     /.well-known/openid-configuration, with MAS's own CORS headers;
//   - the compat layer on the Matrix API that MAS serves instead of Synapse: GET/POST
//     /_matrix/client/{api/v1,r0,v3,unstable}/login, /logout[/all] and /refresh.
//
// Simplification: real MAS checks a compat password login against its own user database and issues
// its own opaque tokens, which Synapse introspects. This stand-in checks the password by making the
// same m.login.password login on the homeserver directly (loopback, never through the edge) and
// answers with the homeserver's answer, so the token works on the homeserver (Dendrite, which has no
// MAS integration). Logout and refresh are forwarded there too.
type mas struct {
	base       string // public_base, ending in "/": the issuer
	homeserver string // the homeserver's own base URL, no trailing "/"
	client     *http.Client
	stats      *stats
}

func newMAS(publicBase, homeserver string) (*mas, error) {
	u, err := url.Parse(publicBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-public-base must be an absolute http(s) URL, got %q", publicBase)
	}
	base := publicBase
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &mas{
		base:       base,
		homeserver: strings.TrimSuffix(homeserver, "/"),
		client:     &http.Client{Timeout: 30 * time.Second},
		stats:      newStats(),
	}, nil
}

func (m *mas) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_standin/stats" {
		m.stats.serve(w)
		return
	}
	m.stats.count(r)
	if rest, ok := compatPath(r.URL.Path); ok {
		m.compat(w, r, rest)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		m.cors(w)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, m.discovery())
	case "/health":
		w.Write([]byte("ok"))
	default:
		http.NotFound(w, r)
	}
}

// cors sets the headers MAS sets on its OAuth 2.0 endpoints (any origin may read them).
func (m *mas) cors(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "authorization, content-type")
}

// discovery is the OpenID Provider metadata MAS publishes (OpenID Connect Discovery 1.0, RFC 8414):
// every endpoint under public_base, the authorization-code grant with PKCE S256.
func (m *mas) discovery() map[string]any {
	b := m.base
	return map[string]any{
		"issuer":                                b,
		"authorization_endpoint":                b + "authorize",
		"token_endpoint":                        b + "oauth2/token",
		"jwks_uri":                              b + "oauth2/keys.json",
		"registration_endpoint":                 b + "oauth2/registration",
		"revocation_endpoint":                   b + "oauth2/revoke",
		"introspection_endpoint":                b + "oauth2/introspect",
		"userinfo_endpoint":                     b + "oauth2/userinfo",
		"device_authorization_endpoint":         b + "oauth2/device",
		"account_management_uri":                b + "account/",
		"account_management_actions_supported":  []string{"org.matrix.profile", "org.matrix.sessions_list", "org.matrix.session_view", "org.matrix.session_end", "org.matrix.cross_signing_reset"},
		"scopes_supported":                      []string{"openid", "email"},
		"response_types_supported":              []string{"code", "id_token", "code id_token"},
		"response_modes_supported":              []string{"form_post", "query", "fragment"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"},
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claim_types_supported":                 []string{"normal"},
		"claims_supported":                      []string{"iss", "sub", "aud", "iat", "exp", "nonce", "auth_time", "at_hash", "c_hash"},
		"prompt_values_supported":               []string{"create"},
	}
}

// compatPath returns what follows /_matrix/client/<version>/ for MAS's compat endpoints.
func compatPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/_matrix/client/")
	if !ok {
		return "", false
	}
	for _, v := range []string{"api/v1/", "r0/", "v3/", "unstable/"} {
		if r, ok := strings.CutPrefix(rest, v); ok {
			switch {
			case r == "login", r == "logout", r == "logout/all", r == "refresh", strings.HasPrefix(r, "login/"):
				return r, true
			}
		}
	}
	return "", false
}

func (m *mas) compat(w http.ResponseWriter, r *http.Request, rest string) {
	switch {
	case rest == "login" && r.Method == http.MethodGet:
		// MAS's compat login flows: password (when enabled), SSO marked for OAuth-aware clients
		// (MSC3824), and login tokens.
		writeJSON(w, http.StatusOK, map[string]any{"flows": []any{
			map[string]any{"type": "m.login.password"},
			map[string]any{
				"type":               "m.login.sso",
				"identity_providers": []any{},
				"org.matrix.msc3824.delegated_oidc_compatibility": true,
				"oauth_aware_preferred":                           true,
			},
			map[string]any{"type": "m.login.token"},
		}})
	case rest == "login" && r.Method == http.MethodPost:
		m.login(w, r)
	case (rest == "logout" || rest == "logout/all" || rest == "refresh") && r.Method == http.MethodPost:
		m.forward(w, r, "/_matrix/client/v3/"+rest)
	case rest == "login" || rest == "logout" || rest == "logout/all" || rest == "refresh":
		matrixError(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Unrecognized request")
	default:
		// login/sso/redirect and the like: MAS sends the browser to its own pages.
		http.Redirect(w, r, m.base+"login", http.StatusSeeOther)
	}
}

// login accepts m.login.password (the password checked by the homeserver, see mas) and refuses
// every other type as MAS does for types it does not serve.
func (m *mas) login(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		matrixError(w, http.StatusBadRequest, "M_BAD_JSON", "Could not read the request body")
		return
	}
	var req struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		matrixError(w, http.StatusBadRequest, "M_NOT_JSON", "Invalid JSON body")
		return
	}
	if req.Type != "m.login.password" {
		matrixError(w, http.StatusBadRequest, "M_UNKNOWN", "Unsupported login type")
		return
	}
	m.forwardBody(w, r, "/_matrix/client/v3/login", body)
}

func (m *mas) forward(w http.ResponseWriter, r *http.Request, path string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		matrixError(w, http.StatusBadRequest, "M_BAD_JSON", "Could not read the request body")
		return
	}
	m.forwardBody(w, r, path, body)
}

// forwardBody makes the request on the homeserver directly and answers with its status and JSON.
func (m *mas) forwardBody(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	hr, err := http.NewRequestWithContext(r.Context(), http.MethodPost, m.homeserver+path, bytes.NewReader(body))
	if err != nil {
		matrixError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal error")
		return
	}
	hr.Header.Set("Content-Type", "application/json")
	if a := r.Header.Get("Authorization"); a != "" {
		hr.Header.Set("Authorization", a)
	}
	res, err := m.client.Do(hr)
	if err != nil {
		matrixError(w, http.StatusServiceUnavailable, "M_UNKNOWN", "The homeserver could not be reached")
		return
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		matrixError(w, http.StatusBadGateway, "M_UNKNOWN", "The homeserver's answer was cut")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.StatusCode)
	w.Write(b)
}
