package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// TestTwoInstancesShareRedisLimits runs two mxedge processes on one real
// redis-server: a login burst spent on one is spent on both; when Redis dies
// both fall back to local limits and keep answering; when it returns they
// use it again.
func TestTwoInstancesShareRedisLimits(t *testing.T) {
	redis := testkit.StartRedis(t, testkit.ServePorts)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "{}")
	}))
	defer up.Close()
	cfg := testkit.TempFile(t, "c.yaml", fmt.Sprintf(`server_name: example.org
upstream: %s
listen: {http: "127.0.0.1:0", ops: "127.0.0.1:0"}
rate_limits:
  store: redis
  redis: {url: "%s", timeout: 200ms, on_error: local}
  exempt: {addresses: []}
  rc_login:
    address: {per_second: 0.001, burst_count: 4}
    account: {per_second: 0.001, burst_count: 1000}
    failed_attempts: {per_second: 0.001, burst_count: 1000}
`, up.URL, redis.URL()))
	a := testkit.StartMxedge(t, "A", []string{"run", "--config", cfg}, "http")
	b := testkit.StartMxedge(t, "B", []string{"run", "--config", cfg}, "http")
	login := func(p *testkit.Proc, user string) int {
		body := fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":%q},"password":"x"}`, user)
		res, err := http.Post("http://"+p.Addr("http")+"/_matrix/client/v3/login", "application/json", strings.NewReader(body))
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
	na, nb := a.Mark(), b.Mark()
	redis.Stop()
	if s := login(a, "v0"); s != 200 {
		t.Errorf("A with redis down: status %d, want 200 (on_error: local)", s)
	}
	if s := login(b, "v1"); s != 200 {
		t.Errorf("B with redis down: status %d, want 200 (on_error: local)", s)
	}
	failing := testkit.Msg("rate limit store failing, applying rate_limits.redis.on_error")
	a.WaitLogAfter(t, na, logTimeout, "A's store failure log", failing)
	b.WaitLogAfter(t, nb, logTimeout, "B's store failure log", failing)

	// Redis returns (empty: the shared bucket is new) and the instances use it again.
	redis.Restart(t)
	na = a.Mark()
	deadline := time.Now().Add(20 * time.Second)
	for recovered := false; !recovered; {
		login(a, "w")
		recovered = len(a.FindAfter(na, testkit.Msg("rate limit store recovered"))) > 0
		if time.Now().After(deadline) {
			t.Fatal("A did not go back to redis")
		}
		time.Sleep(100 * time.Millisecond) // the limiter probes a failing store once a second
	}
}
