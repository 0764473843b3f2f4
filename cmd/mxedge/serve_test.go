package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// The process-level tests run the mxedge binary, built once by testkit
// and removed by testkit.Main.
func TestMain(m *testing.M) { testkit.Main(m) }

// logTimeout bounds the wait for a log line of the process.
const logTimeout = 30 * time.Second

// mxedgeConfig is a config for example.org forwarding to upstream, with the
// http and ops listeners on port 0 and rate limits off, then extra.
func mxedgeConfig(upstream, extra string) string {
	return fmt.Sprintf("server_name: example.org\nupstream: %s\nlisten: {http: \"127.0.0.1:0\", ops: \"127.0.0.1:0\"}\nrate_limits: {enabled: false}\n%s", upstream, extra)
}

// getBody GETs url with client and returns the status and the body.
func getBody(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b)
}

func TestFirstRunWithoutConfigFile(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"versions":["v1.11"]}`) }))
	defer up.Close()
	p := testkit.StartMxedge(t, "first run", []string{"run", "--upstream", up.URL, "--server-name", "example.org", "--listen", "127.0.0.1:0", "--listen-ops", "127.0.0.1:0"}, "http", "ops")
	res, err := http.Get("http://" + p.Addr("http") + "/.well-known/matrix/client")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(b), `"base_url":"https://example.org"`) {
		t.Errorf("well-known %s", b)
	}
	res, err = http.Get("http://" + p.Addr("http") + "/_matrix/client/versions")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("versions: %v %v", res, err)
	}
	res, err = http.Get("http://" + p.Addr("ops") + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
}

func TestDrainOnSIGTERM(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/sync") {
			arrived <- struct{}{}
			<-release
			io.WriteString(w, `{"next_batch":"s9"}`)
			return
		}
		io.WriteString(w, "{}")
	}))
	defer up.Close()
	cfg := testkit.TempFile(t, "c.yaml", mxedgeConfig(up.URL, "timeouts: {shutdown: 30s}\n"))
	p := testkit.StartMxedge(t, "drain", []string{"run", "--config", cfg}, "http")
	addr := p.Addr("http")

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + addr + "/_matrix/client/v3/sync?timeout=30000&since=s8")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		got <- result{res.StatusCode, string(b), err}
	}()
	<-arrived
	n := p.Mark()
	p.Signal(t, syscall.SIGTERM)
	p.WaitLogAfter(t, n, logTimeout, "the drain log", testkit.Msg("signal received, draining"))
	// New connections are refused while the long-poll drains.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	r := <-got
	if r.err != nil || r.status != 200 || r.body != `{"next_batch":"s9"}` {
		t.Fatalf("long-poll during drain: status %d body %q err %v", r.status, r.body, r.err)
	}
	if err := p.Wait(t, logTimeout); err != nil {
		t.Fatalf("exit: %v, want 0", err)
	}
}

func TestReloadBadFileKeepsServing(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer up.Close()
	cfg := testkit.TempFile(t, "c.yaml", mxedgeConfig(up.URL, "well_known: {server: \"a.example.org:443\"}\n"))
	p := testkit.StartMxedge(t, "reload", []string{"run", "--config", cfg}, "http")
	base := "http://" + p.Addr("http")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	fetch := func() string {
		_, b := getBody(t, client, base+"/.well-known/matrix/server")
		return b
	}
	if got := fetch(); !strings.Contains(got, "a.example.org:443") {
		t.Fatalf("before reload: %s", got)
	}
	// A broken file: the running configuration stays, connections stay open.
	testkit.WriteFile(t, cfg, "server_name: example.org\nupstrem: nope\nlimits: {max_body_size: -1}\n")
	n := p.Mark()
	p.Signal(t, syscall.SIGHUP)
	p.WaitLogAfter(t, n, logTimeout, "the failed reload log", testkit.Msg("reload failed, keeping the running configuration"))
	if got := fetch(); !strings.Contains(got, "a.example.org:443") {
		t.Fatalf("after a bad reload: %s", got)
	}
	// A good file applies to new requests, on the same connection too.
	testkit.WriteFile(t, cfg, mxedgeConfig(up.URL, "well_known: {server: \"b.example.org:8448\"}\n"))
	n = p.Mark()
	p.Signal(t, syscall.SIGHUP)
	p.WaitLogAfter(t, n, logTimeout, "the reload log", testkit.Msg("configuration reloaded"))
	if got := fetch(); !strings.Contains(got, "b.example.org:8448") {
		t.Fatalf("after a good reload: %s", got)
	}
	p.Stop(t)
}

// rssKB reads a process's resident set (VmRSS) and peak (VmHWM) in KiB.
func rssKB(t *testing.T, pid int) (rss, hwm int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

// zeroReader yields n zero bytes.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestGigabyteUploadMemory streams 1 GiB through the mxedge process and
// checks its peak resident memory grows by less than 16 MiB.
func TestGigabyteUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB upload")
	}
	const size = 1 << 30
	var gotBytes atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		gotBytes.Store(n)
		io.WriteString(w, `{"content_uri":"mxc://example.org/big"}`)
	}))
	defer up.Close()
	cfg := testkit.TempFile(t, "c.yaml", mxedgeConfig(up.URL, "limits: {max_body_size: 2G}\nlog: {access: false}\n"))
	p := testkit.StartMxedge(t, "upload", []string{"run", "--config", cfg}, "http")
	url := "http://" + p.Addr("http") + "/_matrix/media/v3/upload"
	// Warm up: one small request, so that pools and buffers exist before measuring.
	http.Post(url, "application/octet-stream", strings.NewReader("warm"))
	rss0, hwm0 := rssKB(t, p.Pid())
	req, _ := http.NewRequest("POST", url, &zeroReader{n: size})
	req.ContentLength = size
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || gotBytes.Load() != size {
		t.Fatalf("status %d, upstream got %d bytes, want %d", res.StatusCode, gotBytes.Load(), size)
	}
	rss1, hwm1 := rssKB(t, p.Pid())
	growth := hwm1 - max(hwm0, rss0)
	t.Logf("1 GiB upload: RSS %d KiB → %d KiB, peak %d KiB → %d KiB (growth %d KiB)", rss0, rss1, hwm0, hwm1, growth)
	if growth > 16<<10 {
		t.Errorf("peak RSS grew by %d KiB during a 1 GiB upload, want < 16 MiB", growth)
	}
}

func TestRedirectHandler(t *testing.T) {
	h := redirectHandler(":8443", func() []string { return []string{"matrix.example.org", "example.org"} })
	tests := []struct{ target, host, want string }{
		{"/_matrix/client/versions?x=1", "matrix.example.org", "https://matrix.example.org:8443/_matrix/client/versions?x=1"},
		{"/a%2Fb", "Example.org:80", "https://Example.org:8443/a%2Fb"},
		{"http://evil.example/x?y=1", "evil.example", "https://matrix.example.org:8443/x?y=1"},
		{"/", "attacker.example", "https://matrix.example.org:8443/"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", tt.target, nil)
		r.Host = tt.host
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != tt.want {
			t.Errorf("%s (Host %s): %d %q, want 308 %q", tt.target, tt.host, rec.Code, rec.Header().Get("Location"), tt.want)
		}
	}
}
