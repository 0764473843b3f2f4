package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
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
	if got := e.logs.Find(testkit.Attrs("challenge", want)); len(got) == 0 {
		t.Errorf("no log of a served %s challenge; logs: %v", want, e.logs.Find(testkit.Contains("challenge")))
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

	_, err = tls.Dial("tcp", addr, &tls.Config{ServerName: testName, RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: got %v, want the server's protocol version alert", err)
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

func TestACMEHTTP01(t *testing.T)    { testIssue(t, config.ChallengeHTTP01) }
func TestACMETLSALPN01(t *testing.T) { testIssue(t, config.ChallengeTLSALPN01) }

// TestACMERestartReusesStorage stops an instance after issuance and starts
// a new one on the same storage: it serves the same certificate at once
// and places no order.
func TestACMERestartReusesStorage(t *testing.T) {
	httpLn, httpsLn := listenEdge(t)
	p := startPebble(t, pebbleOpts{httpPort: port(httpLn), tlsPort: port(httpsLn)})
	storage := t.TempDir()
	c := acmeConfig(p, httpLn, httpsLn, storage, config.ChallengeHTTP01, config.ChallengeTLSALPN01)
	e1 := serveEdge(t, c, httpLn, httpsLn)
	first := waitServed(t, httpsLn.Addr().String(), testName, p.root, 60*time.Second)
	e1.stop()

	httpLn2, err := net.Listen("tcp", httpLn.Addr().String())
	must(t, err)
	httpsLn2, err := net.Listen("tcp", httpsLn.Addr().String())
	must(t, err)
	start := time.Now()
	e2 := serveEdge(t, c, httpLn2, httpsLn2)
	startTook := time.Since(start)
	second := waitServed(t, httpsLn2.Addr().String(), testName, p.root, 10*time.Second)
	t.Logf("restart: New+Start %v, serving after %v", startTook, time.Since(start))
	if first.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("after restart: serial %v, want the stored %v", second.SerialNumber, first.SerialNumber)
	}
	if got := testutil.ToFloat64(e2.m.met.attempts); got != 0 {
		t.Errorf("after restart: mxedge_tls_acme_attempts_total %v, want 0", got)
	}
	if got := p.issuedCount(); got != 1 {
		t.Errorf("pebble issued: got %d, want 1", got)
	}
}

// TestACMERenewShortLived has Pebble issue 12s certificates and checks
// that a new one is served before the first expires.
func TestACMERenewShortLived(t *testing.T) {
	httpLn, httpsLn := listenEdge(t)
	p := startPebble(t, pebbleOpts{httpPort: port(httpLn), tlsPort: port(httpsLn), validity: 12 * time.Second})
	c := acmeConfig(p, httpLn, httpsLn, t.TempDir(), config.ChallengeHTTP01)
	c.TLS.RenewCheckInterval = config.Duration(time.Second)
	e := serveEdge(t, c, httpLn, httpsLn)
	addr := httpsLn.Addr().String()
	first := waitServed(t, addr, testName, p.root, 60*time.Second)
	t.Logf("first: NotBefore %v NotAfter %v (now %v)", first.NotBefore, first.NotAfter, time.Now())
	for deadline := first.NotAfter; time.Now().Before(deadline); {
		leaf := waitServed(t, addr, testName, p.root, 5*time.Second)
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Logf("renewed %v before expiry: NotAfter %v", first.NotAfter.Sub(time.Now()), leaf.NotAfter)
			if got := testutil.ToFloat64(e.m.met.attempts); got < 2 {
				t.Errorf("attempts: got %v, want >= 2", got)
			}
			return
		}
		time.Sleep(200 * time.Millisecond) // polling for the renewal
	}
	t.Fatalf("certificate not renewed before it expired at %v", first.NotAfter)
}

// TestACMESharedRedisStorage runs two Managers of one process on one Redis
// storage (certmagic keeps some challenge state per process; see
// TestReplicasInTwoProcesses for replicas in separate processes). Pebble
// validates at B's listeners only, and A starts first: A orders, B answers,
// then B starts and serves the same certificate without an order.
func TestACMESharedRedisStorage(t *testing.T) {
	for _, ch := range []string{config.ChallengeHTTP01} {
		t.Run(ch, func(t *testing.T) {
			redisURL := testkit.StartRedis(t, testkit.CertsPorts).URL()
			aHTTP, aHTTPS := listenEdge(t)
			bHTTP, bHTTPS := listenEdge(t)
			p := startPebble(t, pebbleOpts{httpPort: port(bHTTP), tlsPort: port(bHTTPS)})
			b := newEdge(t, acmeConfig(p, bHTTP, bHTTPS, redisURL, ch), bHTTP, bHTTPS)
			a := serveEdge(t, acmeConfig(p, aHTTP, aHTTPS, redisURL, ch), aHTTP, aHTTPS)
			la := waitServed(t, aHTTPS.Addr().String(), testName, p.root, 60*time.Second)
			b.start(t)
			lb := waitServed(t, bHTTPS.Addr().String(), testName, p.root, 10*time.Second)
			if la.SerialNumber.Cmp(lb.SerialNumber) != 0 {
				t.Errorf("serials: A %v, B %v, want the same certificate", la.SerialNumber, lb.SerialNumber)
			}
			att := testutil.ToFloat64(a.m.met.attempts) + testutil.ToFloat64(b.m.met.attempts)
			if att != 1 || p.issuedCount() != 1 {
				t.Errorf("orders: attempts A+B %v, pebble issued %d, want 1 and 1", att, p.issuedCount())
			}
		})
	}
}

// TestACMEReloadDomains adds a name by a reload (obtained in the background)
// and removes one (refused from then on).
func TestACMEReloadDomains(t *testing.T) {
	httpLn, httpsLn := listenEdge(t)
	p := startPebble(t, pebbleOpts{httpPort: port(httpLn), tlsPort: port(httpsLn)})
	c := acmeConfig(p, httpLn, httpsLn, t.TempDir(), config.ChallengeHTTP01)
	e := serveEdge(t, c, httpLn, httpsLn)
	addr := httpsLn.Addr().String()
	waitServed(t, addr, testName, p.root, 60*time.Second)

	second := "second.mxedge.internal"
	c2 := *c
	c2.TLS.Domains = []string{second}
	pr, err := e.m.Prepare(&c2)
	must(t, err)
	if st := e.m.Status(); len(st) != 1 || st[0].Name != testName {
		t.Errorf("Status after Prepare, before Commit: got %+v, want %s only", st, testName)
	}
	pr.Commit()
	waitServed(t, addr, second, p.root, 60*time.Second)
	if _, err := handshake(addr, testName, p.root); err == nil {
		t.Errorf("%s removed by a reload: still served", testName)
	}
	if st := e.m.Status(); len(st) != 1 || st[0].Name != second || st[0].NotAfter.IsZero() {
		t.Errorf("Status after Commit: got %+v", st)
	}
}
