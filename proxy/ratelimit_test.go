package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

func loginReq(user string) string {
	body := fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":%q},"password":"pw"}`, user)
	return fmt.Sprintf("POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// TestRateLimit429 drives the whole chain: a burst passes, the next request
// gets the exact 429 (body, Retry-After, CORS) without reaching the upstream,
// and after retry_after_ms it passes again.
func TestRateLimit429(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	e := newEdgeWith(t, `rate_limits:
  exempt: {addresses: []}
  rc_login:
    address: {per_second: 0.5, burst_count: 3}
    account: {per_second: 0.001, burst_count: 100}
    failed_attempts: {per_second: 0.001, burst_count: 100}
`, nil, clock.Now)
	for i := range 3 {
		if res := e.raw(t, loginReq(fmt.Sprintf("user%d", i))); res.StatusCode != 200 {
			t.Fatalf("request %d of the burst: status %d", i, res.StatusCode)
		}
	}
	res := e.raw(t, loginReq("user3"))
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", res.StatusCode)
	}
	code, body := matrixError(t, res)
	if code != "M_LIMIT_EXCEEDED" || body["error"] != "Too many requests" {
		t.Errorf("body %v", body)
	}
	ms, ok := body["retry_after_ms"].(float64)
	if !ok || ms != 2000 {
		t.Errorf("retry_after_ms = %v, want 2000 (one token at 0.5/s)", body["retry_after_ms"])
	}
	if got := res.Header.Get("Retry-After"); got != strconv.Itoa(int(ms+999)/1000) {
		t.Errorf("Retry-After = %q, want %d", got, int(ms+999)/1000)
	}
	wantCORSOnce(t, res.Header)
	if n := len(e.hs.requests()); n != 3 {
		t.Errorf("upstream saw %d requests, want 3", n)
	}
	clock.Add(time.Duration(ms) * time.Millisecond)
	if res := e.raw(t, loginReq("user4")); res.StatusCode != 200 {
		t.Errorf("after retry_after_ms: status %d, want 200", res.StatusCode)
	}
}

// TestLoginBodyByteExact checks the limiter's peek at the login body leaves
// the bytes the upstream receives untouched.
func TestLoginBodyByteExact(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	e := newEdgeWith(t, "rate_limits: {exempt: {addresses: []}}\n", nil, clock.Now)
	body := `{ "type" : "m.login.password", "identifier": {"type": "m.id.user", "user": "@Alice:Example.org"}, "password": "p\u00e4ss", "x": [1,2,3] }` + "\n"
	for _, te := range []string{"length", "chunked"} {
		req := "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		if te == "length" {
			req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
		} else {
			req += fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		}
		if res := e.raw(t, req); res.StatusCode != 200 {
			t.Fatalf("%s: status %d", te, res.StatusCode)
		}
		want, n := sha(strings.NewReader(body))
		if got := e.hs.last(t); got.BodySHA != want || got.BodyLen != n {
			t.Errorf("%s: upstream got %d bytes sha %s, want %d bytes sha %s", te, got.BodyLen, got.BodySHA, n, want)
		}
	}
}

// TestSpoofedForwardingDoesNotChangeKey: an untrusted peer cannot pick its
// bucket with X-Forwarded-For.
func TestSpoofedForwardingDoesNotChangeKey(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
	e := newEdgeWith(t, "rate_limits: {exempt: {addresses: []}, rc_registration: {per_second: 0.001, burst_count: 2}}\n",
		func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, `{"user_id":"@a:b"}`)
		}, clock.Now)
	statuses := []int{}
	for i := range 4 {
		req := fmt.Sprintf("POST /_matrix/client/v3/register HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.%d\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", i)
		statuses = append(statuses, e.raw(t, req).StatusCode)
	}
	if statuses[2] != 429 || statuses[3] != 429 {
		t.Errorf("statuses %v: spoofed X-Forwarded-For escaped the limit", statuses)
	}
}
