package certs

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The mxedge binary for the process-level tests in binary_test.go is built
// once, by the first test that needs it, and removed by TestMain.
var mxedgeBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mxedgeBuild.dir != "" {
		os.RemoveAll(mxedgeBuild.dir)
	}
	os.Exit(code)
}

// mxedgeBinary returns the path of the mxedge binary, building it on first use.
func mxedgeBinary(t *testing.T) string {
	t.Helper()
	b := &mxedgeBuild
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "mxedge-certs-bin")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "mxedge")
		b.out, b.err = exec.Command("go", "build", "-o", b.path, "github.com/mxedge/mxedge/cmd/mxedge").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("building mxedge: %v\n%s", b.err, b.out)
	}
	return b.path
}

// logLine is one JSON log line of mxedge.
type logLine map[string]any

// str returns the value of key as a string ("" when absent).
func (l logLine) str(key string) string {
	v, ok := l[key]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

// logMsg matches a line with msg and, for each key=value pair in kv, that
// attribute (compared as fmt.Sprint of the decoded JSON value).
func logMsg(msg string, kv ...string) func(logLine) bool {
	return func(l logLine) bool {
		if l.str("msg") != msg {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if l.str(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// mxedgeProc is a running mxedge process whose stderr JSON lines are kept.
type mxedgeProc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time // just before exec
	mu      sync.Mutex
	cond    *sync.Cond
	lines   []logLine
	raw     []string
	exited  bool
	waitErr error
	done    chan struct{}
	addrs   map[string]string // listener → bound address
}

// startMxedge runs "mxedge run --config cfgFile" with no MXEDGE_* variables
// in its environment and waits until every listener in listeners logged its
// address. The process is killed (by PID) at cleanup.
func startMxedge(t *testing.T, name, cfgFile string, listeners ...string) *mxedgeProc {
	t.Helper()
	bin := mxedgeBinary(t)
	p := &mxedgeProc{name: name, cmd: exec.Command(bin, "run", "--config", cfgFile), done: make(chan struct{}), addrs: map[string]string{}}
	p.cond = sync.NewCond(&p.mu)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MXEDGE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	stderr, err := p.cmd.StderrPipe()
	must(t, err)
	p.started = time.Now()
	must(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l logLine
			json.Unmarshal(sc.Bytes(), &l)
			p.mu.Lock()
			p.raw = append(p.raw, sc.Text())
			if l != nil {
				p.lines = append(p.lines, l)
				if l.str("msg") == "listening" {
					p.addrs[l.str("listener")] = l.str("addr")
				}
			}
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		err := p.cmd.Wait()
		p.mu.Lock()
		p.exited, p.waitErr = true, err
		p.cond.Broadcast()
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("mxedge %s log:\n%s", p.name, strings.Join(p.raw, "\n"))
			p.mu.Unlock()
		}
	})
	for _, l := range listeners {
		p.waitLog(t, 30*time.Second, "listener "+l, logMsg("listening", "listener", l))
	}
	return p
}

// addr returns the bound address of a listener.
func (p *mxedgeProc) addr(listener string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[listener]
}

// waitLog blocks until a line matching match has been logged (at any time
// since start), and returns it. It fails the test when the process exits
// or timeout passes first.
func (p *mxedgeProc) waitLog(t *testing.T, timeout time.Duration, what string, match func(logLine) bool) logLine {
	t.Helper()
	timedOut := false
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		timedOut = true
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				return p.lines[i]
			}
		}
		switch {
		case p.exited:
			t.Fatalf("mxedge %s: waiting for %s: exited (%v)", p.name, what, p.waitErr)
		case timedOut:
			t.Fatalf("mxedge %s: waiting for %s: not logged after %v", p.name, what, timeout)
		}
		p.cond.Wait()
	}
}

// find returns the lines logged so far that match.
func (p *mxedgeProc) find(match func(logLine) bool) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// stop sends SIGTERM and waits for a clean exit.
func (p *mxedgeProc) stop(t *testing.T) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("mxedge %s: still running 30s after SIGTERM", p.name)
	}
	if p.waitErr != nil {
		t.Errorf("mxedge %s exit: got %v, want status 0", p.name, p.waitErr)
	}
}

// metric reads an unlabelled sample from the ops listener's /metrics.
func (p *mxedgeProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + p.addr("ops") + "/metrics")
	must(t, err)
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			must(t, err)
			return f
		}
	}
	t.Fatalf("mxedge %s /metrics: no sample %s", p.name, name)
	return 0
}

// readyCert is one entry of the certificates detail of /readyz.
type readyCert struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft *int      `json:"days_left"`
	Warning  string    `json:"warning"`
}

// readyz polls the ops listener's /readyz until it answers 200 (the
// upstream probe passed), and returns its certificates detail.
func (p *mxedgeProc) readyz(t *testing.T) []readyCert {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		res, err := http.Get("http://" + p.addr("ops") + "/readyz")
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
	t.Fatalf("mxedge %s /readyz: not ready: %s", p.name, last)
	return nil
}

// writeJSONConfig writes cfg as the config file (JSON is YAML).
func writeJSONConfig(t *testing.T, path string, cfg map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	must(t, err)
	must(t, os.WriteFile(path, b, 0o600))
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

// reservePorts binds n loopback ports of the certs range and returns them
// with a func that releases them. ACME validation needs fixed ports known
// to Pebble before mxedge binds them; holding them while Pebble starts
// keeps Pebble's own free-port picks off them.
func reservePorts(t *testing.T, n int) ([]int, func()) {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln := reserveListener(t)
		lns = append(lns, ln)
		ports = append(ports, port(ln))
	}
	return ports, func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
}

// reserveListener binds a loopback port of the certs range.
func reserveListener(t *testing.T) net.Listener {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", loopback(freePort(t)))
		if err == nil {
			return ln
		}
		// taken since freePort looked
	}
	t.Fatal("no free port in the certs range")
	return nil
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
