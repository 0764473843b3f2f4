package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// fakeUpstream is a homeserver that names itself in every answer and counts
// what reached it: readiness probes (/health) and everything else.
type fakeUpstream struct {
	*httptest.Server
	probes  atomic.Int64
	traffic atomic.Int64
	probed  chan struct{} // one signal per probe, dropped when full
}

func newFakeUpstream(t *testing.T, name string) *fakeUpstream {
	f := &fakeUpstream{probed: make(chan struct{}, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			f.probes.Add(1)
			select {
			case f.probed <- struct{}{}:
			default:
			}
			io.WriteString(w, "OK")
			return
		}
		f.traffic.Add(1)
		io.WriteString(w, `{"upstream":"`+name+`"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

// forget drops the probes signalled so far: probe then waits for a new one.
func (f *fakeUpstream) forget() {
	for len(f.probed) > 0 {
		<-f.probed
	}
}

// nextProbe waits until f is probed after the call.
func (f *fakeUpstream) nextProbe(t *testing.T, what string) {
	t.Helper()
	f.forget()
	f.probe(t, what)
}

// probe takes one probe signal of f, waiting for it a bounded time (the probe
// interval is 5s).
func (f *fakeUpstream) probe(t *testing.T, what string) {
	t.Helper()
	select {
	case <-f.probed:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no readiness probe within 20s", what)
	}
}

// TestReloadAllOrNothing reloads a running mxedge on upstream A with a
// configuration naming upstream B whose rate_limits.rules config.Validate
// accepts but the limiter refuses (more rules than it has categories): nothing
// of it may apply. A valid reload to B then moves traffic and readiness.
func TestReloadAllOrNothing(t *testing.T) {
	a, b := newFakeUpstream(t, "A"), newFakeUpstream(t, "B")
	path := testkit.TempFile(t, "c.yaml", "")
	write := func(upstream, extra string) {
		testkit.WriteFile(t, path, fmt.Sprintf("server_name: example.org\nupstream: %s\nlisten: {http: \"127.0.0.1:0\", ops: \"127.0.0.1:0\"}\n%s", upstream, extra))
	}
	write(a.URL, "rate_limits: {enabled: false}\n")
	p := testkit.StartMxedge(t, "reload all or nothing", []string{"run", "--config", path}, "http", "ops")
	front, ops := "http://"+p.Addr("http"), "http://"+p.Addr("ops")
	client := &http.Client{Timeout: 10 * time.Second}
	answeredBy := func() string {
		t.Helper()
		_, body := getBody(t, client, front+"/_matrix/client/versions")
		return body
	}
	readyz := func() int {
		t.Helper()
		status, _ := getBody(t, client, ops+"/readyz")
		return status
	}
	lastReloadOK := func() float64 {
		t.Helper()
		return p.Metric(t, "mxedge_config_last_reload_successful")
	}
	// readyOn waits until /readyz answers 200 after a probe of f (one since
	// the last forget).
	readyOn := func(f *fakeUpstream, what string) {
		t.Helper()
		f.probe(t, what)
		for deadline := time.Now().Add(10 * time.Second); readyz() != http.StatusOK; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz not 200 within 10s of a good probe", what)
			}
			f.nextProbe(t, what)
		}
	}
	readyOn(a, "at start")
	if got := answeredBy(); got != `{"upstream":"A"}` {
		t.Fatalf("at start: answered %s, want A", got)
	}

	// Upstream B plus 300 admin rules: config.Load accepts the file, the
	// limiter's Prepare refuses it.
	var rules strings.Builder
	for i := range 300 {
		fmt.Fprintf(&rules, "    - {name: r%d, path: /r%d, per_second: 1, burst_count: 1}\n", i, i)
	}
	write(b.URL, "rate_limits:\n  enabled: false\n  rules:\n"+rules.String())
	if _, err := config.Load(config.LoadOptions{Path: path}); err != nil {
		t.Fatalf("the refused reload's file must pass config.Load: %v", err)
	}
	n := p.Mark()
	p.Signal(t, syscall.SIGHUP)
	p.WaitLogAfter(t, n, logTimeout, "a reload problem naming rate_limits.rules", func(l testkit.Line) bool {
		return l.Str("msg") == "reload failed, keeping the running configuration" && strings.Contains(l.Str("error"), "rate_limits.rules")
	})
	if got := answeredBy(); got != `{"upstream":"A"}` {
		t.Errorf("after the refused reload: answered %s, want A", got)
	}
	if got := b.traffic.Load(); got != 0 {
		t.Errorf("after the refused reload: %d requests reached B, want 0", got)
	}
	a.forget()
	readyOn(a, "after the refused reload, A")
	if got := b.probes.Load(); got != 0 {
		t.Errorf("after the refused reload: B probed %d times, want 0", got)
	}
	if got := lastReloadOK(); got != 0 {
		t.Errorf("after the refused reload: mxedge_config_last_reload_successful %v, want 0", got)
	}

	// A valid reload to B, with a setting only a restart applies.
	write(b.URL, "rate_limits: {enabled: false}\ntimeouts: {idle: 99s}\n")
	n = p.Mark()
	p.Signal(t, syscall.SIGHUP)
	p.WaitLogAfter(t, n, logTimeout, "the reload log", testkit.Msg("configuration reloaded"))
	p.WaitLogAfter(t, n, logTimeout, "a restart warning naming timeouts.idle", func(l testkit.Line) bool {
		return l.Str("level") == "WARN" && l.Str("key") == "timeouts.idle"
	})
	if got := answeredBy(); got != `{"upstream":"B"}` {
		t.Errorf("after the good reload: answered %s, want B", got)
	}
	readyOn(b, "after the good reload, B")
	probesA := a.probes.Load()
	b.nextProbe(t, "after the good reload, B again")
	if got := a.probes.Load(); got != probesA {
		t.Errorf("after the good reload: A probed %d more times, want 0", got-probesA)
	}
	if got := lastReloadOK(); got != 1 {
		t.Errorf("after the good reload: mxedge_config_last_reload_successful %v, want 1", got)
	}
	p.Stop(t)
}

func TestSplitRestart(t *testing.T) {
	base := func() *config.Config {
		c := config.Defaults()
		c.ServerName = "example.org"
		return c
	}
	tests := []struct {
		name      string
		running   func(c *config.Config)
		next      func(c *config.Config)
		wantKeys  []string
		wantApply func(c *config.Config) bool // the applied value, checked after the split
	}{
		{name: "nothing", next: func(c *config.Config) {}},
		{
			name: "reloadable only",
			next: func(c *config.Config) {
				c.Upstream = "http://b:8008"
				c.Log.Level = "debug"
				c.RateLimits.Redis.OnError = "deny"
			},
			wantApply: func(c *config.Config) bool { return c.Upstream == "http://b:8008" && c.Log.Level == "debug" },
		},
		{
			name: "listeners, server limits, log format",
			next: func(c *config.Config) {
				c.Listen.HTTP, c.Listen.Ops = ":1", ":2"
				c.Timeouts.ReadHeader, c.Timeouts.Idle, c.Limits.MaxHeaderBytes = 1, 2, 3
				c.Log.Format, c.Log.Level = "text", "debug"
			},
			wantKeys: []string{"listen.http", "listen.ops", "timeouts.read_header", "timeouts.idle", "limits.max_header_bytes", "log.format"},
			wantApply: func(c *config.Config) bool {
				d := config.Defaults()
				return c.Listen == d.Listen && c.Log.Format == d.Log.Format && c.Log.Level == "debug"
			},
		},
		{
			name:      "tls mode: the whole section waits",
			next:      func(c *config.Config) { c.TLS.Mode, c.TLS.CertFile, c.TLS.HSTS = config.TLSModeFiles, "/c.pem", 5 },
			wantKeys:  []string{"tls.mode", "tls.hsts", "tls.cert_file"},
			wantApply: func(c *config.Config) bool { return c.TLS.Mode == config.TLSModeOff && c.TLS.CertFile == "" },
		},
		{
			name:    "acme: account and storage wait, domains apply",
			running: func(c *config.Config) { c.TLS.Mode = config.TLSModeACME },
			next: func(c *config.Config) {
				c.TLS.Email, c.TLS.Storage, c.TLS.Domains = "a@b.org", "/x", []string{"m.example.org"}
			},
			wantKeys:  []string{"tls.email", "tls.storage"},
			wantApply: func(c *config.Config) bool { return slices.Equal(c.TLS.Domains, []string{"m.example.org"}) },
		},
		{
			name:    "files: new files apply, the poll interval waits",
			running: func(c *config.Config) { c.TLS.Mode = config.TLSModeFiles },
			next: func(c *config.Config) {
				c.TLS.CertFile, c.TLS.Email, c.TLS.RenewCheckInterval = "/new.pem", "a@b.org", 1
			},
			wantKeys:  []string{"tls.renew_check_interval"},
			wantApply: func(c *config.Config) bool { return c.TLS.CertFile == "/new.pem" },
		},
		{
			name: "rate-limit store",
			next: func(c *config.Config) {
				c.RateLimits.Store = config.RateLimitStoreRedis
				c.RateLimits.Redis.URL = "redis://x:1/0"
			},
			wantKeys:  []string{"rate_limits.store"},
			wantApply: func(c *config.Config) bool { return c.RateLimits.Store == config.RateLimitStoreMemory },
		},
		{
			name:    "redis connection",
			running: func(c *config.Config) { c.RateLimits.Store = config.RateLimitStoreRedis },
			next: func(c *config.Config) {
				c.RateLimits.Redis.URL, c.RateLimits.Redis.KeySecret, c.RateLimits.Redis.OnError = "redis://x:1/0", "s", "deny"
			},
			wantKeys: []string{"rate_limits.redis.url", "rate_limits.redis.key_secret"},
			wantApply: func(c *config.Config) bool {
				return c.RateLimits.Redis.URL == config.DefaultRedisURL && c.RateLimits.Redis.OnError == "deny"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running := base()
			if tt.running != nil {
				tt.running(running)
			}
			next := *running
			tt.next(&next)
			nextBefore := next
			apply, keys := splitRestart(running, &next)
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys: got %q, want %q", keys, tt.wantKeys)
			}
			if tt.wantApply != nil && !tt.wantApply(apply) {
				t.Errorf("applied configuration: got %+v", *apply)
			}
			if next.TLS.Mode != nextBefore.TLS.Mode || next.Listen != nextBefore.Listen || next.RateLimits.Store != nextBefore.RateLimits.Store {
				t.Error("splitRestart modified next")
			}
			if again, keys := splitRestart(running, apply); len(keys) != 0 || again.Listen != running.Listen {
				t.Errorf("the applied configuration against the running one: got keys %q, want none", keys)
			}
		})
	}
}
