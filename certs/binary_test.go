package certs

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// The tests in this file run the mxedge binary (built once, see
// binary_helpers_test.go) as a subprocess with TLS on: against Pebble in
// mode acme, with a test CA in mode files, and two processes on one Redis.
// The upstream is a fake homeserver recording what reached it.

// TestBinaryACMEHTTP01 issues a certificate over HTTP-01 through the binary
// and checks the https, http, federation and ops listeners, then restarts
// the binary on the same storage.
func TestBinaryACMEHTTP01(t *testing.T) {
	hs := newHomeserver(t)
	ports, release := testkit.ReservePorts(t, testkit.CertsPorts, 2)
	httpPort, httpsPort := ports[0], ports[1]
	p := startPebble(t, pebbleOpts{httpPort: httpPort, tlsPort: httpsPort})
	release()
	storage := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "mxedge.yaml")
	listen := func() map[string]string {
		return map[string]string{"http": loopback(httpPort), "https": loopback(httpsPort), "federation": "127.0.0.1:0"}
	}
	const hsts = 600
	testkit.WriteJSON(t, cfgFile, baseConfig(hs.URL, listen(), acmeTLS(p, storage, hsts, config.ChallengeHTTP01)))
	testkit.MxedgeBinary(t) // build outside the measured time

	e := testkit.StartMxedge(t, "first", []string{"run", "--config", cfgFile}, "https", "federation", "http", "ops")
	httpsAddr := e.Addr("https")
	leaf := waitServed(t, httpsAddr, testName, p.root, 90*time.Second)
	issued := time.Since(e.Started())
	obtained := e.WaitLog(t, time.Second, "obtain log", testkit.Msg("certificate obtained successfully", "identifier", testName))
	t.Logf("HTTP-01 through the binary: first verified handshake %v after exec (certmagic obtain log at %s)", issued.Round(time.Millisecond), obtained.Str("time"))

	t.Run("https", func(t *testing.T) {
		c, err := handshake(httpsAddr, testName, p.root, "h2", "http/1.1")
		if err != nil {
			t.Fatal(err)
		}
		st := c.ConnectionState()
		c.Close()
		verifyLeaf(t, st.PeerCertificates, p.root)
		if !slices.Contains(st.PeerCertificates[0].DNSNames, testName) {
			t.Errorf("SANs: got %v, want %s", st.PeerCertificates[0].DNSNames, testName)
		}
		if got := st.NegotiatedProtocol; got != "h2" {
			t.Errorf("ALPN: got %q, want h2", got)
		}
		checkTLSVersions(t, httpsAddr, p.root)

		res := get(t, httpsClient(httpsAddr, p.root), "https://"+testName+"/_matrix/client/versions", "https://app.example.org")
		if res.ProtoMajor != 2 || res.StatusCode != 200 {
			t.Errorf("GET /_matrix/client/versions: got %s %d, want HTTP/2 200", res.Proto, res.StatusCode)
		}
		if got, want := res.Header.Get("Strict-Transport-Security"), "max-age="+strconv.Itoa(hsts); got != want {
			t.Errorf("Strict-Transport-Security: got %q, want %q", got, want)
		}
		if res.Header.Get("Access-Control-Allow-Origin") == "" {
			t.Errorf("https listener: no Access-Control-Allow-Origin on a client API response; headers %v", res.Header)
		}
		if got := hs.count("/_matrix/client/versions"); got != 1 {
			t.Errorf("upstream got /_matrix/client/versions %d times, want 1", got)
		}

		// A name outside tls.domains is refused in the handshake and orders nothing.
		if _, err := handshake(httpsAddr, "other.mxedge.internal", p.root); err == nil {
			t.Error("handshake for other.mxedge.internal: got success, want refusal")
		}
	})

	t.Run("http", func(t *testing.T) {
		// Pebble validated at listen.http, which this process holds.
		if got, want := e.Addr("http"), loopback(httpPort); got != want {
			t.Fatalf("http listener at %s, want Pebble's httpPort %s", got, want)
		}
		served := e.Find(testkit.Msg("served key authentication", "challenge", "http-01", "identifier", testName))
		if len(served) == 0 {
			t.Errorf("no \"served key authentication\" http-01 log: the challenge was not answered by mxedge's http listener")
		}
		if got := p.issuedCount(); got != 1 {
			t.Errorf("pebble issued %d certificates, want 1", got)
		}
		if got := e.Metric(t, "mxedge_tls_acme_attempts_total"); got != 1 {
			t.Errorf("mxedge_tls_acme_attempts_total: got %v, want 1", got)
		}
		checkRedirect(t, e.Addr("http"), httpsPort)
	})

	t.Run("federation", func(t *testing.T) {
		fedAddr := e.Addr("federation")
		c, err := handshake(fedAddr, testName, p.root, "h2", "http/1.1")
		if err != nil {
			t.Fatal(err)
		}
		fedLeaf := c.ConnectionState().PeerCertificates[0]
		c.Close()
		if fedLeaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("federation serial %v, https serial %v: want the same certificate", fedLeaf.SerialNumber, leaf.SerialNumber)
		}
		hc := httpsClient(fedAddr, p.root)
		for _, tc := range []struct {
			path       string
			wantStatus int
			wantUp     int    // times the path must have reached the upstream
			wantBody   string // substring
		}{
			{"/_matrix/federation/v1/version", 200, 1, `"server"`},
			{"/_matrix/key/v2/server", 200, 1, `"verify_keys"`},
			{"/_matrix/client/versions", 404, 0, `"M_UNRECOGNIZED"`},
			{"/.well-known/matrix/server", 200, 0, `"m.server":"` + testName + `:443"`},
		} {
			before := hs.count(tc.path)
			res := get(t, hc, "https://"+testName+":8448"+tc.path, "https://app.example.org")
			body := readBody(res)
			if res.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Errorf("federation GET %s: got %d %s, want %d with %s", tc.path, res.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if got := hs.count(tc.path) - before; got != tc.wantUp {
				t.Errorf("federation GET %s reached the upstream %d times, want %d", tc.path, got, tc.wantUp)
			}
			for k := range res.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("federation GET %s: header %s: %q, want no CORS headers", tc.path, k, res.Header.Values(k))
				}
			}
		}
	})

	t.Run("readyz", func(t *testing.T) {
		checkReadyz(t, e, leaf)
	})

	t.Run("restart", func(t *testing.T) {
		stopping := time.Now()
		e.Stop(t)
		t.Logf("restart: SIGTERM to exit %v", time.Since(stopping).Round(time.Millisecond))
		// Same storage and ports; hsts 0 this time.
		testkit.WriteJSON(t, cfgFile, baseConfig(hs.URL, listen(), acmeTLS(p, storage, 0, config.ChallengeHTTP01)))
		e2 := testkit.StartMxedge(t, "restarted", []string{"run", "--config", cfgFile}, "https", "http", "ops")
		listening := time.Since(e2.Started())
		// certs.Manager.Start loads the stored certificate before it
		// returns, and the listeners serve only after that: the very first
		// handshake gets it.
		if c, err := handshake(e2.Addr("https"), testName, p.root); err != nil {
			t.Errorf("restart: first handshake %v after exec failed: %v", time.Since(e2.Started()).Round(time.Millisecond), err)
		} else {
			c.Close()
		}
		second := waitServed(t, e2.Addr("https"), testName, p.root, 10*time.Second)
		t.Logf("restart: listening %v after exec, verified handshake %v after exec", listening.Round(time.Millisecond), time.Since(e2.Started()).Round(time.Millisecond))
		if second.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("after restart: serial %v, want the stored %v", second.SerialNumber, leaf.SerialNumber)
		}
		res := get(t, httpsClient(e2.Addr("https"), p.root), "https://"+testName+"/_matrix/client/versions", "")
		if res.StatusCode != 200 {
			t.Errorf("after restart: GET /_matrix/client/versions: %d", res.StatusCode)
		}
		if got := res.Header.Values("Strict-Transport-Security"); len(got) != 0 {
			t.Errorf("hsts: 0: got Strict-Transport-Security %q, want none", got)
		}
		if got := e2.Metric(t, "mxedge_tls_acme_attempts_total"); got != 0 {
			t.Errorf("after restart: mxedge_tls_acme_attempts_total %v, want 0", got)
		}
		if got := e2.Find(testkit.Msg("obtaining certificate")); len(got) != 0 {
			t.Errorf("after restart: %d \"obtaining certificate\" logs, want 0", len(got))
		}
		if got, orders := p.issuedCount(), p.orderCount(); got != 1 || orders != 1 {
			t.Errorf("pebble: %d issued, %d orders; want 1 and 1", got, orders)
		}
	})
}

// TestBinaryACMETLSALPN01 issues a certificate with only tls-alpn-01
// enabled: Pebble's HTTP-01 port has no listener, so the validation can
// only succeed on mxedge's https listener.
func TestBinaryACMETLSALPN01(t *testing.T) {
	hs := newHomeserver(t)
	ports, release := testkit.ReservePorts(t, testkit.CertsPorts, 2)
	httpsPort, deadHTTPPort := ports[0], ports[1]
	p := startPebble(t, pebbleOpts{httpPort: deadHTTPPort, tlsPort: httpsPort})
	release()
	cfgFile := filepath.Join(t.TempDir(), "mxedge.yaml")
	listen := map[string]string{"http": "127.0.0.1:0", "https": loopback(httpsPort)}
	testkit.WriteJSON(t, cfgFile, baseConfig(hs.URL, listen, acmeTLS(p, t.TempDir(), config.DefaultHSTS, config.ChallengeTLSALPN01)))
	testkit.MxedgeBinary(t)

	e := testkit.StartMxedge(t, "alpn", []string{"run", "--config", cfgFile}, "https", "http", "ops")
	leaf := waitServed(t, e.Addr("https"), testName, p.root, 90*time.Second)
	t.Logf("TLS-ALPN-01 through the binary: first verified handshake %v after exec", time.Since(e.Started()).Round(time.Millisecond))

	if !slices.Contains(leaf.DNSNames, testName) {
		t.Errorf("SANs: got %v, want %s", leaf.DNSNames, testName)
	}
	if got := e.Find(testkit.Msg("served key authentication certificate", "challenge", "tls-alpn-01", "server_name", testName)); len(got) == 0 {
		t.Error("no \"served key authentication certificate\" tls-alpn-01 log")
	}
	if got := e.Find(testkit.Msg("served key authentication")); len(got) != 0 {
		t.Errorf("http-01 answered with only tls-alpn-01 enabled: %v", got)
	}
	if got := p.issuedCount(); got != 1 {
		t.Errorf("pebble issued %d, want 1", got)
	}
	c, err := handshake(e.Addr("https"), testName, p.root, "h2", "http/1.1")
	if err != nil {
		t.Fatal(err)
	}
	st := c.ConnectionState()
	c.Close()
	verifyLeaf(t, st.PeerCertificates, p.root)
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN: got %q, want h2", st.NegotiatedProtocol)
	}
	// A client offering only acme-tls/1 for a served name gets no
	// certificate once the challenge is over (no validation in progress).
	if c, err := handshake(e.Addr("https"), testName, p.root, "acme-tls/1"); err == nil {
		c.Close()
		t.Error("acme-tls/1 handshake after issuance: got success, want refusal")
	}
	checkTLSVersions(t, e.Addr("https"), p.root)
}

// TestBinaryFilesReload serves a certificate from files, replaces the files
// and sends SIGHUP: new connections get the new certificate while an open
// one keeps working.
func TestBinaryFilesReload(t *testing.T) {
	hs := newHomeserver(t)
	ca := newTestCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	now := time.Now()
	certPEM, keyPEM := ca.leaf(t, []string{testName}, now.Add(-time.Hour), now.Add(20*24*time.Hour))
	must(t, os.WriteFile(certFile, certPEM, 0o600))
	must(t, os.WriteFile(keyFile, keyPEM, 0o600))
	cfgFile := filepath.Join(dir, "mxedge.yaml")
	testkit.WriteJSON(t, cfgFile, baseConfig(hs.URL,
		map[string]string{"http": "127.0.0.1:0", "https": "127.0.0.1:0", "federation": "127.0.0.1:0"},
		map[string]any{"mode": "files", "domains": []string{testName}, "cert_file": certFile, "key_file": keyFile, "renew_check_interval": "1h"}))

	e := testkit.StartMxedge(t, "files", []string{"run", "--config", cfgFile}, "https", "federation", "http", "ops")
	addr := e.Addr("https")

	// An open HTTP/1.1 connection, used before and after the reload.
	old, err := tls.Dial("tcp", addr, &tls.Config{ServerName: testName, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldChain := old.ConnectionState().PeerCertificates
	verifyLeaf(t, oldChain, roots)
	oldReader := bufio.NewReader(old)
	if status := rawGet(t, old, oldReader, "/_matrix/client/versions"); status != 200 {
		t.Fatalf("open connection, first request: status %d", status)
	}
	if c, err := handshake(e.Addr("federation"), testName, roots); err != nil {
		t.Errorf("federation listener: %v", err)
	} else {
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(oldChain[0].SerialNumber) != 0 {
			t.Errorf("federation serial %v, https serial %v: want the same certificate", got, oldChain[0].SerialNumber)
		}
		c.Close()
	}
	checkTLSVersions(t, addr, roots)
	t.Run("readyz", func(t *testing.T) {
		got := checkReadyz(t, e, oldChain[0])
		if got.Warning != "" {
			t.Errorf("/readyz warning for a 20-day certificate: %q, want none", got.Warning)
		}
	})

	// Replace both files (by rename, as a renewal tool does) and reload.
	certPEM2, keyPEM2 := ca.leaf(t, []string{testName}, now.Add(-time.Hour), now.Add(10*24*time.Hour))
	replaceFile(t, certFile, certPEM2)
	replaceFile(t, keyFile, keyPEM2)
	e.Signal(t, syscall.SIGHUP)
	e.WaitLog(t, 10*time.Second, "certificate files reloaded", testkit.Msg("certificate files reloaded"))
	e.WaitLog(t, 10*time.Second, "configuration reloaded", testkit.Msg("configuration reloaded"))

	c, err := handshake(addr, testName, roots)
	if err != nil {
		t.Fatalf("new connection after SIGHUP: %v", err)
	}
	newLeaf := c.ConnectionState().PeerCertificates[0]
	c.Close()
	if newLeaf.SerialNumber.Cmp(oldChain[0].SerialNumber) == 0 {
		t.Errorf("after SIGHUP: new connections still get serial %v", newLeaf.SerialNumber)
	}
	if want := parsePEMLeaf(t, certPEM2); newLeaf.SerialNumber.Cmp(want.SerialNumber) != 0 {
		t.Errorf("after SIGHUP: serial %v, want the new file's %v", newLeaf.SerialNumber, want.SerialNumber)
	}
	if status := rawGet(t, old, oldReader, "/_matrix/client/versions"); status != 200 {
		t.Errorf("open connection after SIGHUP: status %d, want 200", status)
	}
	if got := hs.count("/_matrix/client/versions"); got != 2 {
		t.Errorf("upstream got /_matrix/client/versions %d times, want 2", got)
	}
	t.Run("readyz after reload", func(t *testing.T) {
		got := checkReadyz(t, e, newLeaf)
		if got.Warning != "expires soon" {
			t.Errorf("/readyz warning for a 10-day certificate: %q, want \"expires soon\"", got.Warning)
		}
	})
	e.Stop(t)
}

// TestBinaryReplicasRedis runs two mxedge processes on one Redis storage
// against one Pebble. Pebble validates through a gated relay that leads to
// replica B only. A starts first and orders (it holds the storage lock);
// only then does B start and the relay open, so B answers a challenge it
// never saw in memory, from the storage. B then finds A's certificate in
// the storage. Exactly one order, both serve the same certificate.
func TestBinaryReplicasRedis(t *testing.T) {
	for _, ch := range []string{config.ChallengeHTTP01, config.ChallengeTLSALPN01} {
		t.Run(ch, func(t *testing.T) {
			hs := newHomeserver(t)
			redisURL := testkit.StartRedis(t, testkit.CertsPorts).URL()
			// Pebble's validation ports stay bound by the relays; the
			// replicas' ports are released just before they start.
			relayHTTP, relayTLS := startRelay(t, testkit.ReserveListener(t, testkit.CertsPorts)), startRelay(t, testkit.ReserveListener(t, testkit.CertsPorts))
			ports, release := testkit.ReservePorts(t, testkit.CertsPorts, 4)
			p := startPebble(t, pebbleOpts{httpPort: port(relayHTTP.ln), tlsPort: port(relayTLS.ln)})
			release()
			dir := t.TempDir()
			cfgA, cfgB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
			testkit.WriteJSON(t, cfgA, baseConfig(hs.URL, map[string]string{"http": loopback(ports[0]), "https": loopback(ports[1])},
				acmeTLS(p, redisURL, config.DefaultHSTS, ch)))
			testkit.WriteJSON(t, cfgB, baseConfig(hs.URL, map[string]string{"http": loopback(ports[2]), "https": loopback(ports[3])},
				acmeTLS(p, redisURL, config.DefaultHSTS, ch)))

			a := testkit.StartMxedge(t, "A", []string{"run", "--config", cfgA}, "https", "http", "ops")
			a.WaitLog(t, 30*time.Second, "A obtaining", testkit.Msg("obtaining certificate", "identifier", testName))
			b := testkit.StartMxedge(t, "B", []string{"run", "--config", cfgB}, "https", "http", "ops")
			relayHTTP.open(b.Addr("http"))
			relayTLS.open(b.Addr("https"))

			la := waitServed(t, a.Addr("https"), testName, p.root, 90*time.Second)
			t.Logf("%s: A serves %v after exec", ch, time.Since(a.Started()).Round(time.Millisecond))
			lb := waitServed(t, b.Addr("https"), testName, p.root, 90*time.Second)
			t.Logf("%s: B serves %v after exec", ch, time.Since(b.Started()).Round(time.Millisecond))
			if la.SerialNumber.Cmp(lb.SerialNumber) != 0 {
				t.Errorf("serials: A %v, B %v, want the same certificate", la.SerialNumber, lb.SerialNumber)
			}
			attA, attB := a.Metric(t, "mxedge_tls_acme_attempts_total"), b.Metric(t, "mxedge_tls_acme_attempts_total")
			if attA != 1 || attB != 0 || p.issuedCount() != 1 || p.orderCount() != 1 {
				t.Errorf("orders: attempts A %v, B %v, pebble issued %d, orders %d; want 1, 0, 1, 1", attA, attB, p.issuedCount(), p.orderCount())
			}
			msg := map[string]string{config.ChallengeHTTP01: "served key authentication", config.ChallengeTLSALPN01: "served key authentication certificate"}[ch]
			if got := b.Find(testkit.Msg(msg, "challenge", ch, "distributed", "true")); len(got) == 0 {
				t.Errorf("B logged no %q for %s with distributed=true (answered from the shared storage); relayed connections: %d",
					msg, ch, relayHTTP.accepted.Load()+relayTLS.accepted.Load())
			}
			if got := a.Find(func(l testkit.Line) bool { return strings.HasPrefix(l.Str("msg"), "served key authentication") }); len(got) != 0 {
				t.Errorf("A answered a challenge Pebble never sent it: %v", got)
			}
			a.Stop(t)
			b.Stop(t)
		})
	}
}

// checkTLSVersions checks that TLS 1.2 is accepted and TLS 1.1 refused by
// the server (the client allows 1.0-1.1 explicitly, or it would refuse on
// its own: Go clients default to TLS 1.2 minimum).
func checkTLSVersions(t *testing.T, addr string, roots *x509.CertPool) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: testName, RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Errorf("TLS 1.2 handshake: %v", err)
	} else {
		c.Close()
	}
	c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: testName, RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake: got success, want refusal")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: got %v, want the server's protocol version alert", err)
	}
}

// checkRedirect checks that the http listener answers 308 to https on the
// https listener's port, keeping path and query, for non-challenge paths.
func checkRedirect(t *testing.T, httpAddr string, httpsPort int) {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	for _, path := range []string{"/_matrix/client/versions?x=1&y=%2F", "/", "/.well-known/matrix/server", "/.well-known/acme-challenge/bm90LWEtdG9rZW4"} {
		req, err := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		must(t, err)
		req.Host = testName + ":" + strings.Split(httpAddr, ":")[1]
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := "https://" + testName + ":" + strconv.Itoa(httpsPort) + path
		if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != want {
			t.Errorf("http GET %s: got %d Location %q, want 308 %q", path, res.StatusCode, res.Header.Get("Location"), want)
		}
		if res.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("http GET %s: Strict-Transport-Security on plain http", path)
		}
	}
}

// checkReadyz checks that /readyz lists testName with leaf's expiry and
// the days left, and returns the entry.
func checkReadyz(t *testing.T, e *testkit.Proc, leaf *x509.Certificate) readyCert {
	t.Helper()
	certs := readyz(t, e)
	if len(certs) != 1 || certs[0].Name != testName {
		t.Fatalf("/readyz certificates: got %+v, want one for %s", certs, testName)
	}
	got := certs[0]
	if !got.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("/readyz not_after: got %v, want %v", got.NotAfter, leaf.NotAfter)
	}
	want := time.Until(leaf.NotAfter).Hours() / 24
	if got.DaysLeft == nil || math.Abs(float64(*got.DaysLeft)-want) > 1 {
		t.Errorf("/readyz days_left: got %v, want about %.1f", got.DaysLeft, want)
	}
	return got
}

// get sends a GET with an Origin header (when not empty) and reads the body.
func get(t *testing.T, hc *http.Client, url, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	must(t, err)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(strings.NewReader(string(body)))
	return res
}

func readBody(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// rawGet sends one HTTP/1.1 GET on c and returns the status, reading the body.
func rawGet(t *testing.T, c net.Conn, r *bufio.Reader, path string) int {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, testName); err != nil {
		t.Fatalf("write on the open connection: %v", err)
	}
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read on the open connection: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// replaceFile writes data to path by a rename.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	must(t, os.WriteFile(tmp, data, 0o600))
	must(t, os.Rename(tmp, path))
}

// parsePEMLeaf parses the first certificate of a PEM chain.
func parsePEMLeaf(t *testing.T, chain []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(chain)
	if b == nil {
		t.Fatal("no PEM block in the chain")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	must(t, err)
	return c
}
