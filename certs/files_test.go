package certs

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

func filesConfig(certFile, keyFile string, domains ...string) *config.Config {
	c := &config.Config{ServerName: "example.org"}
	c.Listen.HTTPS = "127.0.0.1:0"
	c.TLS = config.TLS{
		Mode:               config.TLSModeFiles,
		Domains:            domains,
		CertFile:           certFile,
		KeyFile:            keyFile,
		RenewCheckInterval: config.Duration(20 * time.Millisecond),
	}
	return c
}

func writePair(t *testing.T, dir, prefix string, certPEM, keyPEM []byte) (string, string) {
	t.Helper()
	cf, kf := filepath.Join(dir, prefix+"cert.pem"), filepath.Join(dir, prefix+"key.pem")
	must(t, os.WriteFile(cf, certPEM, 0o600))
	must(t, os.WriteFile(kf, keyPEM, 0o600))
	return cf, kf
}

func TestFilesValidation(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	now := time.Now()
	names := []string{"matrix.example.org", "example.org"}
	goodC, goodK := ca.files(t, dir, "good-", names, now.Add(-time.Hour), now.Add(time.Hour))
	_, otherK := ca.files(t, dir, "other-", names, now.Add(-time.Hour), now.Add(time.Hour))
	oldC, oldK := ca.files(t, dir, "old-", names, now.Add(-2*time.Hour), now.Add(-time.Hour))
	fewC, fewK := ca.files(t, dir, "few-", names[:1], now.Add(-time.Hour), now.Add(time.Hour))
	garbage := filepath.Join(dir, "garbage.pem")
	must(t, os.WriteFile(garbage, []byte("not pem"), 0o600))
	unreadable := filepath.Join(dir, "unreadable.pem")
	must(t, os.WriteFile(unreadable, []byte("x"), 0o000))

	tests := []struct {
		name              string
		certFile, keyFile string
		wantErr           []string // substrings; none = success
	}{
		{"good", goodC, goodK, nil},
		{"missing cert", filepath.Join(dir, "nope.pem"), goodK, []string{"tls.cert_file", "no such file"}},
		{"missing key", goodC, filepath.Join(dir, "nope.pem"), []string{"tls.key_file", "no such file"}},
		{"mismatched key", goodC, otherK, []string{"tls.key_file does not match the certificate in tls.cert_file"}},
		{"expired", oldC, oldK, []string{"tls.cert_file", "expired at"}},
		{"names not covered", fewC, fewK, []string{"tls.cert_file", `does not cover "example.org" (tls.domains)`}},
		{"not PEM", garbage, goodK, []string{"tls.cert_file holds no PEM certificate"}},
		{"key not PEM", goodC, garbage, []string{"tls.key_file holds no PEM private key"}},
	}
	if os.Geteuid() != 0 { // root reads anything
		tests = append(tests, struct {
			name              string
			certFile, keyFile string
			wantErr           []string
		}{"unreadable key", goodC, unreadable, []string{"tls.key_file", "permission denied"}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(filesConfig(tc.certFile, tc.keyFile, names...), Options{Registerer: prometheus.NewRegistry()})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				m.Stop()
				return
			}
			if err == nil {
				m.Stop()
				t.Fatalf("got no error, want one containing %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestModeOff(t *testing.T) {
	c := &config.Config{}
	c.TLS.Mode = config.TLSModeOff
	m, err := New(c, Options{})
	if m != nil || err != nil {
		t.Fatalf("got %v, %v, want nil, nil", m, err)
	}
	m.Stop()
	if s := m.Status(); s != nil {
		t.Errorf("Status of nil Manager: got %v", s)
	}
}

// TestFilesReloadOnChange serves a file certificate, replaces the files
// and checks that the new one is served, that a connection opened before
// the swap keeps working, that a bad replacement keeps the old one, and
// that a reload (SIGHUP: Prepare, Commit) applies at once.
func TestFilesReloadOnChange(t *testing.T) {
	ca := newTestCA(t)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	dir := t.TempDir()
	now := time.Now()
	name := "matrix.example.org"
	certFile, keyFile := ca.files(t, dir, "", []string{name}, now.Add(-time.Hour), now.Add(time.Hour))
	c := filesConfig(certFile, keyFile, name)
	reg := prometheus.NewRegistry()
	logs := &testkit.LogRecorder{}
	m, err := New(c, Options{Registerer: reg, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), TLSConfig: m.TLSConfig(), ErrorLog: discardLog()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close(); m.Stop() })
	must(t, m.Start(t.Context()))
	addr := ln.Addr().String()

	first := waitServed(t, addr, name, roots, 5*time.Second)
	if got := m.Status(); len(got) != 1 || !got[0].NotAfter.Equal(first.NotAfter) {
		t.Errorf("Status: got %v, want NotAfter %v", got, first.NotAfter)
	}
	// a keep-alive HTTP/1.1 connection opened before the swap
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	must(t, err)
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() error {
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", name)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	must(t, get())

	// any SNI gets the one certificate (a verifying client refuses it for a
	// name it does not cover); so does a handshake without SNI
	if _, err := handshake(addr, "other.example.org", roots); err == nil || !strings.Contains(err.Error(), "certificate is valid for") {
		t.Errorf("unknown SNI: got %v, want the certificate served and refused by the client for its name", err)
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true}); err != nil {
		t.Errorf("no SNI: got %v, want the certificate", err)
	} else {
		c.Close()
	}

	// a broken replacement (key of another certificate) keeps the old one;
	// written by a rename, so that the watcher never sees a half-written
	// (truncated) key file, which is a second, different warning
	_, otherKey := ca.leaf(t, []string{name}, now.Add(-time.Hour), now.Add(2*time.Hour))
	replaceFile(t, keyFile, otherKey)
	for deadline := time.Now().Add(5 * time.Second); len(logs.Find(testkit.Contains("cannot be loaded"))) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no warning after a mismatched key was written")
		}
		time.Sleep(10 * time.Millisecond) // polling for the watcher
	}
	if got := waitServed(t, addr, name, roots, time.Second); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("a broken replacement changed the served certificate")
	}
	if got := logs.Find(testkit.Contains("cannot be loaded")); len(got) != 1 {
		t.Errorf("warnings for one broken replacement: got %d, want 1: %v", len(got), got)
	}
	// a valid replacement, written the way renewal tools do (rename over)
	newCert, newKey := ca.leaf(t, []string{name}, now.Add(-time.Hour), now.Add(3*time.Hour))
	tmpC, tmpK := writePair(t, dir, "tmp-", newCert, newKey)
	must(t, os.Rename(tmpK, keyFile))
	must(t, os.Rename(tmpC, certFile))
	var second *x509.Certificate
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		second = waitServed(t, addr, name, roots, time.Second)
		if second.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling for the reload
	}
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("new certificate not served after the files changed")
	}
	if err := get(); err != nil {
		t.Errorf("connection opened before the swap: %v", err)
	}
	g, err := testutil.GatherAndCount(reg, "mxedge_tls_certificate_expiry_timestamp_seconds")
	if err != nil || g != 1 {
		t.Errorf("expiry gauge: %d series, %v", g, err)
	}

	// A reload with other files: nothing changes until Commit, then at once
	c2 := filesConfig(ca.files(t, dir, "third-", []string{name}, now.Add(-time.Hour), now.Add(4*time.Hour)))
	c2.TLS.Domains = []string{name}
	p, err := m.Prepare(c2)
	must(t, err)
	if got := waitServed(t, addr, name, roots, time.Second); got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Error("after Prepare, before Commit: the served certificate changed")
	}
	p.Discard()
	if got := waitServed(t, addr, name, roots, time.Second); got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Error("after Discard: the served certificate changed")
	}
	p, err = m.Prepare(c2)
	must(t, err)
	p.Commit()
	third := waitServed(t, addr, name, roots, time.Second)
	if !third.NotAfter.Equal(now.Add(4 * time.Hour).Truncate(time.Second)) {
		t.Errorf("after Commit: NotAfter %v, want %v", third.NotAfter, now.Add(4*time.Hour))
	}
	// A bad pair fails at Prepare and keeps serving
	c3 := filesConfig(certFile, otherKeyFile(t, dir, otherKey), name)
	if _, err := m.Prepare(c3); err == nil || !strings.Contains(err.Error(), "tls.key_file does not match") {
		t.Errorf("Prepare with mismatched key: got %v", err)
	}
	if got := waitServed(t, addr, name, roots, time.Second); got.SerialNumber.Cmp(third.SerialNumber) != 0 {
		t.Error("after a failed Prepare the served certificate changed")
	}
}

// files issues a leaf and writes it under dir as prefix+cert.pem/key.pem.
func (ca *testCA) files(t *testing.T, dir, prefix string, names []string, nb, na time.Time) (string, string) {
	c, k := ca.leaf(t, names, nb, na)
	return writePair(t, dir, prefix, c, k)
}

func otherKeyFile(t *testing.T, dir string, keyPEM []byte) string {
	p := filepath.Join(dir, "other-key.pem")
	must(t, os.WriteFile(p, keyPEM, 0o600))
	return p
}
