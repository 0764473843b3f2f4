package testkit_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// outcome is what a helper did to the test it was given.
type outcome struct {
	failed, skipped bool
	msg             string
}

// fakeTB records Errorf, Fatalf and Skipf instead of acting on the real
// test; Fatalf and Skipf end the goroutine, as they do in a test.
type fakeTB struct {
	testing.TB
	mu sync.Mutex
	o  outcome
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.o.failed, f.o.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.o.skipped, f.o.msg = true, fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn with a fakeTB over t on its own goroutine and returns what
// fn did to it.
func run(t *testing.T, fn func(tb testing.TB)) outcome {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.o
}

func TestRequire(t *testing.T) {
	const absent = "mxedge-testkit-no-such-program"
	tests := []struct {
		name        string
		env         string
		wantFailed  bool
		wantSkipped bool
	}{
		{name: "skip", env: "", wantSkipped: true},
		{name: "required", env: "1", wantFailed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(testkit.RequireEnv, tt.env)
			got := run(t, func(tb testing.TB) { testkit.Require(tb, absent) })
			if got.failed != tt.wantFailed || got.skipped != tt.wantSkipped || !strings.Contains(got.msg, absent) {
				t.Errorf("got %+v, want failed %v, skipped %v, naming %s", got, tt.wantFailed, tt.wantSkipped, absent)
			}
		})
	}
	if got := testkit.Require(t, "go"); !filepath.IsAbs(got) {
		t.Errorf("Require(go): got %q, want an absolute path", got)
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	c := testkit.NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Add(time.Second)
				c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(800*time.Second); !got.Equal(want) {
		t.Errorf("after 800 Add(1s): got %v, want %v", got, want)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("after Set: got %v, want %v", got, start)
	}
	var zero testkit.Clock
	if got := zero.Now(); !got.IsZero() {
		t.Errorf("zero Clock: got %v, want the zero time", got)
	}
}

func TestBuffer(t *testing.T) {
	var b testkit.Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { log.Info("hello", "i", i) })
	}
	wg.Wait()
	if got := strings.Count(b.String(), "msg=hello"); got != 8 {
		t.Errorf("got %d lines, want 8:\n%s", got, b.String())
	}
}

func TestLogRecorder(t *testing.T) {
	var r testkit.LogRecorder
	log := r.Logger().With("component", "certmagic")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { log.Warn("served key authentication", "challenge", "http-01", "n", i) })
	}
	wg.Wait()
	log.WithGroup("req").Info("done", "status", 200, slog.Group("up", "ms", 12))

	if got := len(r.Lines()); got != 9 {
		t.Fatalf("got %d lines, want 9", got)
	}
	tests := []struct {
		name  string
		match func(testkit.Line) bool
		want  int
	}{
		{"message and attributes", testkit.Msg("served key authentication", "challenge", "http-01", "component", "certmagic"), 8},
		{"an attribute value", testkit.Msg("served key authentication", "n", "3"), 1},
		{"another value", testkit.Msg("served key authentication", "challenge", "tls-alpn-01"), 0},
		{"absent attribute", testkit.Msg("served key authentication", "identifier", ""), 0},
		{"attributes only", testkit.Attrs("component", "certmagic"), 9},
		{"group", testkit.Attrs("req.status", "200", "req.up.ms", "12", "component", "certmagic"), 1},
		{"level", testkit.Attrs("level", "WARN"), 8},
		{"contains key=value", testkit.Contains("challenge=http"), 8},
		{"contains message", testkit.Contains("key auth"), 8},
		{"contains nothing", testkit.Contains("nope"), 0},
	}
	for _, tt := range tests {
		if got := len(r.Find(tt.match)); got != tt.want {
			t.Errorf("%s: got %d lines, want %d", tt.name, got, tt.want)
		}
	}
}

func TestFiles(t *testing.T) {
	p := testkit.TempFile(t, "c.yaml", "server_name: example.org\n")
	if b, err := os.ReadFile(p); err != nil || string(b) != "server_name: example.org\n" || filepath.Base(p) != "c.yaml" {
		t.Errorf("TempFile: %s holds %q, %v", p, b, err)
	}
	testkit.WriteFile(t, p, "x")
	if b, _ := os.ReadFile(p); string(b) != "x" {
		t.Errorf("WriteFile: got %q, want x", b)
	}
	j := testkit.TempJSON(t, "c.json", map[string]any{"upstream": "http://u"})
	if b, _ := os.ReadFile(j); string(b) != "{\n  \"upstream\": \"http://u\"\n}" {
		t.Errorf("TempJSON: got %q", b)
	}
	testkit.WriteJSON(t, j, []int{1})
	if b, _ := os.ReadFile(j); string(b) != "[\n  1\n]" {
		t.Errorf("WriteJSON: got %q", b)
	}
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.golden")
	if got := run(t, func(tb testing.TB) { testkit.Golden(tb, path, []byte("a\n"), false) }); !got.failed {
		t.Errorf("missing golden file: got %+v, want a failure", got)
	}
	if want := testkit.Golden(t, path, []byte("a\nb\n"), true); string(want) != "a\nb\n" {
		t.Errorf("update: got %q back", want)
	}
	testkit.Golden(t, path, []byte("a\nb\n"), false)
	got := run(t, func(tb testing.TB) { testkit.Golden(tb, path, []byte("a\nc\n"), false) })
	if !got.failed || !strings.Contains(got.msg, `line 2:`) || !strings.Contains(got.msg, `"c"`) {
		t.Errorf("a different line: got %+v, want a failure naming line 2", got)
	}
	got = run(t, func(tb testing.TB) { testkit.Golden(tb, path, []byte("a\nb"), false) })
	if !got.failed || !strings.Contains(got.msg, "(none)") {
		t.Errorf("a missing final newline: got %+v, want a failure showing it", got)
	}
}

func TestPorts(t *testing.T) {
	r := testkit.TestkitPorts
	in := func(p int) bool { return p >= r.First && p <= r.Last }
	if p := testkit.FreePort(t, r); !in(p) {
		t.Errorf("FreePort: got %d, want in %d-%d", p, r.First, r.Last)
	}
	ports, release := testkit.ReservePorts(t, r, 3)
	seen := map[int]bool{}
	for _, p := range ports {
		if !in(p) || seen[p] {
			t.Errorf("ReservePorts: got %v, want 3 distinct ports in %d-%d", ports, r.First, r.Last)
		}
		seen[p] = true
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			ln.Close()
			t.Errorf("port %d bindable while reserved", p)
		}
	}
	release()
	for _, p := range ports {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Errorf("port %d after release: %v", p, err)
			continue
		}
		ln.Close()
	}
}

// ping sends PING to the Redis at addr and returns its answer.
func ping(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestRedis(t *testing.T) {
	r := testkit.StartRedis(t, testkit.TestkitPorts)
	if want := "redis://" + r.Addr() + "/0"; r.URL() != want {
		t.Errorf("URL: got %q, want %q", r.URL(), want)
	}
	if got, err := ping(r.Addr()); got != "+PONG\r\n" {
		t.Fatalf("PING: got %q, %v, want +PONG", got, err)
	}
	r.Stop()
	if _, err := ping(r.Addr()); err == nil {
		t.Fatal("PING after Stop: got an answer, want the connection refused")
	}
	r.Stop() // a second Stop does nothing
	r.Restart(t)
	if got, err := ping(r.Addr()); got != "+PONG\r\n" {
		t.Fatalf("PING after Restart: got %q, %v, want +PONG", got, err)
	}
}

func TestStartMxedge(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"versions":["v1.11"]}`)
	}))
	defer up.Close()
	p := testkit.StartMxedge(t, "kit", []string{"run", "--upstream", up.URL, "--server-name", "example.org",
		"--listen", "127.0.0.1:0", "--listen-ops", "127.0.0.1:0"}, "http", "ops")
	if p.Pid() <= 0 || p.Started().IsZero() || time.Since(p.Started()) > time.Minute {
		t.Errorf("Pid %d, Started %v: want a process started just now", p.Pid(), p.Started())
	}
	for _, l := range []string{"http", "ops"} {
		if _, err := net.ResolveTCPAddr("tcp", p.Addr(l)); err != nil || p.Addr(l) == "127.0.0.1:0" {
			t.Errorf("Addr(%s): got %q, want a bound loopback address", l, p.Addr(l))
		}
	}
	if got := p.Find(testkit.Msg("listening")); len(got) != 2 {
		t.Errorf("Find listening: got %d lines, want 2", len(got))
	}
	mark := p.Mark()
	if got := p.FindAfter(mark, testkit.Msg("listening")); len(got) != 0 {
		t.Errorf("FindAfter(Mark()): got %v, want nothing", got)
	}
	res, err := http.Get("http://" + p.Addr("http") + "/_matrix/client/versions")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("versions through mxedge: status %d, want 200", res.StatusCode)
	}
	if got := p.Metric(t, "go_goroutines"); got < 1 {
		t.Errorf("go_goroutines: got %v, want > 0", got)
	}
	got := run(t, func(tb testing.TB) {
		p.WaitLogAfter(tb, p.Mark(), 100*time.Millisecond, "a line never logged", testkit.Msg("never logged"))
	})
	if !got.failed || !strings.Contains(got.msg, "not logged after") {
		t.Errorf("WaitLogAfter on a silent process: got %+v, want a timeout failure", got)
	}
	p.Stop(t)
	got = run(t, func(tb testing.TB) { p.WaitLog(tb, time.Minute, "a line never logged", testkit.Msg("never logged")) })
	if !got.failed || !strings.Contains(got.msg, "exited") {
		t.Errorf("WaitLog after exit: got %+v, want an exit failure", got)
	}
}

// RawUpstream: the n-th request reaches answer after its body, heads are kept
// as sent, a close after an answer is told on Closed, and each connection
// is counted.
func TestRawUpstream(t *testing.T) {
	u := testkit.NewRawUpstream(t, nil, func(n int, req *http.Request, c net.Conn) bool {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", n)
		return req.Header.Get("X-Close") != ""
	})
	if !strings.HasPrefix(u.URL(), "http://127.0.0.1:") || u.URL() != "http://"+u.Addr() {
		t.Errorf("URL %q, Addr %q", u.URL(), u.Addr())
	}
	c, err := net.Dial("tcp", u.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	heads := []string{
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",
		"GET /b HTTP/1.1\r\nHost: x\r\nX-Close: 1\r\n\r\n",
	}
	io.WriteString(c, heads[0]+"abc"+heads[1])
	got, _ := io.ReadAll(c)
	if want := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"; string(got) != want {
		t.Errorf("answers %q, want %q", got, want)
	}
	<-u.Closed
	if h := u.Heads(); len(h) != 2 || h[0] != heads[0] || h[1] != heads[1] {
		t.Errorf("heads %q, want %q", h, heads)
	}
	if h := u.LastHead(t); h != heads[1] {
		t.Errorf("last head %q", h)
	}
	if n := u.Accepts(); n != 1 {
		t.Errorf("%d accepts, want 1", n)
	}
}
