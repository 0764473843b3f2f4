package certs

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/config"
)

func TestNewACMEErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, []byte("x"), 0o600))
	// a loopback port nothing listens on
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	deadRedis := "redis://:secret@" + ln.Addr().String() + "/0"
	ln.Close()

	base := func() *config.Config {
		c := &config.Config{ServerName: "example.org"}
		c.Listen.HTTP = "127.0.0.1:8080"
		c.Listen.HTTPS = "127.0.0.1:8443"
		c.TLS = config.TLS{
			Mode:               config.TLSModeACME,
			ACMECA:             "https://127.0.0.1:1/dir",
			Challenges:         []string{config.ChallengeHTTP01, config.ChallengeTLSALPN01},
			Storage:            filepath.Join(dir, "store"),
			RenewCheckInterval: config.Duration(time.Minute),
		}
		return c
	}
	tests := []struct {
		name    string
		edit    func(c *config.Config)
		wantErr []string
	}{
		{"ok", func(c *config.Config) {}, nil},
		{"storage under a file", func(c *config.Config) { c.TLS.Storage = filepath.Join(file, "sub") }, []string{"tls.storage", "not a directory"}},
		{"redis unreachable", func(c *config.Config) { c.TLS.Storage = deadRedis }, []string{"tls.storage redis://xxx@127.0.0.1:", "not usable", "connection refused"}},
		{"ca root missing", func(c *config.Config) { c.TLS.ACMECARoot = filepath.Join(dir, "nope.pem") }, []string{"tls.acme_ca_root", "no such file"}},
		{"ca root not PEM", func(c *config.Config) { c.TLS.ACMECARoot = file }, []string{"tls.acme_ca_root", "no PEM certificate"}},
		{"http-01 without listen.http", func(c *config.Config) { c.Listen.HTTP = "" }, []string{"listen.http", "http-01"}},
		{"tls-alpn-01 on a port 0", func(c *config.Config) { c.Listen.HTTPS = ":0" }, []string{"listen.https", "explicit port"}},
		{"only tls-alpn-01 without http", func(c *config.Config) {
			c.Listen.HTTP = ""
			c.TLS.Challenges = []string{config.ChallengeTLSALPN01}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(c)
			m, err := New(c, Options{Registerer: prometheus.NewRegistry()})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				if tc.name == "ok" && (m.issuer.ListenHost != "127.0.0.1" || m.issuer.AltHTTPPort != 8080 || m.issuer.AltTLSALPNPort != 8443) {
					t.Errorf("certmagic solver addresses: host %q http %d tls %d, want mxedge's listeners 127.0.0.1, 8080, 8443",
						m.issuer.ListenHost, m.issuer.AltHTTPPort, m.issuer.AltTLSALPNPort)
				}
				if got := m.Status(); len(got) != 1 || got[0].Name != "example.org" || !got[0].NotAfter.IsZero() {
					t.Errorf("Status before any certificate: got %+v", got)
				}
				m.Stop()
				return
			}
			if err == nil {
				m.Stop()
				t.Fatalf("got no error, want %q", tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the redis password: %v", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestMetricsReRegister checks that Stop unregisters, so that a Manager
// built on reload/restart can register on the same registry.
func TestMetricsReRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := &config.Config{ServerName: "example.org"}
	c.Listen.HTTP = "127.0.0.1:" + strconv.Itoa(8080)
	c.TLS = config.TLS{Mode: config.TLSModeACME, ACMECA: "https://127.0.0.1:1/dir", Challenges: []string{config.ChallengeHTTP01},
		Storage: t.TempDir(), RenewCheckInterval: config.Duration(time.Minute)}
	m1, err := New(c, Options{Registerer: reg})
	must(t, err)
	if _, err := New(c, Options{Registerer: reg}); err == nil {
		t.Error("second Manager on the same registry while the first runs: got no error")
	}
	m1.Stop()
	m2, err := New(c, Options{Registerer: reg})
	must(t, err)
	m2.Stop()
}
