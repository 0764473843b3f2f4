package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

func TestTLSValidation(t *testing.T) {
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pemFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name    string
		yaml    string // appended to server_name: example.org
		wantKey string // "" = valid
		wantMsg string
	}{
		{name: "defaults (off)", yaml: ""},
		{name: "acme defaults", yaml: "tls:\n  mode: acme\n"},
		{name: "bad mode", yaml: "tls:\n  mode: auto\n", wantKey: "tls.mode", wantMsg: "acme, files or off"},
		{name: "acme email", yaml: "tls:\n  mode: acme\n  email: admin@example.org\n"},
		{name: "acme bad email", yaml: "tls:\n  mode: acme\n  email: admin\n", wantKey: "tls.email", wantMsg: "not an email"},
		{name: "acme CA http public", yaml: "tls:\n  mode: acme\n  acme_ca: http://acme.example.org/dir\n", wantKey: "tls.acme_ca", wantMsg: "loopback or internal"},
		{name: "acme CA http loopback", yaml: "tls:\n  mode: acme\n  acme_ca: http://127.0.0.1:14000/dir\n"},
		{name: "acme CA not URL", yaml: "tls:\n  mode: acme\n  acme_ca: acme.example.org\n", wantKey: "tls.acme_ca", wantMsg: "https://"},
		{name: "acme CA root missing", yaml: "tls:\n  mode: acme\n  acme_ca_root: " + missing + "\n", wantKey: "tls.acme_ca_root", wantMsg: "cannot read"},
		{name: "acme CA root", yaml: "tls:\n  mode: acme\n  acme_ca_root: " + pemFile + "\n"},
		{name: "bad challenge", yaml: "tls:\n  mode: acme\n  challenges: [dns-01]\n", wantKey: "tls.challenges[0]", wantMsg: "http-01 or tls-alpn-01"},
		{name: "no challenge", yaml: "tls:\n  mode: acme\n  challenges: []\n", wantKey: "tls.challenges", wantMsg: "at least one"},
		{name: "http-01 without http", yaml: "listen:\n  http: \"\"\ntls:\n  mode: acme\n  challenges: [http-01]\n", wantKey: "tls.challenges[0]", wantMsg: "needs listen.http"},
		{name: "wildcard", yaml: "tls:\n  mode: acme\n  domains: [\"*.example.org\"]\n", wantKey: "tls.domains", wantMsg: "dns-01"},
		{name: "domain URL", yaml: "tls:\n  mode: acme\n  domains: [\"https://example.org\"]\n", wantKey: "tls.domains[0]", wantMsg: "not a DNS name"},
		{name: "storage redis", yaml: "tls:\n  mode: acme\n  storage: redis://127.0.0.1:6379/0\n"},
		{name: "storage s3", yaml: "tls:\n  mode: acme\n  storage: s3://bucket\n", wantKey: "tls.storage", wantMsg: "redis://"},
		{name: "storage empty", yaml: "tls:\n  mode: acme\n  storage: \"\"\n", wantKey: "tls.storage", wantMsg: "directory"},
		{name: "hsts negative", yaml: "tls:\n  mode: acme\n  hsts: -1\n", wantKey: "tls.hsts", wantMsg: ">= 0"},
		{name: "renew interval zero", yaml: "tls:\n  mode: acme\n  renew_check_interval: 0\n", wantKey: "tls.renew_check_interval", wantMsg: "> 0"},
		{name: "files", yaml: "tls:\n  mode: files\n  cert_file: " + pemFile + "\n  key_file: " + pemFile + "\n"},
		{name: "files missing cert", yaml: "tls:\n  mode: files\n  cert_file: " + missing + "\n  key_file: " + pemFile + "\n", wantKey: "tls.cert_file", wantMsg: "cannot read"},
		{name: "files no key", yaml: "tls:\n  mode: files\n  cert_file: " + pemFile + "\n", wantKey: "tls.key_file", wantMsg: "required"},
		{name: "no tls listener", yaml: "listen:\n  https: \"\"\ntls:\n  mode: files\n  cert_file: " + pemFile + "\n  key_file: " + pemFile + "\n", wantKey: "listen.https", wantMsg: "needs listen.https or listen.federation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testkit.TempFile(t, "c.yaml", "server_name: example.org\n"+tt.yaml)
			_, err := Load(LoadOptions{Path: p})
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			probs := problemsOf(t, err)
			if len(probs) != 1 {
				t.Fatalf("got %d problems %v, want 1", len(probs), probs)
			}
			if probs[0].Key != tt.wantKey || !strings.Contains(probs[0].Msg, tt.wantMsg) {
				t.Errorf("got %s: %s, want %s: …%s…", probs[0].Key, probs[0].Msg, tt.wantKey, tt.wantMsg)
			}
		})
	}
}

func TestTLSDefaultsAndDomains(t *testing.T) {
	c := Defaults()
	if c.TLS.Mode != TLSModeOff || c.TLS.HSTS != 31536000 || c.TLS.RenewCheckInterval != DefaultRenewCheckInterval ||
		c.TLS.Storage != "/var/lib/mxedge" || c.TLS.ACMECA != DefaultACMECA ||
		!slices.Equal(c.TLS.Challenges, []string{"http-01", "tls-alpn-01"}) {
		t.Errorf("tls defaults: got %+v", c.TLS)
	}
	tests := []struct {
		serverName, baseURL string
		domains             []string
		want                []string
	}{
		{"example.org", "https://matrix.example.org/", nil, []string{"matrix.example.org", "example.org"}},
		{"example.org", "", nil, []string{"example.org"}},
		{"Example.org:8448", "https://example.org:8443/", nil, []string{"example.org"}},
		{"example.org", "https://matrix.example.org/", []string{"a.example.org", "A.example.org.", "b.example.org"}, []string{"a.example.org", "b.example.org"}},
	}
	for _, tt := range tests {
		c := Defaults()
		c.ServerName, c.PublicBaseURL, c.TLS.Domains = tt.serverName, tt.baseURL, tt.domains
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := c.TLSDomains(); !slices.Equal(got, tt.want) {
			t.Errorf("TLSDomains(%q, %q, %v): got %v, want %v", tt.serverName, tt.baseURL, tt.domains, got, tt.want)
		}
	}
}
