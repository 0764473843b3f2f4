package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// redisPort is this test's loopback port (the ratelimit range, 17000-17499).
const redisPort = 17460

// startRedis runs a real redis-server on loopback and waits until it accepts.
func startRedis(t *testing.T) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("MXEDGE_REQUIRE_COMPONENTS") == "1" {
			t.Fatal("redis-server not in PATH")
		}
		t.Skip("redis-server not in PATH")
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", redisPort))
		if err == nil {
			io.WriteString(c, "PING\r\n")
			buf := make([]byte, 7)
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoInstancesShareRedisLimits runs two mxedge processes on one real
// redis-server: a login burst spent on one is spent on both; when Redis dies
// both fall back to local limits and keep answering; when it returns they
// use it again.
func TestTwoInstancesShareRedisLimits(t *testing.T) {
	redis := startRedis(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "{}")
	}))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	doc := fmt.Sprintf(`server_name: example.org
upstream: %s
listen: {http: "127.0.0.1:0", ops: "127.0.0.1:0"}
rate_limits:
  store: redis
  redis: {url: "redis://127.0.0.1:%d/0", timeout: 200ms, on_error: local}
  exempt: {addresses: []}
  rc_login:
    address: {per_second: 0.001, burst_count: 4}
    account: {per_second: 0.001, burst_count: 1000}
    failed_attempts: {per_second: 0.001, burst_count: 1000}
`, up.URL, redisPort)
	os.WriteFile(cfg, []byte(doc), 0o600)
	a := start(t, []string{"http"}, "run", "--config", cfg)
	b := start(t, []string{"http"}, "run", "--config", cfg)
	login := func(p *proc, user string) int {
		body := fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":%q},"password":"x"}`, user)
		res, err := http.Post("http://"+p.addr("http")+"/_matrix/client/v3/login", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	// Four logins from 127.0.0.1, alternating between the instances, spend
	// the one shared burst of 4; the fifth is refused by either instance.
	var got []int
	for i := range 4 {
		p := a
		if i%2 == 1 {
			p = b
		}
		got = append(got, login(p, fmt.Sprintf("u%d", i)))
	}
	got = append(got, login(a, "u4"), login(b, "u5"))
	if want := "[200 200 200 200 429 429]"; fmt.Sprint(got) != want {
		t.Fatalf("statuses %v, want %s: the instances do not share the limit", got, want)
	}

	// Redis dies: both instances fall back to their local buckets (a fresh
	// burst of 4 each) instead of failing.
	na, nb := a.logCount(), b.logCount()
	redis.Process.Kill()
	redis.Wait()
	if s := login(a, "v0"); s != 200 {
		t.Errorf("A with redis down: status %d, want 200 (on_error: local)", s)
	}
	if s := login(b, "v1"); s != 200 {
		t.Errorf("B with redis down: status %d, want 200 (on_error: local)", s)
	}
	a.waitLog(t, "rate limit store failing, applying rate_limits.redis.on_error", na)
	b.waitLog(t, "rate limit store failing, applying rate_limits.redis.on_error", nb)

	// Redis returns (empty: the shared bucket is new) and the instances use it again.
	startRedis(t)
	na = a.logCount()
	deadline := time.Now().Add(20 * time.Second)
	for recovered := false; !recovered; {
		login(a, "w")
		a.mu.Lock()
		for _, l := range a.lines[na:] {
			recovered = recovered || l["msg"] == "rate limit store recovered"
		}
		a.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("A did not go back to redis")
		}
		time.Sleep(100 * time.Millisecond) // the limiter probes a failing store once a second
	}
}
