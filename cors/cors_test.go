package cors

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// mustNew builds a Policy from cors.allow_origins as config validates and
// parses it.
func mustNew(t testing.TB, origins ...string) *Policy {
	t.Helper()
	c := config.Defaults()
	c.ServerName = "example.org"
	c.CORS.AllowOrigins = origins
	if err := c.Validate(); err != nil {
		t.Fatalf("cors.allow_origins %q: %v", origins, err)
	}
	p, err := New(c.CORSOrigins())
	if err != nil {
		t.Fatalf("New(%q): %v", origins, err)
	}
	return p
}

// dump renders h as sorted "Key: value" lines, one per value, keys as stored.
func dump(h http.Header) string {
	var lines []string
	for k, vs := range h {
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// corsLines returns the lines whose key is a CORS header or Vary, any spelling.
func corsLines(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "access-control-") || lk == "vary" {
			out[lk] = append(out[lk], vs...)
		}
	}
	return out
}

func TestApply(t *testing.T) {
	list := []string{"https://app.example.org", "HTTP://Localhost:3000", "https://chat.example.org:443"}
	tests := []struct {
		name     string
		origins  []string
		upstream http.Header // assigned as raw map entries: keys kept as written
		origin   string
		want     map[string][]string // lower-case key → values; Allow-Methods/Headers implied
	}{
		{
			name: "star, no upstream", origins: []string{"*"}, origin: "https://x.org",
			want: map[string][]string{"access-control-allow-origin": {"*"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "star, no origin header", origins: []string{"*"},
			want: map[string][]string{"access-control-allow-origin": {"*"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "synapse copies replaced", origins: []string{"*"}, origin: "https://x.org",
			upstream: http.Header{
				"Access-Control-Allow-Origin":   {"*"},
				"Access-Control-Allow-Methods":  {"GET, HEAD, POST, PUT, DELETE, OPTIONS"},
				"Access-Control-Allow-Headers":  {"X-Requested-With, Content-Type, Authorization, Date"},
				"Access-Control-Expose-Headers": {"Synapse-Trace-Id, Server"},
			},
			want: map[string][]string{"access-control-allow-origin": {"*"}, "access-control-expose-headers": {"Synapse-Trace-Id, Server, Retry-After"}},
		},
		{
			name: "allow origin twice and odd key spellings", origins: []string{"*"}, origin: "https://x.org",
			upstream: http.Header{
				"Access-Control-Allow-Origin":   {"*", "*"},
				"access-control-allow-origin":   {"*"},
				"ACCESS-CONTROL-ALLOW-METHODS":  {"GET"},
				"access-control-expose-headers": {"server, X-Custom"},
				"Access-Control-Expose-Headers": {"Synapse-Trace-Id, Server", "retry-after"},
			},
			want: map[string][]string{"access-control-allow-origin": {"*"}},
		},
		{
			name: "other upstream access-control headers removed", origins: []string{"*"}, origin: "https://x.org",
			upstream: http.Header{
				"Access-Control-Max-Age":                 {"600"},
				"Access-Control-Allow-Credentials":       {"true"},
				"access-control-allow-private-network":   {"true"},
				"Content-Type":                           {"application/json"},
				"X-Access-Control-Not-Really-A-Cors-Hdr": {"kept"},
			},
			want: map[string][]string{"access-control-allow-origin": {"*"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "expose comma lists deduplicated case-insensitively", origins: []string{"*"}, origin: "https://x.org",
			upstream: http.Header{"Access-Control-Expose-Headers": {"A, b,, B ,a", " C", "", "RETRY-AFTER"}},
			want:     map[string][]string{"access-control-allow-origin": {"*"}, "access-control-expose-headers": {"A, b, C, RETRY-AFTER"}},
		},
		{
			name: "expose blank upstream", origins: []string{"*"}, origin: "https://x.org",
			upstream: http.Header{"Access-Control-Expose-Headers": {" "}},
			want:     map[string][]string{"access-control-allow-origin": {"*"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list exact match", origins: list, origin: "https://app.example.org",
			want: map[string][]string{"access-control-allow-origin": {"https://app.example.org"}, "vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list match other case echoes request spelling", origins: list, origin: "HTTPS://App.Example.ORG",
			want: map[string][]string{"access-control-allow-origin": {"HTTPS://App.Example.ORG"}, "vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list configured upper case matches browser lower case", origins: list, origin: "http://localhost:3000",
			want: map[string][]string{"access-control-allow-origin": {"http://localhost:3000"}, "vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list default port normalised", origins: list, origin: "https://chat.example.org",
			want: map[string][]string{"access-control-allow-origin": {"https://chat.example.org"}, "vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list port must match", origins: list, origin: "http://localhost:3001",
			want: map[string][]string{"vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list scheme must match", origins: list, origin: "http://app.example.org",
			want: map[string][]string{"vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list suffix is no match", origins: list, origin: "https://app.example.org.evil.com",
			want: map[string][]string{"vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list no match drops upstream star", origins: list, origin: "https://evil.com",
			upstream: http.Header{"Access-Control-Allow-Origin": {"*"}},
			want:     map[string][]string{"vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list no origin header", origins: list,
			want: map[string][]string{"vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "list null origin", origins: list, origin: "null",
			want: map[string][]string{"vary": {"Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "vary kept and origin added once", origins: list, origin: "https://app.example.org",
			upstream: http.Header{"Vary": {"Accept-Encoding, Authorization"}},
			want:     map[string][]string{"access-control-allow-origin": {"https://app.example.org"}, "vary": {"Accept-Encoding, Authorization", "Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "vary already has origin", origins: list, origin: "https://app.example.org",
			upstream: http.Header{"Vary": {"Accept-Encoding", "origin"}},
			want:     map[string][]string{"access-control-allow-origin": {"https://app.example.org"}, "vary": {"Accept-Encoding", "origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "vary origin under odd key", origins: list, origin: "https://app.example.org",
			upstream: http.Header{"vary": {"Accept, Origin"}},
			want:     map[string][]string{"access-control-allow-origin": {"https://app.example.org"}, "vary": {"Accept, Origin"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "vary star", origins: list, origin: "https://app.example.org",
			upstream: http.Header{"Vary": {"*"}},
			want:     map[string][]string{"access-control-allow-origin": {"https://app.example.org"}, "vary": {"*"}, "access-control-expose-headers": {"Retry-After"}},
		},
		{
			name: "star never adds vary", origins: []string{"*"}, origin: "https://x.org",
			upstream: http.Header{"Vary": {"Accept-Encoding"}},
			want:     map[string][]string{"access-control-allow-origin": {"*"}, "vary": {"Accept-Encoding"}, "access-control-expose-headers": {"Retry-After"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.origins...)
			h := http.Header{}
			for k, v := range tt.upstream {
				h[k] = slices.Clone(v)
			}
			p.Apply(h, tt.origin)
			want := map[string][]string{
				"access-control-allow-methods": {AllowMethods},
				"access-control-allow-headers": {AllowHeaders},
			}
			for k, v := range tt.want {
				want[k] = v
			}
			if _, ok := want["access-control-expose-headers"]; !ok {
				want["access-control-expose-headers"] = nil // checked below: one line with every name
			}
			got := corsLines(h)
			for k, w := range want {
				g := got[k]
				if w == nil {
					continue
				}
				if !slices.Equal(g, w) {
					t.Errorf("%s: got %q, want %q", k, g, w)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: got %q, want no such header", k, got[k])
				}
			}
			if tt.name == "allow origin twice and odd key spellings" {
				g := h.Values(hExpose)
				if len(g) != 1 || len(got["access-control-expose-headers"]) != 1 {
					t.Fatalf("expose: got %q, want one line", got["access-control-expose-headers"])
				}
				names := strings.Split(g[0], ", ")
				slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
				if want := "retry-after,server,synapse-trace-id,x-custom"; strings.ToLower(strings.Join(names, ",")) != want {
					t.Errorf("expose names: got %q, want %q (any case)", g[0], want)
				}
			}
			if h.Get("X-Access-Control-Not-Really-A-Cors-Hdr") == "" && tt.upstream.Get("X-Access-Control-Not-Really-A-Cors-Hdr") != "" {
				t.Errorf("non-CORS header removed")
			}
			// Idempotent: a second Apply (chain re-entry) gives the same headers.
			before := dump(h)
			p.Apply(h, tt.origin)
			if after := dump(h); after != before {
				t.Errorf("second Apply changed headers:\ngot  %s\nwant %s", after, before)
			}
		})
	}
}

// TestNewFromConfig: the Policy allows exactly the origins config
// validated, in the form config normalised them to, and refuses the zero
// Origins of a Config that was never validated.
func TestNewFromConfig(t *testing.T) {
	p := mustNew(t, "HTTPS://App.Example.org/", "https://chat.example.org:443", "http://localhost:3000")
	for _, tt := range []struct{ origin, want string }{
		{"https://app.example.org", "https://app.example.org"},
		{"https://chat.example.org", "https://chat.example.org"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"https://APP.example.org", "https://APP.example.org"}, // echoed as sent
		{"https://app.example.org:8443", ""},
		{"http://app.example.org", ""},
	} {
		h := http.Header{}
		p.Apply(h, tt.origin)
		if got := h.Get(hAllowOrigin); got != tt.want {
			t.Errorf("Origin %s: got Allow-Origin %q, want %q", tt.origin, got, tt.want)
		}
	}
	if !mustNew(t, "*").AllowsAny() {
		t.Errorf(`["*"]: got AllowsAny false, want true`)
	}
	if _, err := New(config.Origins{}); err == nil || !strings.Contains(err.Error(), "cors.allow_origins") {
		t.Errorf("zero Origins: got %v, want an error naming cors.allow_origins", err)
	}
}

// TestPreflightGolden checks the whole header set of a preflight, as a server sends it.
func TestPreflightGolden(t *testing.T) {
	tests := []struct {
		name    string
		origins []string
		origin  string
	}{
		{"preflight_star", []string{"*"}, "https://app.example.org"},
		{"preflight_list_match", []string{"https://app.example.org"}, "https://app.example.org"},
		{"preflight_list_nomatch", []string{"https://app.example.org"}, "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.origins...)
			srv := httptest.NewServer(http.HandlerFunc(p.Preflight))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/_matrix/client/v3/login", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status: got %d, want 204", resp.StatusCode)
			}
			resp.Header.Del("Date")
			var b bytes.Buffer
			fmt.Fprintf(&b, "status: %d\n%s\n", resp.StatusCode, dump(resp.Header))
			testkit.Golden(t, filepath.Join("testdata", tt.name+".golden"), b.Bytes(), *update)
		})
	}
}

// TestApplyOverUpstream checks the wire: an upstream handler sets Synapse's copies, Apply runs
// before the write (as the chain does), and the client sees exactly one of each.
func TestApplyOverUpstream(t *testing.T) {
	p := mustNew(t, "*")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Access-Control-Allow-Origin"] = []string{"*"}
		h["access-control-allow-origin"] = []string{"*"}
		h["Access-Control-Expose-Headers"] = []string{"Synapse-Trace-Id, Server"}
		h["Access-Control-Max-Age"] = []string{"5"}
		p.Apply(h, r.Header.Get("Origin"))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Origin", "https://app.example.org")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":   "*",
		"Access-Control-Allow-Methods":  AllowMethods,
		"Access-Control-Allow-Headers":  AllowHeaders,
		"Access-Control-Expose-Headers": "Synapse-Trace-Id, Server, Retry-After",
	} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s: got %q, want [%q]", k, got, want)
		}
	}
	if got := resp.Header.Values("Access-Control-Max-Age"); len(got) != 0 {
		t.Errorf("Access-Control-Max-Age: got %q, want none on a non-preflight response", got)
	}
}

func TestApplyZeroAllocs(t *testing.T) {
	tests := []struct {
		name     string
		origins  []string
		origin   string
		upstream []string // Expose-Headers lines; nil = none
	}{
		{"star none", []string{"*"}, "https://app.example.org", nil},
		{"star synapse", []string{"*"}, "https://app.example.org", []string{synapseExpose}},
		{"star other cached", []string{"*"}, "https://app.example.org", []string{"X-A, X-B"}},
		{"list match synapse", []string{"https://app.example.org"}, "https://app.example.org", []string{synapseExpose}},
		{"list nomatch none", []string{"https://app.example.org"}, "https://evil.example", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.origins...)
			h := http.Header{"Content-Type": {"application/json"}, "Server": {"Synapse"}}
			run := func() {
				if tt.upstream != nil {
					h["Access-Control-Allow-Origin"] = tt.upstream[:0:0] // any value: removed
					h["Access-Control-Expose-Headers"] = tt.upstream
				}
				p.Apply(h, tt.origin)
			}
			run() // warm the cache and the header keys
			if got := testing.AllocsPerRun(200, run); got != 0 {
				t.Errorf("got %v allocs per Apply, want 0", got)
			}
		})
	}
}

func TestPreflightZeroAllocs(t *testing.T) {
	p := mustNew(t, "*")
	r := httptest.NewRequest(http.MethodOptions, "/_matrix/client/versions", nil)
	r.Header.Set("Origin", "https://app.example.org")
	w := &headerWriter{h: http.Header{}}
	p.Preflight(w, r)
	if got := testing.AllocsPerRun(200, func() { p.Preflight(w, r) }); got != 0 {
		t.Errorf("got %v allocs per Preflight, want 0", got)
	}
	if w.code != http.StatusNoContent {
		t.Errorf("status: got %d, want 204", w.code)
	}
}

// TestExposeCacheConcurrent exercises the cache from many goroutines (run with -race).
func TestExposeCacheConcurrent(t *testing.T) {
	p := mustNew(t, "*")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				up := fmt.Sprintf("X-%d", (g+i)%3)
				h := http.Header{"Access-Control-Expose-Headers": {up}}
				p.Apply(h, "https://a.org")
				if got, want := h.Get(hExpose), up+", Retry-After"; got != want {
					t.Errorf("expose: got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

type headerWriter struct {
	h    http.Header
	code int
}

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) WriteHeader(code int)        { w.code = code }
func (w *headerWriter) Write(b []byte) (int, error) { return len(b), nil }

func BenchmarkApply(b *testing.B) {
	tests := []struct {
		name     string
		origins  []string
		origin   string
		upstream []string
	}{
		{"star/no-upstream", []string{"*"}, "https://app.example.org", nil},
		{"star/synapse", []string{"*"}, "https://app.example.org", []string{synapseExpose}},
		{"star/other-cached", []string{"*"}, "https://app.example.org", []string{"X-A, X-B"}},
		{"list/match-synapse", []string{"https://a.example", "https://app.example.org"}, "https://app.example.org", []string{synapseExpose}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			p := mustNew(b, tt.origins...)
			// A typical Synapse JSON response head.
			h := http.Header{"Content-Type": {"application/json"}, "Server": {"Synapse"}, "Date": {"x"},
				"Cache-Control": {"no-cache, no-store, must-revalidate"}, "Content-Length": {"42"}}
			b.ReportAllocs()
			for b.Loop() {
				if tt.upstream != nil {
					h["Access-Control-Allow-Origin"] = tt.upstream
					h["Access-Control-Expose-Headers"] = tt.upstream
				}
				p.Apply(h, tt.origin)
			}
		})
	}
}

func BenchmarkPreflight(b *testing.B) {
	p := mustNew(b, "*")
	r := httptest.NewRequest(http.MethodOptions, "/_matrix/client/versions", nil)
	r.Header.Set("Origin", "https://app.example.org")
	w := &headerWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		p.Preflight(w, r)
	}
}

// A long Expose-Headers list from the upstream is merged in linear time, with
// case-insensitive duplicates dropped (the first spelling wins).
func TestMergeExposeLongList(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "X-H%d, x-h%d, ", i%2500, i%2500)
	}
	got := strings.Split(mergeExpose([]string{b.String(), "Retry-After"}), ", ")
	if len(got) != 2501 || got[0] != "X-H0" || got[2500] != "Retry-After" {
		t.Errorf("merged %d names (first %q, last %q), want 2501 ending in Retry-After", len(got), got[0], got[len(got)-1])
	}
}
