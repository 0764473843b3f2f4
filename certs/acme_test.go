package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
)

// issue runs one issuance against a fresh Pebble with the given challenge
// and checks the served chain, SAN, ALPN, TLS versions and unknown SNI.
func testIssue(t *testing.T, challenge string) {
	httpLn, httpsLn := listenEdge(t)
	p := startPebble(t, pebbleOpts{httpPort: port(httpLn), tlsPort: port(httpsLn)})
	storage := t.TempDir()
	c := acmeConfig(p, httpLn, httpsLn, storage, challenge)
	start := time.Now()
	e := serveEdge(t, c, httpLn, httpsLn)
	leaf := waitServed(t, httpsLn.Addr().String(), testName, p.root, 60*time.Second)
	took := time.Since(start)
	t.Logf("%s issuance against pebble: %v", challenge, took)

	if !slices.Contains(leaf.DNSNames, testName) {
		t.Errorf("SANs: got %v, want %s", leaf.DNSNames, testName)
	}
	if got := testutil.ToFloat64(e.m.met.attempts); got != 1 {
		t.Errorf("mxedge_tls_acme_attempts_total: got %v, want 1", got)
	}
	if got := p.issuedCount(); got != 1 {
		t.Errorf("pebble issued: got %d, want 1", got)
	}
	// the challenge was answered by our listener, not by a certmagic one
	want := map[string]string{config.ChallengeHTTP01: "http-01", config.ChallengeTLSALPN01: "tls-alpn-01"}[challenge]
	if got := e.logs.find("challenge=" + want); len(got) == 0 {
		t.Errorf("no log of a served %s challenge; logs: %v", want, e.logs.find("challenge"))
	}
	// Status and the expiry gauge
	st := e.m.Status()
	if len(st) != 1 || st[0].Name != testName || !st[0].NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("Status: got %+v, want [{%s %v}]", st, testName, leaf.NotAfter)
	}
	if n, err := testutil.GatherAndCount(e.reg, "mxedge_tls_certificate_expiry_timestamp_seconds"); err != nil || n != 1 {
		t.Errorf("expiry gauge series: got %d, %v, want 1", n, err)
	}
	checkServing(t, e, p.root)
}

// checkServing checks h2 negotiation, TLS 1.1 refusal and unknown SNI.
func checkServing(t *testing.T, e *edge, roots *x509.CertPool) {
	t.Helper()
	addr := e.httpsLn.Addr().String()
	c, err := handshake(addr, testName, roots, "h2", "http/1.1")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("ALPN: got %q, want h2", got)
	}
	c.Close()
	hc := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: testName}}}
	resp, err := hc.Get(e.httpsURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTP version: got %s, want HTTP/2", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("HSTS: got %q", got)
	}

	_, err = tls.Dial("tcp", addr, &tls.Config{ServerName: testName, RootCAs: roots, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Error("TLS 1.1 handshake: got success, want refusal")
	}

	before := testutil.ToFloat64(e.m.met.attempts)
	_, err = handshake(addr, "other.mxedge.internal", roots)
	if err == nil || !strings.Contains(err.Error(), "internal error") && !strings.Contains(err.Error(), "alert") {
		t.Errorf("unknown SNI: got %v, want a handshake alert", err)
	}
	if got := testutil.ToFloat64(e.m.met.attempts); got != before {
		t.Errorf("unknown SNI caused ACME attempts: %v → %v", before, got)
	}

	// plain http: challenge path passes through, anything else is redirected
	nc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = nc.Get("http://" + e.httpLn.Addr().String() + "/_matrix/client/versions?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || !strings.HasSuffix(resp.Header.Get("Location"), "/_matrix/client/versions?x=1") {
		t.Errorf("http: got %d Location %q, want 308 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestACMEHTTP01(t *testing.T)   { testIssue(t, config.ChallengeHTTP01) }
func TestACMETLSALPN01(t *testing.T) { testIssue(t, config.ChallengeTLSALPN01) }
