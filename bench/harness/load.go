package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/bench/pattern"
)

// scenario is one kind of small request.
type scenario struct {
	name   string
	tls    bool
	h2     bool
	local  bool // answered by the proxy itself
	method string
	path   string
	body   string
	hdr    [][2]string
	want   int // expected status
}

const putBody = `{"msgtype":"m.text","body":"hello from the mxedge benchmark, a message of typical size"}`

var scenarios = []scenario{
	{name: "get", method: "GET", path: "/_matrix/client/versions", want: 200},
	{name: "put", method: "PUT", path: "/_matrix/client/v3/rooms/!bench:bench.local/send/m.room.message/txn1", body: putBody,
		hdr: [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer syt_YmVuY2g_benchbenchbenchbench_0AbCdE"}}, want: 200},
	{name: "get-tls", tls: true, method: "GET", path: "/_matrix/client/versions", want: 200},
	{name: "put-tls", tls: true, method: "PUT", path: "/_matrix/client/v3/rooms/!bench:bench.local/send/m.room.message/txn1", body: putBody,
		hdr: [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer syt_YmVuY2g_benchbenchbenchbench_0AbCdE"}}, want: 200},
	{name: "get-h2", tls: true, h2: true, method: "GET", path: "/_matrix/client/versions", want: 200},
	{name: "wellknown", local: true, method: "GET", path: "/.well-known/matrix/client", want: 200},
	{name: "preflight", local: true, method: "OPTIONS", path: "/_matrix/client/v3/sync",
		hdr: [][2]string{{"Origin", "https://app.element.io"}, {"Access-Control-Request-Method", "GET"},
			{"Access-Control-Request-Headers", "authorization"}}, want: 204},
}

func (s scenario) applies(t *target) bool {
	if s.tls && t.tls == "" {
		return false
	}
	if s.h2 && !t.h2 {
		return false
	}
	return true
}

// result is one measurement cell.
type result struct {
	Target   string  `json:"target"`
	Scenario string  `json:"scenario"`
	Round    int     `json:"round"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Errors   int64   `json:"errors"`
	Requests int64   `json:"requests"`
	// CPUus is the proxy tree's CPU time (user+system) per request in µs: robust to
	// the other tenants of the machine, unlike requests/s. 0 for direct. UserUS and
	// SysUS split it.
	CPUus  float64 `json:"cpu_us_per_req"`
	UserUS float64 `json:"user_us_per_req"`
	SysUS  float64 `json:"sys_us_per_req"`
	// UpCPUus is the upstream's CPU time per request in the same cell (direct: its
	// own cost). In the sidecar layout it shares the proxy's core.
	UpCPUus float64 `json:"upstream_cpu_us_per_req"`
	// Layout is the name of the core layout of the cell (sidecar | split); results
	// from before layouts were measured have none and were taken in split.
	Layout string `json:"layout,omitempty"`
	// Tool is wrk, h2load or go (the smoke's checked Go load).
	Tool string `json:"tool,omitempty"`
}

// layoutOf names r's layout; results without one were taken in the split layout.
func layoutOf(r result) string {
	if r.Layout == "" {
		return "split"
	}
	return r.Layout
}

// cpuMeter samples the proxy's and the upstream's trees before a cell and turns
// the difference after it into CPU time per request.
type cpuMeter struct {
	proxy, up int
	p0, u0    cpuTicks
	hasProxy  bool
	hasUp     bool
}

func startCPU(e *env, t *target, tlsOn bool) *cpuMeter {
	m := &cpuMeter{}
	if p := t.procFor(tlsOn); p != nil {
		m.proxy, m.hasProxy = p.pid(), true
		m.p0 = treeCPU(m.proxy)
	}
	if e.upstream != nil {
		m.up, m.hasUp = e.upstream.pid(), true
		m.u0 = treeCPU(m.up)
	}
	return m
}

// finish fills r's CPU fields from the ticks used since startCPU over r.Requests.
func (m *cpuMeter) finish(r *result) {
	if r.Requests <= 0 {
		return
	}
	n := float64(r.Requests)
	if m.hasProxy {
		d := treeCPU(m.proxy).sub(m.p0)
		r.CPUus = float64(d.total()) * tickUS / n
		r.UserUS = float64(d.user) * tickUS / n
		r.SysUS = float64(d.sys) * tickUS / n
	}
	if m.hasUp {
		r.UpCPUus = float64(treeCPU(m.up).sub(m.u0).total()) * tickUS / n
	}
}

const wrkConns = 50

func luaScript(dir string, s scenario) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "wrk.method = %q\n", s.method)
	if s.body != "" {
		fmt.Fprintf(&b, "wrk.body = %q\n", s.body)
	}
	for _, h := range s.hdr {
		fmt.Fprintf(&b, "wrk.headers[%q] = %q\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "wrk.headers[\"Host\"] = \"bench.local\"\n")
	p := filepath.Join(dir, "wrk-"+s.name+".lua")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReq     = regexp.MustCompile(`(\d+) requests in`)
	reLat     = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)`)
	reSock    = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reH2Req   = regexp.MustCompile(`finished in [0-9.]+\w+, ([0-9.]+) req/s`)
	reH2Stat  = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
	reH2Codes = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	reH2Lat   = regexp.MustCompile(`time for request:\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)`)
)

func toMS(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return f / 1000
	case "s":
		return f * 1000
	}
	return f
}

// runWrk measures s against t for d with wrk (or h2load for h2), pinned to the load
// core, with the proxy's and the upstream's CPU time per request.
func runWrk(e *env, t *target, s scenario, d time.Duration) (r result, out string, err error) {
	r = result{Target: t.name, Scenario: s.name, Layout: e.lay.name(), Tool: "wrk"}
	if s.h2 {
		r.Tool = "h2load"
	}
	m := startCPU(e, t, s.tls)
	defer func() { m.finish(&r) }()
	dir := e.root
	url := t.url(s.tls, s.path)
	var cmd *exec.Cmd
	if s.h2 {
		// 10 connections x 10 streams: h2 multiplexes what wrk spreads over 50 connections.
		// No --warm-up-time: h2load would not count the warm-up's requests, whose CPU
		// time the meter sees (the targets are warm from the earlier cells anyway).
		cmd = exec.Command("taskset", "-c", cpuLoad, "h2load", "-t1", "-c10", "-m10",
			fmt.Sprintf("-D%d", max(1, int(d.Seconds()))), url)
	} else {
		lua, err := luaScript(dir, s)
		if err != nil {
			return r, "", err
		}
		cmd = exec.Command("taskset", "-c", cpuLoad, "wrk", "-t1", fmt.Sprintf("-c%d", wrkConns),
			fmt.Sprintf("-d%ds", max(1, int(d.Seconds()))), "--latency", "-s", lua, url)
	}
	raw, err := cmd.CombinedOutput()
	o := string(raw)
	if err != nil {
		return r, o, fmt.Errorf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	if s.h2 {
		if m := reH2Req.FindStringSubmatch(o); m != nil {
			r.RPS, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := reH2Stat.FindStringSubmatch(o); m != nil {
			r.Requests, _ = strconv.ParseInt(m[4], 10, 64)
			f, _ := strconv.ParseInt(m[5], 10, 64)
			e, _ := strconv.ParseInt(m[6], 10, 64)
			r.Errors += f + e
		}
		if m := reH2Codes.FindStringSubmatch(o); m != nil {
			for _, c := range m[2:] {
				n, _ := strconv.ParseInt(c, 10, 64)
				r.Errors += n
			}
		}
		if m := reH2Lat.FindStringSubmatch(o); m != nil {
			// h2load prints min, max, mean (no percentiles): report the mean as p50.
			r.P50ms = toMS(m[5], m[6])
			r.P99ms = -1
		}
		return r, o, emptyCell(r)
	}
	if m := reRPS.FindStringSubmatch(o); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	} else {
		return r, o, fmt.Errorf("wrk output without Requests/sec")
	}
	if m := reReq.FindStringSubmatch(o); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range reLat.FindAllStringSubmatch(o, -1) {
		if m[1] == "50" {
			r.P50ms = toMS(m[2], m[3])
		} else {
			r.P99ms = toMS(m[2], m[3])
		}
	}
	if m := reSock.FindStringSubmatch(o); m != nil {
		for _, c := range m[1:] {
			n, _ := strconv.ParseInt(c, 10, 64)
			r.Errors += n
		}
	}
	if m := reNon2xx.FindStringSubmatch(o); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	return r, o, emptyCell(r)
}

// errEmpty marks a cell in which no request completed (wrk still setting up its 50 TLS
// connections when the time ran out, on a starved machine): not a 0 req/s measurement.
var errEmpty = errors.New("no request completed in the cell")

func emptyCell(r result) error {
	if r.Requests <= 0 {
		return errEmpty
	}
	return nil
}

// check sends one request of s and verifies status and CORS; used before measuring
// (wrk counts a 204 or 200 alike, so a wrong answer must be caught here).
func check(c *http.Client, t *target, s scenario) error {
	req, err := http.NewRequest(s.method, t.url(s.tls, s.path), strings.NewReader(s.body))
	if err != nil {
		return err
	}
	for _, h := range s.hdr {
		req.Header.Set(h[0], h[1])
	}
	req.Host = "bench.local"
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != s.want {
		return fmt.Errorf("%s %s: status %d, want %d: %.200s", t.name, s.name, res.StatusCode, s.want, body)
	}
	if t.name != "direct" {
		if got := res.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "*" {
			return fmt.Errorf("%s %s: Access-Control-Allow-Origin %q, want exactly [*]", t.name, s.name, got)
		}
	}
	if s.h2 && res.ProtoMajor != 2 {
		return fmt.Errorf("%s %s: protocol %s, want HTTP/2", t.name, s.name, res.Proto)
	}
	return nil
}

func newClient(h2 bool, conns int) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: conns,
		ForceAttemptHTTP2:   h2,
		DisableCompression:  true,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// goLoad is the smoke variant's load: workers loop over s for d with a Go client and
// every answer is checked (status, CORS). It returns requests done and the first error.
func goLoad(t *target, s scenario, d time.Duration, workers int) (int64, error) {
	c := newClient(s.h2, workers)
	defer c.CloseIdleConnections()
	var n atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if err := check(c, t, s); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if e, _ := first.Load().(error); e != nil {
		return n.Load(), e
	}
	return n.Load(), nil
}

// held reads the upstream's count of held /sync requests.
func held() (int, error) {
	res, err := insecure.Get(fmt.Sprintf("http://127.0.0.1:%d/bench/held", portUpstream))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func waitHeld(want int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	got := -1
	for time.Now().Before(deadline) {
		n, err := held()
		if err == nil {
			got = n
			if n == want {
				return n, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return got, fmt.Errorf("upstream holds %d /sync requests, want %d", got, want)
}

// holdResult is one long-poll memory measurement.
type holdResult struct {
	Target   string  `json:"target"`
	N        int     `json:"n"`
	Round    int     `json:"round"`
	BaseKB   int64   `json:"base_kb"`
	HeldKB   int64   `json:"held_kb"`
	PerConnB float64 `json:"per_conn_bytes"`
	// CPUmsPerS is the tree's CPU time per second of wall time while the connections
	// are held (timer or goroutine churn shows here).
	CPUmsPerS float64 `json:"cpu_ms_per_s"`
	// Kind is "sync" (held long-polls) or "idle" (keep-alive connections, no request).
	Kind string `json:"kind"`
	// TLS: the connections are TLS 1.3 (HTTP/1.1) to the TLS listener.
	TLS  bool   `json:"tls,omitempty"`
	Note string `json:"note,omitempty"`
}

// holdSyncs opens n connections to addr (TLS when tlsOn), each with one GET
// /sync?timeout=timeoutMS, and returns them once written (dialling 64 at a time so
// the listen backlog never overflows).
func holdSyncs(ctx context.Context, addr string, tlsOn bool, n, timeoutMS int) ([]net.Conn, error) {
	req := []byte(fmt.Sprintf("GET /_matrix/client/v3/sync?timeout=%d&since=s0 HTTP/1.1\r\nHost: bench.local\r\n"+
		"Authorization: Bearer syt_YmVuY2g_benchbenchbenchbench_0AbCdE\r\nUser-Agent: mxedge-bench\r\n\r\n", timeoutMS))
	return openConns(ctx, addr, tlsOn, n, req, false)
}

// idleConns opens n keep-alive connections to addr (TLS when tlsOn), each after one
// answered GET /versions, and leaves them idle.
func idleConns(ctx context.Context, addr string, tlsOn bool, n int) ([]net.Conn, error) {
	req := []byte("GET /_matrix/client/versions HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: mxedge-bench\r\n\r\n")
	return openConns(ctx, addr, tlsOn, n, req, true)
}

// benchTLS is the client side of the TLS connections the harness holds itself: HTTP/1.1
// by ALPN, SNI localhost (a name of the harness's certificate).
var benchTLS = &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", NextProtos: []string{"http/1.1"}}

func openConns(ctx context.Context, addr string, tlsOn bool, n int, req []byte, answer bool) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var first atomic.Value
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	d := net.Dialer{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				first.CompareAndSwap(nil, err)
				return
			}
			if tlsOn {
				tc := tls.Client(c, benchTLS)
				hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = tc.HandshakeContext(hctx)
				cancel()
				if err != nil {
					first.CompareAndSwap(nil, fmt.Errorf("TLS handshake: %w", err))
					c.Close()
					return
				}
				c = tc
			}
			if _, err := c.Write(req); err != nil {
				first.CompareAndSwap(nil, err)
				c.Close()
				return
			}
			if answer {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != 200 {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					first.CompareAndSwap(nil, err)
					c.Close()
					return
				}
				c.SetReadDeadline(time.Time{})
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	if e, _ := first.Load().(error); e != nil {
		closeAll(conns)
		return nil, e
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// readAllOK reads one response from each connection and checks it is a 200.
func readAllOK(conns []net.Conn, within time.Duration) error {
	var first atomic.Value
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(within))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				first.CompareAndSwap(nil, err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				first.CompareAndSwap(nil, fmt.Errorf("held /sync answered %d", res.StatusCode))
			}
		}(c)
	}
	wg.Wait()
	if e, _ := first.Load().(error); e != nil {
		return e
	}
	return nil
}

// transferResult is one 100 MB upload or download.
type transferResult struct {
	Target  string  `json:"target"`
	Dir     string  `json:"dir"` // upload | download
	Round   int     `json:"round"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mb_per_s"`
	BaseKB  int64   `json:"base_kb"`
	PeakKB  int64   `json:"peak_kb"`
	GrowKB  int64   `json:"growth_kb"`
	CPUms   float64 `json:"cpu_ms"` // the proxy tree's CPU time for the transfer (0 for direct)
	SHA256  string  `json:"sha256"`
}

func patternSHA(block []byte, n int64) string {
	h := sha256.New()
	io.Copy(h, pattern.NewReader(block, n))
	return hex.EncodeToString(h.Sum(nil))
}

// upload POSTs n bytes of the pattern to the media upload sink through t and checks
// that the upstream's SHA-256 equals the one sent.
func upload(c *http.Client, t *target, block []byte, n int64, want string) (string, time.Duration, error) {
	req, _ := http.NewRequest("POST", t.url(false, "/_matrix/media/v3/upload?filename=bench.bin"), pattern.NewReader(block, n))
	req.ContentLength = n
	req.Host = "bench.local"
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer syt_YmVuY2g_benchbenchbenchbench_0AbCdE")
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	if res.StatusCode != 200 {
		return "", d, fmt.Errorf("%s upload: status %d: %.200s", t.name, res.StatusCode, body)
	}
	var got struct {
		SHA256 string `json:"sha256"`
		Bytes  int64  `json:"bytes"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return "", d, fmt.Errorf("%s upload: %v: %.200s", t.name, err, body)
	}
	if got.SHA256 != want || got.Bytes != n {
		return got.SHA256, d, fmt.Errorf("%s upload: upstream got %d bytes sha256 %s, sent %d bytes sha256 %s",
			t.name, got.Bytes, got.SHA256, n, want)
	}
	return got.SHA256, d, nil
}

// download GETs n bytes of the pattern through t and checks their SHA-256.
func download(c *http.Client, t *target, n int64, want string) (string, time.Duration, error) {
	req, _ := http.NewRequest("GET", t.url(false, fmt.Sprintf("/_matrix/client/v1/media/download/bench/%d", n)), nil)
	req.Host = "bench.local"
	req.Header.Set("Authorization", "Bearer syt_YmVuY2g_benchbenchbenchbench_0AbCdE")
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	m, err := io.Copy(h, res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return "", d, fmt.Errorf("%s download: after %d bytes: %v", t.name, m, err)
	}
	if res.StatusCode != 200 {
		return "", d, fmt.Errorf("%s download: status %d", t.name, res.StatusCode)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want || m != n {
		return got, d, fmt.Errorf("%s download: got %d bytes sha256 %s, want %d bytes sha256 %s", t.name, m, got, n, want)
	}
	return got, d, nil
}
