package check

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeConfig describes a fake deployment of example.org: well-known files on
// example.org:443, the client API on matrix.example.org:443 (base_url),
// federation delegated to matrix.example.org:443, MAS on its own host
// auth.example.org:443 (compat login on the client API), lk-jwt-service at
// https://matrix.example.org/livekit/jwt (prefix stripped) and a transports
// endpoint that needs an access token. Everything is served by one loopback
// TLS server that tells the hosts apart by Host; --resolve maps the names to
// it. Tests break one thing at a time.
type fakeConfig struct {
	// cors sets the CORS headers of /_matrix/ and /.well-known/matrix/ answers.
	cors func(h http.Header)
	// handlers override the default answers, keyed by "METHOD /path" or "/path".
	handlers map[string]http.HandlerFunc
	// certNames are the leaf's DNS names; certNotAfter its expiry.
	certNames    []string
	certNotAfter time.Time
	// leafOnly serves the leaf without its intermediate.
	leafOnly bool
	// plain serves http instead of https.
	plain bool

	// token is the access token whoami accepts, for user; openID the OpenID
	// token request_token hands out and userinfo accepts.
	token, user, openID string
	// issuer is the well-known's MAS issuer ("" leaves MAS out); masIssuer
	// the issuer in MAS's discovery document.
	issuer, masIssuer string
	// livekitURL is the lk-jwt-service URL in the well-known's rtc_foci and
	// the transports answer ("" leaves MatrixRTC out).
	livekitURL string
}

// masHost is the fake MAS's host.
const masHost = "auth.example.org"

func goodCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
	h.Set("Access-Control-Expose-Headers", "Retry-After, Synapse-Trace-Id, Server")
}

func defaultFake() *fakeConfig {
	return &fakeConfig{
		cors:         goodCORS,
		handlers:     map[string]http.HandlerFunc{},
		certNames:    []string{"example.org", "matrix.example.org", masHost},
		certNotAfter: time.Now().Add(60 * 24 * time.Hour),
		token:        "syt_YWxpY2U_secretAccessToken_0a1b2c",
		user:         "@alice:example.org",
		openID:       "openidSecretToken9z8y7x",
		issuer:       "https://auth.example.org/",
		masIssuer:    "https://auth.example.org/",
		livekitURL:   "https://matrix.example.org/livekit/jwt",
	}
}

// noMASNoRTC leaves MAS and MatrixRTC out of the deployment.
func (fc *fakeConfig) noMASNoRTC() {
	fc.issuer, fc.livekitURL = "", ""
}

// discoveryDoc is MAS's OpenID Connect discovery document for issuer.
func discoveryDoc(issuer string) map[string]any {
	b := strings.TrimSuffix(issuer, "/")
	return map[string]any{
		"issuer":                           issuer,
		"authorization_endpoint":           b + "/authorize",
		"token_endpoint":                   b + "/oauth2/token",
		"registration_endpoint":            b + "/oauth2/registration",
		"revocation_endpoint":              b + "/oauth2/revoke",
		"jwks_uri":                         b + "/oauth2/keys.json",
		"response_types_supported":         []string{"code", "id_token", "code id_token"},
		"response_modes_supported":         []string{"form_post", "query", "fragment"},
		"grant_types_supported":            []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"},
		"code_challenge_methods_supported": []string{"plain", "S256"},
	}
}

// masLoginFlows is MAS's answer to GET /_matrix/client/v3/login.
var masLoginFlows = map[string]any{"flows": []map[string]any{
	{"type": "m.login.password"},
	{"type": "m.login.sso", "oauth_aware_preferred": true, "org.matrix.msc3824.delegated_oidc_compatibility": true},
	{"type": "m.login.token"},
}}

// bearer returns the access token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fakeHandler answers like a healthy mxedge in front of Synapse.
func (fc *fakeConfig) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_matrix/") || strings.HasPrefix(r.URL.Path, "/.well-known/matrix/") {
			if !strings.HasPrefix(r.URL.Path, "/_matrix/key/") {
				fc.cors(w.Header())
			}
		}
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if h := fc.handlers[host+r.URL.Path]; h != nil {
			h(w, r)
			return
		}
		if host == masHost {
			switch r.URL.Path {
			case "/.well-known/openid-configuration":
				w.Header().Set("Access-Control-Allow-Origin", "*")
				writeJSONBody(w, 200, discoveryDoc(fc.masIssuer))
			default:
				writeJSONBody(w, 404, map[string]string{"errcode": "M_NOT_FOUND", "error": "not MAS"})
			}
			return
		}
		if h := fc.handlers[r.Method+" "+r.URL.Path]; h != nil {
			h(w, r)
			return
		}
		if h := fc.handlers[r.URL.Path]; h != nil {
			h(w, r)
			return
		}
		if r.Method == http.MethodOptions && strings.HasPrefix(r.URL.Path, "/_matrix/") {
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		loggedIn := fc.token != "" && bearer(r) == fc.token
		switch r.URL.Path {
		case "/.well-known/matrix/client":
			doc := map[string]any{"m.homeserver": map[string]string{"base_url": "https://matrix.example.org"}}
			if fc.issuer != "" {
				doc["org.matrix.msc2965.authentication"] = map[string]string{"issuer": fc.issuer, "account": fc.issuer + "account/"}
			}
			if fc.livekitURL != "" {
				doc["org.matrix.msc4143.rtc_foci"] = []map[string]string{{"type": "livekit", "livekit_service_url": fc.livekitURL}}
			}
			writeJSONBody(w, 200, doc)
		case "/.well-known/matrix/server":
			writeJSONBody(w, 200, map[string]string{"m.server": "matrix.example.org:443"})
		case "/.well-known/matrix/support":
			writeJSONBody(w, 200, map[string]any{"contacts": []map[string]string{{"role": "m.role.admin", "matrix_id": "@admin:example.org"}}})
		case "/_matrix/client/versions":
			writeJSONBody(w, 200, map[string]any{"versions": []string{"v1.11", "v1.12"}})
		case "/_matrix/client/v3/account/whoami":
			if loggedIn {
				writeJSONBody(w, 200, map[string]string{"user_id": fc.user, "device_id": "ABCDEFGH"})
				return
			}
			writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
		case "/_matrix/client/v3/login":
			if fc.issuer == "" {
				writeJSONBody(w, 200, map[string]any{"flows": []map[string]string{{"type": "m.login.password"}}})
				return
			}
			writeJSONBody(w, 200, masLoginFlows)
		case transportsPath:
			switch {
			case fc.livekitURL == "":
				writeJSONBody(w, 404, map[string]string{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
			case !loggedIn:
				writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
			default:
				writeJSONBody(w, 200, map[string]any{"rtc_transports": []map[string]string{{"type": "livekit", "livekit_service_url": fc.livekitURL}}})
			}
		case "/livekit/jwt/healthz":
			if fc.livekitURL == "" {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte("OK"))
		case "/_matrix/client/v3/user/" + fc.user + "/openid/request_token":
			if r.Method != http.MethodPost || !loggedIn {
				writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
				return
			}
			writeJSONBody(w, 200, map[string]any{"access_token": fc.openID, "token_type": "Bearer", "matrix_server_name": "example.org", "expires_in": 3600})
		case "/_matrix/federation/v1/openid/userinfo":
			switch tok := r.URL.Query().Get("access_token"); {
			case tok == "":
				writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Access Token required"})
			case tok == fc.openID:
				writeJSONBody(w, 200, map[string]string{"sub": fc.user})
			default:
				writeJSONBody(w, 401, map[string]string{"errcode": "M_UNKNOWN_TOKEN", "error": "Access Token unknown or expired"})
			}
		case "/_matrix/key/v2/server":
			if r.Host != "matrix.example.org:443" {
				t.Errorf("key request: got Host %q, want matrix.example.org:443", r.Host)
			}
			writeJSONBody(w, 200, map[string]any{
				"server_name":     "example.org",
				"verify_keys":     map[string]any{"ed25519:a_AbCd": map[string]string{"key": "VGhpcyBpcyBub3QgYSByZWFsIGtleQ"}},
				"old_verify_keys": map[string]any{},
				"valid_until_ts":  time.Now().Add(24 * time.Hour).UnixMilli(),
			})
		default:
			writeJSONBody(w, 404, map[string]string{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
		}
	})
}

// pki is a test CA with an intermediate.
type pki struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	rootFile          string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{}
	p.root, p.rootKey = makeCert(t, "mxedge test root", nil, nil, nil, time.Now().Add(365*24*time.Hour), true)
	p.inter, p.interKey = makeCert(t, "mxedge test intermediate", nil, p.root, p.rootKey, time.Now().Add(365*24*time.Hour), true)
	p.rootFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func makeCert(t *testing.T, cn string, names []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, notAfter time.Time, ca bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = nil
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// fakeDeployment is a running fake deployment.
type fakeDeployment struct {
	srv    *httptest.Server
	caFile string
	fc     *fakeConfig
}

// args are the flags that point `mxedge check example.org` at the
// deployment, with the access token.
func (d *fakeDeployment) args() []string {
	return append(d.argsNoToken(), "--access-token", d.fc.token)
}

// argsNoToken are args without --access-token.
func (d *fakeDeployment) argsNoToken() []string {
	addr := d.srv.Listener.Addr().String()
	return []string{
		"--ca-file", d.caFile,
		"--resolve", "example.org:443:" + addr,
		"--resolve", "matrix.example.org:443:" + addr,
		"--resolve", masHost + ":443:" + addr,
		"--timeout", "5s",
	}
}

func startFake(t *testing.T, p *pki, fc *fakeConfig) *fakeDeployment {
	t.Helper()
	srv := httptest.NewUnstartedServer(fc.handler(t))
	// The TLS checks close their connections right after the handshake.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if fc.plain {
		srv.Start()
	} else {
		leaf, key := makeCert(t, fc.certNames[0], fc.certNames, p.inter, p.interKey, fc.certNotAfter, false)
		chain := [][]byte{leaf.Raw, p.inter.Raw}
		if fc.leafOnly {
			chain = chain[:1]
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: key, Leaf: leaf}}}
		srv.StartTLS()
	}
	t.Cleanup(srv.Close)
	d := &fakeDeployment{srv: srv, fc: fc}
	if p != nil {
		d.caFile = p.rootFile
	}
	return d
}
