package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// The process-level tests in binary_test.go run the mxedge binary, built
// once by testkit and removed by testkit.Main.
func TestMain(m *testing.M) { testkit.Main(m) }

// readyCert is one entry of the certificates detail of /readyz.
type readyCert struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft *int      `json:"days_left"`
	Warning  string    `json:"warning"`
}

// readyz polls the ops listener's /readyz of p until it answers 200 (the
// upstream probe passed), and returns its certificates detail.
func readyz(t *testing.T, p *testkit.Proc) []readyCert {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		res, err := http.Get("http://" + p.Addr("ops") + "/readyz")
		must(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		last = fmt.Sprintf("%d %s", res.StatusCode, body)
		if res.StatusCode == http.StatusOK {
			var d struct {
				Ready        bool        `json:"ready"`
				Certificates []readyCert `json:"certificates"`
			}
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatalf("/readyz body %s: %v", body, err)
			}
			return d.Certificates
		}
		time.Sleep(50 * time.Millisecond) // polling readiness (the first upstream probe)
	}
	t.Fatalf("mxedge /readyz at %s: not ready: %s", p.Addr("ops"), last)
	return nil
}

// baseConfig is an mxedge config for testName forwarding to upstream,
// with the ops listener on port 0 and rate limits off; tls is the tls section.
func baseConfig(upstream string, listen map[string]string, tls map[string]any) map[string]any {
	if listen["ops"] == "" {
		listen["ops"] = "127.0.0.1:0"
	}
	return map[string]any{
		"server_name": testName,
		"upstream":    upstream,
		"listen":      listen,
		"well_known":  map[string]any{"server": testName + ":443"},
		"rate_limits": map[string]any{"enabled": false},
		"log":         map[string]any{"level": "info", "format": "json"},
		"tls":         tls,
	}
}

// acmeTLS is the tls section for mode acme against p.
func acmeTLS(p *pebble, storage string, hsts int, challenges ...string) map[string]any {
	return map[string]any{
		"mode":                 "acme",
		"domains":              []string{testName},
		"email":                "admin@mxedge.internal",
		"acme_ca":              p.dir,
		"acme_ca_root":         p.caFile,
		"challenges":           challenges,
		"storage":              storage,
		"hsts":                 hsts,
		"renew_check_interval": "1m",
	}
}

// homeserver is a fake upstream recording the paths that reached it.
type homeserver struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newHomeserver(t *testing.T) *homeserver {
	t.Helper()
	h := &homeserver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.paths = append(h.paths, r.URL.EscapedPath())
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/health":
			io.WriteString(w, "OK")
		case "/_matrix/federation/v1/version":
			io.WriteString(w, `{"server":{"name":"fake","version":"1"}}`)
		case "/_matrix/key/v2/server":
			io.WriteString(w, `{"server_name":"`+testName+`","verify_keys":{}}`)
		default:
			io.WriteString(w, `{"versions":["v1.11"]}`)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// count returns how many requests for path reached the homeserver.
func (h *homeserver) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.paths {
		if p == path {
			n++
		}
	}
	return n
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// httpsClient is a client for a TLS listener of mxedge at addr, verifying
// against roots for testName; it never follows redirects.
func httpsClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   &tls.Config{ServerName: testName, RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// verifyLeaf checks that chain verifies against roots for testName.
func verifyLeaf(t *testing.T, chain []*x509.Certificate, roots *x509.CertPool) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: testName, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("served chain does not verify for %s: %v", testName, err)
	}
}

// pebbleOrders counts new orders in Pebble's log.
func (p *pebble) orderCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Count(p.log.String(), "POST /order-plz")
}

// relay is a gated TCP relay: it accepts on a listener at once (so that a
// client such as Pebble's validator connects), holds each connection until
// open is called, then forwards it to the target given to open.
type relay struct {
	ln       net.Listener
	gate     chan struct{}
	target   string // set by open, before gate closes
	accepted atomic.Int32
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// startRelay serves ln until the test ends.
func startRelay(t *testing.T, ln net.Listener) *relay {
	r := &relay{ln: ln, gate: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.accepted.Add(1)
			if !r.track(c) {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				select {
				case <-r.gate:
				case <-done:
					return
				}
				u, err := net.Dial("tcp", r.target)
				if err != nil {
					return
				}
				if !r.track(u) {
					return
				}
				defer u.Close()
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					io.Copy(u, c)
					u.(*net.TCPConn).CloseWrite()
				}()
				io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		r.mu.Lock()
		r.closed = true
		for c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// track registers c to be closed at cleanup; false (and c closed) when
// cleanup already ran.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

// open forwards held and future connections to target.
func (r *relay) open(target string) {
	r.target = target
	close(r.gate)
}
