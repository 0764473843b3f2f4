package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/ratelimit"
)

// TestParsedFormsReachEveryConsumer wires a loaded configuration as serve
// does and checks that each consumer (proxy, ratelimit, cors, wellknown)
// acts on the value config validated: IPv4-mapped entries in every list of addresses match the (unmapped)
// loopback peer and forwarded client, and an origin written with upper case
// and a trailing "/" allows what browsers send. Before config parsed each
// rule once, this file was refused (trusted_proxies, allow_from and
// allow_origins) although rate_limits.exempt.addresses and cors.New
// accepted the same spellings.
func TestParsedFormsReachEveryConsumer(t *testing.T) {
	var mu sync.Mutex
	var seenXFF []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenXFF = append(seenXFF, r.Header.Get("X-Forwarded-For"))
		mu.Unlock()
		io.WriteString(w, `{}`)
	}))
	defer up.Close()
	path := filepath.Join(t.TempDir(), "mxedge.yaml")
	doc := fmt.Sprintf(`server_name: example.org
upstream: %s
public_baseurl: https://matrix.example.org
trusted_proxies: ["::ffff:127.0.0.1"]
admin_api:
  allow_from: ["::ffff:127.0.0.0/104"]
cors:
  allow_origins: ["HTTPS://App.Example.org/"]
rate_limits:
  exempt: {addresses: ["::ffff:203.0.113.7"]}
`, up.URL)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	limiter, err := ratelimit.New(cfg.RateLimits, ratelimit.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer limiter.Close()
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	front := httptest.NewServer(srv.Handler(proxy.ListenerClient, false)) // the peer is 127.0.0.1
	defer front.Close()

	var body string
	do := func(method, path string, h map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, front.URL+path, strings.NewReader(`{"type":"m.login.password"}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		return res
	}

	// public_baseurl: the well-known document carries the parsed base URL.
	do("GET", "/.well-known/matrix/client", nil)
	if want := `{"m.homeserver":{"base_url":"https://matrix.example.org"}}`; body != want {
		t.Errorf("public_baseurl: got client well-known %s, want %s", body, want)
	}

	// trusted_proxies: the loopback peer is trusted, so the client is the forwarded address.
	mu.Lock()
	seenXFF = nil
	mu.Unlock()
	do("GET", "/_matrix/client/versions", map[string]string{"X-Forwarded-For": "198.51.100.9"})
	mu.Lock()
	got := strings.Join(seenXFF, ",")
	mu.Unlock()
	if got != "198.51.100.9" {
		t.Errorf("trusted_proxies ::ffff:127.0.0.1: upstream saw X-Forwarded-For %q, want 198.51.100.9", got)
	}

	// admin_api.allow_from: the loopback peer may reach the admin API.
	if res := do("GET", "/_synapse/admin/v1/server_version", nil); res.StatusCode != http.StatusOK {
		t.Errorf("admin_api.allow_from ::ffff:127.0.0.0/104: got %d, want 200 from the upstream", res.StatusCode)
	}

	// rate_limits.exempt.addresses: the exempt client is never limited, its neighbour is.
	limited := map[string]int{}
	for _, client := range []string{"203.0.113.7", "203.0.113.8"} {
		for range 10 {
			if do("POST", "/_matrix/client/v3/login", map[string]string{"X-Forwarded-For": client}).StatusCode == http.StatusTooManyRequests {
				limited[client]++
			}
		}
	}
	if limited["203.0.113.7"] != 0 || limited["203.0.113.8"] == 0 {
		t.Errorf("rate_limits.exempt.addresses ::ffff:203.0.113.7: got 429s %v, want none for 203.0.113.7 and some for 203.0.113.8", limited)
	}

	// cors.allow_origins: the Origin browsers send is allowed.
	res := do("GET", "/_matrix/client/versions", map[string]string{"Origin": "https://app.example.org"})
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.org" {
		t.Errorf("cors.allow_origins HTTPS://App.Example.org/: got Allow-Origin %q, want https://app.example.org", got)
	}
}
