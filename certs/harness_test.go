package certs

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mxedge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a certificate for names (IPs allowed) valid in [nb, na], and
// returns the chain PEM (leaf then CA) and the key PEM.
func (ca *testCA) leaf(t *testing.T, names []string, nb, na time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// startDNS serves A 127.0.0.1 for every name (and no AAAA) on a loopback
// UDP port, for Pebble's -dnsserver.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() { srv.ActivateAndServe(); close(done) }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// pebble is a running Pebble ACME server.
type pebble struct {
	dir     string // ACME directory URL
	caFile  string // PEM of the CA that signed Pebble's own HTTPS certificate
	root    *x509.CertPool
	rootPEM []byte
	mu      sync.Mutex
	log     strings.Builder
	issued  int // "Issued certificate" log lines
	kill    func()
}

func (p *pebble) issuedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issued
}

type pebbleOpts struct {
	httpPort, tlsPort int
	validity          time.Duration // 0 = Pebble's default
}

// startPebble runs Pebble on loopback with validation on o's ports and
// names resolving to 127.0.0.1, and waits until it serves its roots.
func startPebble(t *testing.T, o pebbleOpts) *pebble {
	t.Helper()
	bin := testkit.Require(t, "pebble")
	dir := t.TempDir()
	ca := newTestCA(t)
	certPEM, keyPEM := ca.leaf(t, []string{"localhost", "127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	p := &pebble{caFile: filepath.Join(dir, "ca.pem")}
	must(t, os.WriteFile(p.caFile, ca.pem, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600))
	dnsAddr := startDNS(t)

	for try := 0; try < 5; try++ {
		acmePort, mgmtPort := testkit.FreePort(t, testkit.CertsPorts), testkit.FreePort(t, testkit.CertsPorts)
		if acmePort == mgmtPort {
			continue
		}
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress":                  "127.0.0.1:" + strconv.Itoa(acmePort),
			"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmtPort),
			"certificate":                    filepath.Join(dir, "cert.pem"),
			"privateKey":                     filepath.Join(dir, "key.pem"),
			"httpPort":                       o.httpPort,
			"tlsPort":                        o.tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
			"certificateValidityPeriod":      uint64(o.validity / time.Second),
		}}
		b, _ := json.Marshal(cfg)
		cfgFile := filepath.Join(dir, "pebble.json")
		must(t, os.WriteFile(cfgFile, b, 0o600))
		cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				p.mu.Lock()
				p.log.WriteString(line + "\n")
				if strings.Contains(line, "Issued certificate serial") {
					p.issued++
				}
				p.mu.Unlock()
			}
			cmd.Wait()
			close(exited)
		}()
		p.kill = func() { cmd.Process.Kill(); <-exited }
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				p.mu.Lock()
				t.Logf("pebble log:\n%s", p.log.String())
				p.mu.Unlock()
			}
		})
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.pem)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 2 * time.Second}
		mgmt := "https://127.0.0.1:" + strconv.Itoa(mgmtPort)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				goto retry // a port was taken meanwhile
			default:
			}
			resp, err := hc.Get(mgmt + "/roots/0")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					p.rootPEM = body
					p.root = x509.NewCertPool()
					if !p.root.AppendCertsFromPEM(body) {
						t.Fatalf("pebble /roots/0: no PEM: %q", body)
					}
					p.dir = "https://127.0.0.1:" + strconv.Itoa(acmePort) + "/dir"
					return p
				}
			}
			time.Sleep(50 * time.Millisecond) // polling readiness
		}
		t.Fatal("pebble not ready after 30s")
	retry:
	}
	t.Fatal("pebble did not start")
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// edge is a Manager with the listeners mxedge would give it: an http
// server (HTTPChallenge, then a 308 redirect) and an https server.
type edge struct {
	m        *Manager
	reg      *prometheus.Registry
	httpLn   net.Listener
	httpsLn  net.Listener
	httpsURL string
	logs     *testkit.LogRecorder
	ctx      context.Context
	stop     func() // closes the servers and stops the Manager; idempotent
}

// listenEdge binds the two listeners (as mxedge does before Start).
func listenEdge(t *testing.T) (httpLn, httpsLn net.Listener) {
	t.Helper()
	var err error
	if httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if httpsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return httpLn, httpsLn
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

const testName = "test.mxedge.internal"

// acmeConfig is a config for mode acme against p.
func acmeConfig(p *pebble, httpLn, httpsLn net.Listener, storage string, challenges ...string) *config.Config {
	c := &config.Config{ServerName: testName}
	c.Listen.HTTP = httpLn.Addr().String()
	c.Listen.HTTPS = httpsLn.Addr().String()
	c.TLS = config.TLS{
		Mode:               config.TLSModeACME,
		Domains:            []string{testName},
		Email:              "admin@mxedge.internal",
		ACMECA:             p.dir,
		ACMECARoot:         p.caFile,
		Challenges:         challenges,
		Storage:            storage,
		HSTS:               config.DefaultHSTS,
		RenewCheckInterval: config.Duration(time.Minute),
	}
	return c
}

// serveEdge creates the Manager for c, serves the listeners and starts it.
func serveEdge(t *testing.T, c *config.Config, httpLn, httpsLn net.Listener) *edge {
	t.Helper()
	e := newEdge(t, c, httpLn, httpsLn)
	e.start(t)
	return e
}

// newEdge creates the Manager for c and serves the listeners, without Start.
func newEdge(t *testing.T, c *config.Config, httpLn, httpsLn net.Listener) *edge {
	t.Helper()
	e := &edge{reg: prometheus.NewRegistry(), httpLn: httpLn, httpsLn: httpsLn, logs: &testkit.LogRecorder{}}
	m, err := New(c, Options{Logger: e.logs.Logger(), Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	hsts := "max-age=" + strconv.Itoa(c.TLS.HSTS)
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		if host == "" {
			host = r.Host
		}
		http.Redirect(w, r, "https://"+net.JoinHostPort(host, strconv.Itoa(port(httpsLn)))+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	httpSrv := &http.Server{Handler: m.HTTPChallenge(redirect), ErrorLog: discardLog()}
	httpsSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Strict-Transport-Security", hsts)
			fmt.Fprintf(w, "hello %s %s", r.Proto, r.TLS.ServerName)
		}),
		TLSConfig: m.TLSConfig(),
		ErrorLog:  discardLog(),
	}
	go httpSrv.Serve(httpLn)
	go httpsSrv.ServeTLS(httpsLn, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			httpSrv.Close()
			httpsSrv.Close()
			m.Stop()
		})
	}
	t.Cleanup(e.stop)
	e.ctx = ctx
	e.httpsURL = "https://" + httpsLn.Addr().String()
	return e
}

func (e *edge) start(t *testing.T) {
	t.Helper()
	if err := e.m.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
}

// handshake dials addr with SNI name, trusting roots, offering protos.
func handshake(addr, name string, roots *x509.CertPool, protos ...string) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: protos})
}

// waitServed polls handshakes until addr serves a certificate for name
// verified by roots, and returns its leaf.
func waitServed(t *testing.T, addr, name string, roots *x509.CertPool, timeout time.Duration) *x509.Certificate {
	t.Helper()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		c, err := handshake(addr, name, roots)
		if err == nil {
			leaf := c.ConnectionState().PeerCertificates[0]
			c.Close()
			return leaf
		}
		last = err
		time.Sleep(50 * time.Millisecond) // polling for issuance
	}
	t.Fatalf("no verified certificate for %s at %s after %v: %v", name, addr, timeout, last)
	return nil
}
