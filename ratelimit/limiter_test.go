package ratelimit

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// newClock returns a fake clock at 2026-11-27 09:00 UTC.
func newClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
}

func defaults() config.RateLimits {
	c := config.Defaults()
	rl := c.RateLimits
	rl.Exempt.Addresses = nil // tests come from loopback-like addresses
	return rl
}

// validated returns rl as Config.Validate leaves it: with the parsed forms
// (exempt prefixes, rule paths, appservice registrations) New reads.
func validated(t testing.TB, rl config.RateLimits) config.RateLimits {
	t.Helper()
	c := config.Defaults()
	c.ServerName = "example.org"
	c.RateLimits = rl
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return c.RateLimits
}

func newLimiter(t testing.TB, cfg config.RateLimits, clk *testkit.Clock) (*Limiter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{Registerer: reg}
	if clk != nil {
		o.Now = clk.Now
	}
	l, err := New(cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, reg
}

func newReq(method, target, token, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

var (
	addr1 = netip.MustParseAddr("192.0.2.1")
	addr2 = netip.MustParseAddr("192.0.2.2")
)

// TestCategoryBurstThen429 checks, per category, that a full burst passes, the
// next request gets a 429 with the exact wait, one nanosecond early is still
// refused, and after the wait it passes again.
func TestCategoryBurstThen429(t *testing.T) {
	login := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"x"}`
	tests := []struct {
		cat    Category
		method string
		path   string
		body   string
		token  string
		done   int // upstream status fed to Done after each allowed request (0: none)
		cats   Categories
	}{
		{cat: Message, method: "PUT", path: "/_matrix/client/v3/rooms/!r:x/send/m.room.message/1", token: "tok"},
		{cat: Registration, method: "POST", path: "/_matrix/client/v3/register", done: 200},
		{cat: RegistrationTokenValidity, method: "GET", path: "/_matrix/client/v1/register/m.login.registration_token/validity"},
		{cat: LoginAddress, method: "POST", path: "/_matrix/client/v3/login"},
		{cat: LoginAccount, method: "POST", path: "/_matrix/client/v3/login", body: login},
		{cat: LoginFailedAttempts, method: "POST", path: "/_matrix/client/v3/login", body: login, done: 403},
		{cat: JoinsLocal, method: "POST", path: "/_matrix/client/v3/join/!r:x", token: "tok"},
		{cat: InvitesPerIssuer, method: "POST", path: "/_matrix/client/v3/rooms/!r:x/invite", token: "tok"},
		{cat: InvitesPerUser, method: "POST", path: "/_matrix/client/v3/rooms/!r:x/invite", token: "tok", body: `{"user_id":"@bob:x"}`},
		{cat: InvitesPerRoom, method: "POST", path: "/_matrix/client/v3/rooms/!r:x/invite", token: "tok"},
		{cat: JoinsPerRoom, method: "POST", path: "/_matrix/client/v3/rooms/!r:x/join", token: "tok"},
		{cat: ThreePIDValidation, method: "POST", path: "/_matrix/client/v3/register/email/requestToken"},
		{cat: MediaCreate, method: "POST", path: "/_matrix/media/v1/create", token: "tok"},
		{cat: RoomCreation, method: "POST", path: "/_matrix/client/v3/createRoom", token: "tok"},
		{cat: Reports, method: "POST", path: "/_matrix/client/v3/rooms/!r:x/report/$e", token: "tok"},
		{cat: UserDirectory, method: "POST", path: "/_matrix/client/v3/user_directory/search", token: "tok"},
		{cat: PresencePerUser, method: "PUT", path: "/_matrix/client/v3/presence/@a:x/status", token: "tok"},
		{cat: DelayedEventMgmt, method: "GET", path: "/_matrix/client/unstable/org.matrix.msc4140/delayed_events", token: "tok"},
		{cat: DelayedEventMgmt, method: "POST", path: "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/d1/cancel"},
	}
	if len(tests) < NumBuiltin {
		t.Fatalf("got %d cases, want one per built-in category (%d)", len(tests), NumBuiltin)
	}
	cfg := defaults()
	for _, tc := range tests {
		t.Run(tc.cat.String(), func(t *testing.T) {
			clk := newClock()
			l, _ := newLimiter(t, cfg, clk)
			lim := l.st.Load().limits[tc.cat]
			cats := Of(tc.cat)
			burst := int(lim.tol / lim.interval)
			check := func() Decision {
				d := l.Check(newReq(tc.method, tc.path, tc.token, tc.body), addr1, cats)
				if d.Allowed && tc.done != 0 {
					l.Done(&d, tc.done)
				}
				return d
			}
			for i := range burst {
				if d := check(); !d.Allowed {
					t.Fatalf("request %d of the burst: got refused (%+v), want allowed", i+1, d)
				}
			}
			d := check()
			if d.Allowed || d.Status != 429 || d.Category != tc.cat {
				t.Fatalf("after the burst: got %+v, want 429 in %s", d, tc.cat)
			}
			if d.RetryAfter != lim.Interval() {
				t.Fatalf("RetryAfter: got %v, want %v (one token)", d.RetryAfter, lim.Interval())
			}
			clk.Add(d.RetryAfter - time.Nanosecond)
			if d2 := check(); d2.Allowed {
				t.Fatalf("1ns before retry_after: got allowed, want refused")
			} else if d2.RetryAfter != time.Nanosecond {
				t.Fatalf("1ns before: RetryAfter got %v, want 1ns", d2.RetryAfter)
			}
			clk.Add(time.Nanosecond)
			if d := check(); !d.Allowed {
				t.Fatalf("after retry_after: got %+v, want allowed", d)
			}
		})
	}
}

func TestRetryAfterRounding(t *testing.T) {
	tests := []struct {
		d      time.Duration
		ms     int64
		header string
	}{
		{0, 0, "0"},
		{time.Nanosecond, 1, "1"},
		{time.Millisecond, 1, "1"},
		{999 * time.Millisecond, 999, "1"},
		{1000 * time.Millisecond, 1000, "1"},
		{1000*time.Millisecond + 1, 1001, "2"},
		{5882352941, 5883, "6"}, // 1/0.17 s
	}
	for _, tc := range tests {
		ms := RetryAfterMillis(tc.d)
		if ms != tc.ms {
			t.Errorf("RetryAfterMillis(%v): got %d, want %d", tc.d, ms, tc.ms)
		}
		if h := RetryAfterHeader(ms); h != tc.header {
			t.Errorf("RetryAfterHeader(%d): got %q, want %q", ms, h, tc.header)
		}
	}
}

func TestAddressKeys(t *testing.T) {
	cfg := defaults()
	tests := []struct {
		name   string
		a, b   string
		shared bool
	}{
		{"same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"other /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"ipv4-mapped is ipv4", "::ffff:192.0.2.7", "192.0.2.7", true},
		{"ipv4 neighbours", "192.0.2.7", "192.0.2.8", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLimiter(t, cfg, newClock())
			cats := Of(LoginAddress)
			a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
			for range 5 {
				if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), a, cats); !d.Allowed {
					t.Fatalf("burst from %s refused", a)
				}
			}
			d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), b, cats)
			if got := !d.Allowed; got != tc.shared {
				t.Fatalf("%s after %s's burst: got refused=%v, want %v", b, a, got, tc.shared)
			}
		})
	}
}

func TestSpoofedForwardingHeadersIgnored(t *testing.T) {
	l, _ := newLimiter(t, defaults(), newClock())
	cats := Of(LoginAddress)
	for i := range 6 {
		r := newReq("POST", "/_matrix/client/v3/login", "", "")
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		r.Header.Set("Forwarded", fmt.Sprintf("for=198.51.100.%d", i))
		r.Header.Set("X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
		d := l.Check(r, addr1, cats)
		if want := i < 5; d.Allowed != want {
			t.Fatalf("request %d with a forged header: got allowed=%v, want %v", i, d.Allowed, want)
		}
	}
}

func loginJSON(user string) string {
	return `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"` + user + `"},"password":"p"}`
}

func TestAccountFromManyAddresses(t *testing.T) {
	cfg := defaults()
	l, _ := newLimiter(t, cfg, newClock())
	cats := Of(LoginAddress, LoginAccount, LoginFailedAttempts)
	// Spellings Synapse folds into one account.
	users := []string{"alice", "@alice:example.org", "ALICE", "@Alice:example.org", "aLiCe"}
	for i, u := range users {
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON(u)), a, cats); !d.Allowed {
			t.Fatalf("attempt %d (%s from %s): got refused, want allowed", i, u, a)
		}
	}
	d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", `{"type":"m.login.password","user":"Alice","password":"p"}`),
		netip.MustParseAddr("2001:db8::1"), cats)
	if d.Allowed || d.Category != LoginAccount {
		t.Fatalf("6th attempt on alice from a new address (legacy user field): got %+v, want 429 rc_login.account", d)
	}
	// Another account is unaffected.
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON("bob")), netip.MustParseAddr("2001:db8::2"), cats); !d.Allowed {
		t.Fatalf("bob: got %+v, want allowed", d)
	}
}

func TestFailedAttemptsBlock(t *testing.T) {
	cfg := defaults()
	cfg.RCLogin.Account = config.Bucket{PerSecond: 100, BurstCount: 100}
	cfg.RCLogin.Address = config.Bucket{PerSecond: 100, BurstCount: 100}
	clk := newClock()
	l, _ := newLimiter(t, cfg, clk)
	cats := Of(LoginAddress, LoginAccount, LoginFailedAttempts)
	for i := range 3 {
		d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON("carol")), addr1, cats)
		if !d.Allowed {
			t.Fatalf("attempt %d: got refused, want allowed", i)
		}
		l.Done(&d, 403)
	}
	// Successful logins of another account and non-failures never count.
	for range 5 {
		d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON("dave")), addr1, cats)
		l.Done(&d, 200)
	}
	d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON("@Carol:example.org")), addr2, cats)
	if d.Allowed || d.Category != LoginFailedAttempts {
		t.Fatalf("after 3 failures: got %+v, want 429 rc_login.failed_attempts", d)
	}
	if want := NewLimit(0.17, 3).Interval(); d.RetryAfter != want {
		t.Fatalf("RetryAfter: got %v, want %v", d.RetryAfter, want)
	}
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON("dave")), addr1, cats); !d.Allowed {
		t.Fatalf("dave: got %+v, want allowed", d)
	}
	clk.Add(d.RetryAfter)
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", loginJSON("carol")), addr1, cats); !d.Allowed {
		t.Fatalf("carol after retry_after: got %+v, want allowed", d)
	}
}

func TestRegistrationCountsSuccessOnly(t *testing.T) {
	l, _ := newLimiter(t, defaults(), newClock())
	cats := Of(Registration)
	// A user-interactive registration takes several POSTs: only the 200 counts.
	for range 10 {
		d := l.Check(newReq("POST", "/_matrix/client/v3/register", "", `{}`), addr1, cats)
		if !d.Allowed {
			t.Fatalf("UIA step refused: %+v", d)
		}
		l.Done(&d, 401)
	}
}

func TestHeaderAndQueryTokenShareBucket(t *testing.T) {
	l, _ := newLimiter(t, defaults(), newClock())
	cats := Of(Message)
	path := "/_matrix/client/v3/rooms/!r:x/send/m.room.message/"
	for i := range 10 {
		var r *http.Request
		switch i % 3 {
		case 0:
			r = newReq("PUT", path+fmt.Sprint(i), "syt_abc", "")
		case 1:
			r = newReq("PUT", path+fmt.Sprint(i)+"?access_token=syt_abc", "", "")
		case 2:
			r = newReq("PUT", path+fmt.Sprint(i)+"?x=1&access%5Ftoken=syt%5Fabc", "", "")
		}
		if d := l.Check(r, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), cats); !d.Allowed {
			t.Fatalf("request %d: got refused, want allowed", i)
		}
	}
	d := l.Check(newReq("PUT", path+"x?access_token=syt_abc", "", ""), addr2, cats)
	if d.Allowed {
		t.Fatalf("11th message by query token: got allowed, want 429 (shared with the header token)")
	}
	if d := l.Check(newReq("PUT", path+"y", "syt_other", ""), addr2, cats); !d.Allowed {
		t.Fatalf("other token: got refused, want allowed")
	}
}

func TestLoginBodyForwardedByteExact(t *testing.T) {
	cfg := defaults()
	cfg.RCLogin.Address = config.Bucket{PerSecond: 1, BurstCount: 100}
	cfg.RCLogin.Account = config.Bucket{PerSecond: 1, BurstCount: 100}
	l, _ := newLimiter(t, cfg, newClock())
	cats := Of(LoginAddress, LoginAccount, LoginFailedAttempts)
	big := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"erin"},"password":"` +
		strings.Repeat("x", 100<<10) + `"}`
	exactHead := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"erin"},"pad":"`
	exact := exactHead + strings.Repeat("y", PeekLimit-len(exactHead)-2) + `"}`
	over := exact[:len(exact)-2] + `y"}`
	type seen struct {
		body []byte
		err  error
		acct string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := l.Check(r, addr1, cats)
		b, err := io.ReadAll(r.Body)
		got <- seen{b, err, d.acct}
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		body    string
		chunked bool
		acct    string
	}{
		{"small", loginJSON("Erin"), false, "erin"},
		{"small chunked", loginJSON("Erin"), true, "erin"},
		{"at the peek limit", exact, false, "erin"},
		{"one byte over", over, false, UnreadableKey},
		{"oversized", big, false, UnreadableKey},
		{"oversized chunked", big, true, UnreadableKey},
		{"not json", "user=erin&password=x", false, UnreadableKey},
		{"empty", "", false, UnreadableKey},
		{"token login", `{"type":"m.login.token","token":"abc"}`, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(strings.NewReader(tc.body)) // hides the length: chunked
			}
			req, _ := http.NewRequest("POST", srv.URL+"/_matrix/client/v3/login", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			s := <-got
			if s.err != nil {
				t.Fatalf("reading the replaced body: %v", s.err)
			}
			if !bytes.Equal(s.body, []byte(tc.body)) {
				t.Fatalf("body: got %d bytes, want the %d bytes sent, byte-exact", len(s.body), len(tc.body))
			}
			if s.acct != tc.acct {
				t.Fatalf("account: got %q, want %q", s.acct, tc.acct)
			}
		})
	}
}

// errAfter yields data, then fails: a client that went away mid-body.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestTruncatedBodyStaysTruncated(t *testing.T) {
	l, _ := newLimiter(t, defaults(), newClock())
	cut := io.ErrUnexpectedEOF
	r := httptest.NewRequest("POST", "/_matrix/client/v3/login", nil)
	r.Body = io.NopCloser(&errAfter{strings.NewReader(`{"type":"m.login.pass`), cut})
	r.ContentLength = -1
	d := l.Check(r, addr1, Of(LoginAccount))
	if !d.Allowed {
		t.Fatalf("got refused, want allowed")
	}
	b, err := io.ReadAll(r.Body)
	if err != cut || string(b) != `{"type":"m.login.pass` {
		t.Fatalf("got %q, %v; want the partial bytes then %v", b, err, cut)
	}
}

func TestKeyBoundUnderFlood(t *testing.T) {
	cfg := defaults()
	cfg.MaxKeys = 1000
	clk := newClock()
	l, reg := newLimiter(t, cfg, clk)
	cats := Of(LoginAddress)
	victim := netip.MustParseAddr("198.51.100.7")
	var last Decision
	for range 6 {
		last = l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), victim, cats)
	}
	if last.Allowed {
		t.Fatalf("victim not throttled before the flood")
	}
	for i := range 50000 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), a, cats)
	}
	if n := l.Tracked(); n > int64(cfg.MaxKeys) {
		t.Fatalf("tracked keys: got %d, want <= %d", n, cfg.MaxKeys)
	}
	l.mem.Sweep()
	d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), victim, cats)
	if d.Allowed || d.RetryAfter != last.RetryAfter {
		t.Fatalf("victim after the flood: got %+v, want still throttled with RetryAfter %v", d, last.RetryAfter)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "mxedge_ratelimit_tracked_keys")); got != float64(cfg.MaxKeys) {
		t.Fatalf("mxedge_ratelimit_tracked_keys: got %v, want %d", got, cfg.MaxKeys)
	}
	// A new key while the table is full lands on the (exhausted) overflow bucket.
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), netip.MustParseAddr("203.0.113.99"), cats); d.Allowed {
		t.Fatalf("new key while full: got allowed, want the overflow bucket's 429")
	}
	// Once buckets refill they are forgotten and the table has room again.
	clk.Add(time.Hour)
	l.mem.Sweep()
	if n := l.Tracked(); n != 0 {
		t.Fatalf("after refill and sweep: got %d tracked, want 0", n)
	}
}

// gaugeOf returns a collector reading one metric from reg.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "x", nil, nil), prometheus.GaugeValue, mf.GetMetric()[0].GetGauge().GetValue())
			}
		}
	})
}

type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestAppservices(t *testing.T) {
	cfg := defaults()
	cfg.Exempt.AppserviceRegistrations = []string{
		testkit.TempFile(t, "free.yaml", "id: free\nas_token: as_free\nhs_token: h1\nsender_localpart: freebot\nrate_limited: false\nnamespaces: {users: []}\n"),
		testkit.TempFile(t, "bridge.yaml", "id: bridge\nas_token: as_bridge\nhs_token: h2\nsender_localpart: bridgebot\nurl: http://localhost:9000\n"),
	}
	l, _ := newLimiter(t, validated(t, cfg), newClock())
	cats := Of(Message)
	path := "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t"
	for range 50 {
		if d := l.Check(newReq("PUT", path+"?user_id=@a:x", "as_free", ""), addr1, cats); !d.Allowed {
			t.Fatalf("rate_limited: false appservice: got refused, want exempt")
		}
	}
	// A rate-limited bridge: one bucket per puppeted user, never one per token.
	for u := range 20 {
		for i := range 10 {
			r := newReq("PUT", fmt.Sprintf("%s?user_id=@puppet%d:x", path, u), "as_bridge", "")
			if d := l.Check(r, addr1, cats); !d.Allowed {
				t.Fatalf("puppet %d message %d: got refused, want allowed", u, i)
			}
		}
	}
	if d := l.Check(newReq("PUT", path+"?user_id=@puppet3:x", "as_bridge", ""), addr1, cats); d.Allowed {
		t.Fatalf("puppet 3's 11th message: got allowed, want 429")
	}
	// The bridge bot itself (no user_id) has its own bucket.
	if d := l.Check(newReq("PUT", path, "as_bridge", ""), addr1, cats); !d.Allowed {
		t.Fatalf("bridge bot: got refused, want allowed")
	}
	// user_id from a normal token does not spread buckets.
	for i := range 11 {
		r := newReq("PUT", fmt.Sprintf("%s?user_id=@u%d:x", path, i), "plain", "")
		if d := l.Check(r, addr1, cats); d.Allowed != (i < 10) {
			t.Fatalf("plain token with user_id %d: got allowed=%v, want %v", i, d.Allowed, i < 10)
		}
	}
}

func TestExemptAddresses(t *testing.T) {
	cfg := defaults()
	cfg.Exempt.Addresses = []string{"10.0.0.0/8", "2001:db8::1"}
	l, reg := newLimiter(t, validated(t, cfg), newClock())
	for _, a := range []string{"10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1"} {
		for range 20 {
			if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), netip.MustParseAddr(a), Of(LoginAddress)); !d.Allowed {
				t.Fatalf("%s: got refused, want exempt", a)
			}
		}
	}
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), netip.MustParseAddr("2001:db8::2"), Of(LoginAddress)); !d.Allowed {
		t.Fatalf("first request from a non-exempt address refused")
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "rc_login.address", "exempt")); got != 60 {
		t.Fatalf("exempt decisions: got %v, want 60", got)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, cat, outcome string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "mxedge_ratelimit_decisions_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var c, o string
				for _, lp := range m.GetLabel() {
					switch lp.GetName() {
					case "category":
						c = lp.GetValue()
					case "outcome":
						o = lp.GetValue()
					}
				}
				if c == cat && o == outcome {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	})
}

func TestRules(t *testing.T) {
	cfg := defaults()
	cfg.Rules = []config.RateLimitRule{
		{Name: "sync", Methods: []string{"GET"}, Path: "/_matrix/client/*/sync", Key: "token", PerSecond: 1, BurstCount: 2},
		{Name: "media", Path: "/_matrix/media/**", Key: "ip+token", PerSecond: 1, BurstCount: 1},
	}
	l, reg := newLimiter(t, validated(t, cfg), newClock())
	tests := []struct {
		method, path string
		match        string
	}{
		{"GET", "/_matrix/client/v3/sync", "sync"},
		{"GET", "/_matrix/client/r0/sync", "sync"},
		{"POST", "/_matrix/client/v3/sync", ""},
		{"GET", "/_matrix/client/v3/sync/x", ""},
		{"GET", "/_matrix/client/sync", ""},
		{"GET", "/_matrix/media", "media"},
		{"GET", "/_matrix/media/v3/download/x/y", "media"},
		{"GET", "/_matrix/mediax", ""},
	}
	st := l.st.Load()
	for _, tc := range tests {
		got := ""
		for i := range st.rules {
			if st.rules[i].match(tc.method, tc.path) {
				got = st.rules[i].name[len("rule:"):]
			}
		}
		if got != tc.match {
			t.Errorf("%s %s: got rule %q, want %q", tc.method, tc.path, got, tc.match)
		}
	}
	for i := range 3 {
		d := l.Check(newReq("GET", "/_matrix/client/v3/sync", "tokA", ""), addr1, 0)
		if d.Allowed != (i < 2) {
			t.Fatalf("sync %d: got allowed=%v, want %v", i, d.Allowed, i < 2)
		}
		if !d.Allowed && (d.Rule != "sync" || d.Category != Category(NumBuiltin)) {
			t.Fatalf("refusal: got rule %q category %d, want sync %d", d.Rule, d.Category, NumBuiltin)
		}
	}
	// ip+token: another address with the same token has its own bucket.
	if d := l.Check(newReq("GET", "/_matrix/media/v3/config", "tokA", ""), addr1, 0); !d.Allowed {
		t.Fatal("media 1 refused")
	}
	if d := l.Check(newReq("GET", "/_matrix/media/v3/config", "tokA", ""), addr2, 0); !d.Allowed {
		t.Fatal("media from another address refused")
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "rule:sync", "limited")); got != 1 {
		t.Fatalf("rule:sync limited: got %v, want 1", got)
	}
}

func TestReloadKeepsUnchangedBuckets(t *testing.T) {
	cfg := defaults()
	l, _ := newLimiter(t, cfg, newClock())
	exhaust := func(cat Category, path, token string) {
		for range 20 {
			l.Check(newReq("POST", path, token, ""), addr1, Of(cat))
		}
	}
	exhaust(LoginAddress, "/_matrix/client/v3/login", "")
	exhaust(Message, "/_matrix/client/v3/rooms/!r:x/send/m/1", "tok")
	cfg2 := cfg
	cfg2.RCMessage = config.Bucket{PerSecond: 1, BurstCount: 20}
	p, err := l.Prepare(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Check(newReq("PUT", "/_matrix/client/v3/rooms/!r:x/send/m/2", "tok", ""), addr1, Of(Message)); d.Allowed {
		t.Fatal("rc_message after Prepare, before Commit: got allowed, want the running (empty) bucket")
	}
	p.Commit()
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), addr1, Of(LoginAddress)); d.Allowed {
		t.Fatal("unchanged rc_login.address: got allowed, want the kept (empty) bucket")
	}
	if d := l.Check(newReq("PUT", "/_matrix/client/v3/rooms/!r:x/send/m/3", "tok", ""), addr1, Of(Message)); !d.Allowed {
		t.Fatal("changed rc_message: got refused, want a fresh bucket")
	}
}

// TestPrepareRefusalChangesNothing prepares a configuration that
// config.Validate accepts but the limiter cannot use (more rules than there
// are categories): Prepare fails, and neither the limits nor the metrics
// change.
func TestPrepareRefusalChangesNothing(t *testing.T) {
	cfg := defaults()
	l, reg := newLimiter(t, cfg, newClock())
	bad := cfg
	bad.RCLogin.Address = config.Bucket{PerSecond: 1000, BurstCount: 1000}
	for i := range maxTables {
		bad.Rules = append(bad.Rules, config.RateLimitRule{Name: "r" + strconv.Itoa(i), Path: "/r" + strconv.Itoa(i), PerSecond: 1, BurstCount: 1})
	}
	if _, err := l.Prepare(validated(t, bad)); err == nil || !strings.Contains(err.Error(), "rate_limits.rules") {
		t.Fatalf("Prepare with %d rules: got %v, want an error naming rate_limits.rules", len(bad.Rules), err)
	}
	for range 5 {
		l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), addr1, Of(LoginAddress))
	}
	if d := l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), addr1, Of(LoginAddress)); d.Allowed {
		t.Fatal("rc_login.address after a refused Prepare: got allowed, want the running burst of 5 spent")
	}
	n, err := testutil.GatherAndCount(reg, "mxedge_ratelimit_decisions_total")
	if err != nil {
		t.Fatal(err)
	}
	if want := NumBuiltin * numOutcomes; n != want {
		t.Errorf("decision series after a refused Prepare: got %d, want %d (no rule series)", n, want)
	}
}

func TestUnenforcedOptionsWarn(t *testing.T) {
	cfg := defaults()
	cfg.RCJoins.Remote = &config.Bucket{PerSecond: 0.01, BurstCount: 10}
	var buf bytes.Buffer
	l, err := New(cfg, Options{Logger: slogText(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !strings.Contains(buf.String(), "rate_limits.rc_joins.remote") {
		t.Fatalf("log: got %q, want a warning naming rate_limits.rc_joins.remote", buf.String())
	}
}

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestMetricsLint(t *testing.T) {
	l, reg := newLimiter(t, defaults(), newClock())
	l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), addr1, Of(LoginAddress))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "rc_login.address", "allowed")); got != 1 {
		t.Fatalf("allowed: got %v, want 1", got)
	}
}

func TestCloseStopsSweeper(t *testing.T) {
	m := NewMemory(MemoryOptions{SweepEvery: time.Millisecond})
	select {
	case <-m.done:
		t.Fatal("sweeper not running before Close: nothing to stop")
	default:
	}
	// Close waits for the sweeper: a sweeper that does not stop would make it
	// block, so it runs aside and the test waits for it a bounded time.
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s: the sweeper goroutine did not stop")
	}
	select {
	case <-m.done:
	default:
		t.Fatal("Close returned while the sweeper goroutine was still running")
	}
	m.Close() // idempotent
}

// TestConcurrentFloodReloadSweep runs decisions, reloads and sweeps at once
// (for -race) and checks the key bound holds under concurrency.
func TestConcurrentFloodReloadSweep(t *testing.T) {
	cfg := defaults()
	cfg.MaxKeys = 500
	l, _ := newLimiter(t, cfg, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				a := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				tok := "t" + strconv.Itoa(g*100000+i)
				l.Check(newReq("PUT", "/_matrix/client/v3/rooms/!r:x/send/m/1", tok, ""), a, Of(Message, LoginAddress))
				if n := l.Tracked(); n > int64(cfg.MaxKeys) {
					t.Errorf("tracked: got %d, want <= %d", n, cfg.MaxKeys)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			c := cfg
			c.RCMessage.BurstCount = float64(10 + i%2)
			p, err := l.Prepare(c)
			if err != nil {
				t.Error(err)
				return
			}
			p.Commit()
			l.mem.Sweep()
		}
	}()
	wg.Wait()
	var n int64
	for c := range l.mem.tables {
		if tb := l.mem.tables[c].Load(); tb != nil {
			for i := range tb.shards {
				tb.shards[i].mu.Lock()
				n += int64(len(tb.shards[i].m))
				tb.shards[i].mu.Unlock()
			}
		}
	}
	if got := l.Tracked(); got != n {
		t.Fatalf("tracked counter %d, want the %d buckets actually held", got, n)
	}
}
