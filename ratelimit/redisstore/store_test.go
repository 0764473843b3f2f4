package redisstore

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/testkit"
)

func redisCfg(url, onError string) config.RateLimits {
	rl := config.Defaults().RateLimits
	rl.Exempt.Addresses = nil
	rl.Store = config.RateLimitStoreRedis
	rl.Redis.URL = url
	rl.Redis.Timeout = config.Duration(500 * time.Millisecond)
	rl.Redis.OnError = onError
	return rl
}

func newRedisLimiter(t testing.TB, cfg config.RateLimits, clk *testkit.Clock, log io.Writer) (*ratelimit.Limiter, *prometheus.Registry) {
	t.Helper()
	st, err := New(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o := ratelimit.Options{Store: st, Registerer: reg}
	if clk != nil {
		o.Now = clk.Now
	}
	if log != nil {
		o.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	l, err := ratelimit.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, reg
}

const sendPath = "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t"

func send(l *ratelimit.Limiter, token string) ratelimit.Decision {
	r := httptest.NewRequest("PUT", sendPath, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return l.Check(r, netip.MustParseAddr("192.0.2.1"), ratelimit.Of(ratelimit.Message))
}

func TestTwoLimitersShareOneLimit(t *testing.T) {
	srv := testkit.StartRedis(t, testkit.RateLimitPorts)
	cfg := redisCfg(srv.URL(), config.RedisOnErrorDeny)
	a, _ := newRedisLimiter(t, cfg, nil, nil)
	b, _ := newRedisLimiter(t, cfg, nil, nil)
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if d := send(l, "syt_shared"); !d.Allowed {
			t.Fatalf("message %d: got %+v, want allowed", i, d)
		}
	}
	for _, l := range []*ratelimit.Limiter{a, b} {
		d := send(l, "syt_shared")
		iv := ratelimit.NewLimit(0.2, 10).Interval()
		if d.Allowed || d.Status != 429 || d.RetryAfter <= iv-time.Second || d.RetryAfter > iv {
			t.Fatalf("11th message: got %+v, want 429 with RetryAfter in (%v, %v]", d, iv-time.Second, iv)
		}
	}
	if d := send(b, "syt_other"); !d.Allowed {
		t.Fatalf("other token: got %+v, want allowed", d)
	}
	// No raw token in Redis.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	keys, err := c.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("redis keys: got %q, want 2", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "syt_") || !strings.HasPrefix(k, "mxedge:rl:rc_message:") {
			t.Fatalf("redis key %q: want mxedge:rl:rc_message:<hash> without the token", k)
		}
	}
}

func TestAllOrNothing(t *testing.T) {
	srv := testkit.StartRedis(t, testkit.RateLimitPorts)
	st, err := New(redisCfg(srv.URL(), "local").Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	open := ratelimit.Request{Name: "a", Key: ratelimit.Key{Kind: ratelimit.KeyToken, S: "x"}, Limit: ratelimit.NewLimit(1, 10), N: 1}
	tight := ratelimit.Request{Name: "b", Key: ratelimit.Key{Kind: ratelimit.KeyToken, S: "x"}, Limit: ratelimit.NewLimit(0.001, 1), N: 1}
	res := make([]ratelimit.Result, 2)
	if err := st.Allow(ctx, []ratelimit.Request{open, tight}, res); err != nil || !res[0].Allowed || !res[1].Allowed {
		t.Fatalf("first: got %+v, %v; want both allowed", res, err)
	}
	// tight refuses: open must not be charged.
	for range 20 {
		if err := st.Allow(ctx, []ratelimit.Request{open, tight}, res); err != nil || !res[0].Allowed || res[1].Allowed {
			t.Fatalf("got %+v, %v; want open passing alone and tight refused", res, err)
		}
	}
	check := open
	check.N = 0
	one := res[:1]
	for i := range 9 {
		if err := st.Allow(ctx, []ratelimit.Request{open}, one); err != nil || !one[0].Allowed {
			t.Fatalf("open %d: got %+v, %v; want allowed (refused decisions charged nothing)", i, one, err)
		}
	}
	if err := st.Allow(ctx, []ratelimit.Request{check}, one); err != nil || one[0].Allowed {
		t.Fatalf("check of an empty bucket: got %+v, %v; want refused", one, err)
	}
}

func TestRedisDownFallbackAndRecovery(t *testing.T) {
	srv := testkit.StartRedis(t, testkit.RateLimitPorts)
	clk := testkit.NewClock(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	var logs testkit.Buffer
	cfg := redisCfg(srv.URL(), config.RedisOnErrorLocal)
	l, reg := newRedisLimiter(t, cfg, clk, &logs)
	if d := send(l, "syt_a"); !d.Allowed || l.FallbackActive() {
		t.Fatalf("before: got %+v fallback=%v", d, l.FallbackActive())
	}
	srv.Stop()
	// Local fallback: a fresh in-memory bucket, then its own limit.
	for i := range 10 {
		if d := send(l, "syt_a"); !d.Allowed {
			t.Fatalf("fallback message %d: got %+v, want allowed", i, d)
		}
	}
	if d := send(l, "syt_a"); d.Allowed || d.Status != 429 {
		t.Fatalf("fallback 11th: got %+v, want the local 429", d)
	}
	if !l.FallbackActive() {
		t.Fatal("fallback not active after Redis died")
	}
	if got := strings.Count(logs.String(), "rate limit store failing"); got != 1 {
		t.Fatalf("failure logged %d times, want once:\n%s", got, logs.String())
	}
	if got := gather(t, reg, "mxedge_ratelimit_fallback_active"); got != 1 {
		t.Fatalf("fallback gauge: got %v, want 1", got)
	}
	if got := gather(t, reg, "mxedge_ratelimit_store_errors_total"); got != 1 {
		t.Fatalf("store errors: got %v, want 1 (no probe before a second passed)", got)
	}
	// Restart on the same port; after the probe interval the next request recovers.
	srv.Restart(t)
	if d := send(l, "syt_b"); !d.Allowed || !l.FallbackActive() {
		t.Fatalf("before the probe interval: got %+v fallback=%v, want local decision", d, l.FallbackActive())
	}
	clk.Add(time.Second)
	if d := send(l, "syt_b"); !d.Allowed {
		t.Fatalf("probe: got %+v, want allowed", d)
	}
	if l.FallbackActive() {
		t.Fatal("fallback still active after Redis came back")
	}
	if !strings.Contains(logs.String(), "rate limit store recovered") {
		t.Fatalf("recovery not logged:\n%s", logs.String())
	}
	if got := gather(t, reg, "mxedge_ratelimit_fallback_active"); got != 0 {
		t.Fatalf("fallback gauge: got %v, want 0", got)
	}
}

func TestOnErrorAllowAndDeny(t *testing.T) {
	// Nothing listens on this port of the range: every call fails fast.
	dead := "redis://127.0.0.1:17499/0"
	for _, tc := range []struct {
		onError string
		allowed bool
		status  int
		outcome string
	}{
		{config.RedisOnErrorAllow, true, 0, "fail_open"},
		{config.RedisOnErrorDeny, false, 503, "unavailable"},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			l, reg := newRedisLimiter(t, redisCfg(dead, tc.onError), nil, nil)
			for range 30 {
				d := send(l, "syt_x")
				if d.Allowed != tc.allowed || d.Status != tc.status {
					t.Fatalf("got %+v, want allowed=%v status=%d", d, tc.allowed, tc.status)
				}
			}
			if got := testutil.ToFloat64(outcome(t, reg, "rc_message", tc.outcome)); got != 30 {
				t.Fatalf("%s decisions: got %v, want 30", tc.outcome, got)
			}
		})
	}
}

func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func outcome(t *testing.T, reg *prometheus.Registry, cat, out string) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "mxedge_ratelimit_decisions_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var c, o string
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "category" {
						c = lp.GetValue()
					} else {
						o = lp.GetValue()
					}
				}
				if c == cat && o == out {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	})
}

// BenchmarkRedisCheck measures one decision through Redis on loopback
// (one script round trip).
func BenchmarkRedisCheck(b *testing.B) {
	srv := testkit.StartRedis(b, testkit.RateLimitPorts)
	cfg := redisCfg(srv.URL(), config.RedisOnErrorLocal)
	cfg.RCMessage = config.Bucket{PerSecond: 1e6, BurstCount: 1e6}
	l, _ := newRedisLimiter(b, cfg, nil, nil)
	r := httptest.NewRequest("PUT", sendPath, nil)
	r.Header.Set("Authorization", "Bearer syt_bench")
	a := netip.MustParseAddr("192.0.2.1")
	cats := ratelimit.Of(ratelimit.Message)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if d := l.Check(r, a, cats); !d.Allowed {
			b.Fatal("refused")
		}
	}
	if l.FallbackActive() {
		b.Fatal("fell back during the benchmark")
	}
}

func TestOpen(t *testing.T) {
	c := config.Defaults()
	c.ServerName = "example.org"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	rl := c.RateLimits
	l, err := Open(rl, ratelimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	rl.Store = config.RateLimitStoreRedis
	rl.Redis.URL = "redis://127.0.0.1:17499/0"
	l, err = Open(rl, ratelimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	rl.Redis.URL = "http://x"
	if _, err := Open(rl, ratelimit.Options{}); err == nil {
		t.Fatal("Open with a bad URL: got nil error")
	}
}
