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
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeConfig describes a fake deployment of example.org: well-known files on
// example.org:443, the client API on matrix.example.org:443 (base_url) and
// federation delegated to matrix.example.org:443. Everything is served by one
// loopback TLS server; --resolve maps the names to it. Tests break one thing
// at a time.
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
}

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
		certNames:    []string{"example.org", "matrix.example.org"},
		certNotAfter: time.Now().Add(60 * 24 * time.Hour),
	}
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
		switch r.URL.Path {
		case "/.well-known/matrix/client":
			writeJSONBody(w, 200, map[string]any{"m.homeserver": map[string]string{"base_url": "https://matrix.example.org"}})
		case "/.well-known/matrix/server":
			writeJSONBody(w, 200, map[string]string{"m.server": "matrix.example.org:443"})
		case "/.well-known/matrix/support":
			writeJSONBody(w, 200, map[string]any{"contacts": []map[string]string{{"role": "m.role.admin", "matrix_id": "@admin:example.org"}}})
		case "/_matrix/client/versions":
			writeJSONBody(w, 200, map[string]any{"versions": []string{"v1.11", "v1.12"}})
		case "/_matrix/client/v3/account/whoami":
			writeJSONBody(w, 401, map[string]string{"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
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
}

// args are the flags that point `mxedge check example.org` at the deployment.
func (d *fakeDeployment) args() []string {
	addr := d.srv.Listener.Addr().String()
	return []string{
		"--ca-file", d.caFile,
		"--resolve", "example.org:443:" + addr,
		"--resolve", "matrix.example.org:443:" + addr,
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
	d := &fakeDeployment{srv: srv}
	if p != nil {
		d.caFile = p.rootFile
	}
	return d
}
