package wellknown

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testError is the injected Matrix error writer.
func testError(w http.ResponseWriter, r *http.Request, status int, errcode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errcode":%q,"error":%q}`, errcode, msg)
}

// fullConfig is a configuration with every document and the extras seen in real deployments,
// not yet validated (newHandler validates it).
func fullConfig() *config.Config {
	c := config.Defaults()
	c.ServerName = "example.org"
	c.PublicBaseURL = "https://matrix.example.org/"
	c.WellKnown = config.WellKnown{
		Client: map[string]any{
			"m.identity_server":                 map[string]any{"base_url": "https://vector.im"},
			"io.element.e2ee":                   map[string]any{"default": false, "secure_backup_required": true},
			"org.matrix.msc3575.proxy":          map[string]any{"url": "https://sync.example.org"},
			"org.matrix.msc2965.authentication": map[string]any{"issuer": "https://auth.example.org/", "account": "https://auth.example.org/account?a=1&b=2"},
			"org.matrix.msc4143.rtc_foci":       []any{map[string]any{"type": "livekit", "livekit_service_url": "https://rtc.example.org"}},
			"m.tile_server":                     map[string]any{"map_style_url": "https://tiles.example.org/style.json"},
			"io.element.jitsi":                  map[string]any{"preferredDomain": "jitsi.example.org"},
			"org.example.number":                42,
			"org.example.flag":                  true,
			"org.example.nothing":               nil,
			"org.example.text":                  "<b>&</b>",
		},
		Server: "matrix.example.org:443",
		Support: map[string]any{
			"contacts": []any{
				map[string]any{"role": "m.role.admin", "matrix_id": "@admin:example.org", "email_address": "admin@example.org"},
				map[string]any{"role": "m.role.security", "email_address": "security@example.org"},
			},
			"support_page": "https://example.org/support.html",
		},
	}
	return c
}

// bareConfig is the defaults with a server name only.
func bareConfig() *config.Config {
	c := config.Defaults()
	c.ServerName = "example.org"
	return c
}

// newHandler validates c, as config.Load does, and builds its Handler.
func newHandler(t testing.TB, c *config.Config) *Handler {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	h, err := New(c, Options{Error: testError})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func TestGolden(t *testing.T) {
	h := newHandler(t, fullConfig())
	for _, tt := range []struct{ name, path string }{
		{"client", ClientPath},
		{"server", ServerPath},
		{"support", SupportPath},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200", w.Code)
			}
			got := w.Body.Bytes()
			if !json.Valid(got) {
				t.Fatalf("body is not JSON: %s", got)
			}
			testkit.Golden(t, filepath.Join("testdata", tt.name+".json"), got, *update)
		})
	}
}

func TestServeHTTP(t *testing.T) {
	full := newHandler(t, fullConfig())
	bare := newHandler(t, bareConfig())
	tests := []struct {
		name        string
		h           *Handler
		method      string
		path        string
		wantStatus  int
		wantBody    string // exact; "" with wantErrcode = check errcode only
		wantErrcode string
		wantAllow   string
	}{
		{name: "client bare default base url", h: bare, method: "GET", path: ClientPath, wantStatus: 200,
			wantBody: `{"m.homeserver":{"base_url":"https://example.org"}}`},
		{name: "server unconfigured", h: bare, method: "GET", path: ServerPath, wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "support unconfigured", h: bare, method: "GET", path: SupportPath, wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "server", h: full, method: "GET", path: ServerPath, wantStatus: 200, wantBody: `{"m.server":"matrix.example.org:443"}`},
		{name: "head has no body", h: full, method: "HEAD", path: ServerPath, wantStatus: 200, wantBody: ""},
		{name: "unknown document", h: full, method: "GET", path: "/.well-known/matrix/other", wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "trailing slash", h: full, method: "GET", path: "/.well-known/matrix/client/", wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
		{name: "post", h: full, method: "POST", path: ClientPath, wantStatus: 405, wantErrcode: "M_UNRECOGNIZED", wantAllow: "GET, HEAD"},
		{name: "put", h: full, method: "PUT", path: SupportPath, wantStatus: 405, wantErrcode: "M_UNRECOGNIZED", wantAllow: "GET, HEAD"},
		{name: "delete", h: full, method: "DELETE", path: ServerPath, wantStatus: 405, wantErrcode: "M_UNRECOGNIZED", wantAllow: "GET, HEAD"},
		{name: "post unconfigured is 404", h: bare, method: "POST", path: SupportPath, wantStatus: 404, wantErrcode: "M_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.Host = "anything.invalid"
			tt.h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", got)
			}
			if got := w.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow: got %q, want %q", got, tt.wantAllow)
			}
			if tt.wantErrcode != "" {
				var e struct{ Errcode string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Errcode != tt.wantErrcode {
					t.Errorf("errcode: got %q (%v), want %q", e.Errcode, err, tt.wantErrcode)
				}
				return
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("body: got %q, want %q", got, tt.wantBody)
			}
			if got := w.Header().Values("Cache-Control"); len(got) != 1 || got[0] != CacheControl {
				t.Errorf("Cache-Control: got %q, want [%q]", got, CacheControl)
			}
			if got := w.Header().Get("Content-Length"); got == "" {
				t.Errorf("Content-Length: got none, want the GET body length")
			}
		})
	}
}

// TestHeadOverHTTP checks HEAD and GET on a real server: same Content-Length, no body for HEAD.
func TestHeadOverHTTP(t *testing.T) {
	srv := httptest.NewServer(newHandler(t, fullConfig()))
	defer srv.Close()
	get, err := http.Get(srv.URL + ClientPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	head, err := http.Head(srv.URL + ClientPath)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if get.ContentLength != int64(len(body)) || head.ContentLength != get.ContentLength {
		t.Errorf("Content-Length: got GET %d (body %d), HEAD %d, want all equal", get.ContentLength, len(body), head.ContentLength)
	}
}

// TestBaseURL: m.homeserver.base_url is public_baseurl as config parsed it, trailing "/" trimmed.
func TestBaseURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"trailing slash trimmed", "https://matrix.example.org/", "https://matrix.example.org"},
		{"no slash", "https://matrix.example.org", "https://matrix.example.org"},
		{"path kept", "https://example.org/matrix/", "https://example.org/matrix"},
		{"port kept", "http://127.0.0.1:8008/", "http://127.0.0.1:8008"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bareConfig()
			c.PublicBaseURL = tt.in
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := baseURL(c)
			if err != nil || got != tt.want {
				t.Errorf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *config.Config)
		opts    Options
		wantSub string // substring of the error naming the key
	}{
		{name: "no error writer", mutate: func(*config.Config) {}, wantSub: "Options.Error"},
		{name: "not validated", mutate: func(*config.Config) {}, opts: Options{Error: testError}, wantSub: "public_baseurl: not parsed"},
		{name: "bad server", mutate: func(c *config.Config) { c.WellKnown.Server = "https://matrix.example.org" }, opts: Options{Error: testError}, wantSub: "well_known.server"},
		{name: "homeserver override", mutate: func(c *config.Config) { c.WellKnown.Client["m.homeserver"] = map[string]any{"base_url": "https://x"} }, opts: Options{Error: testError}, wantSub: "well_known.client.m.homeserver"},
		{name: "empty support", mutate: func(c *config.Config) { c.WellKnown.Support = map[string]any{} }, opts: Options{Error: testError}, wantSub: "well_known.support"},
		{name: "non-string yaml keys", mutate: func(c *config.Config) { c.WellKnown.Client["org.example.x"] = map[any]any{1: "a"} }, opts: Options{Error: testError}, wantSub: "well_known.client.org.example.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fullConfig()
			tt.mutate(c)
			_, err := New(c, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("got error %v, want one naming %q", err, tt.wantSub)
			}
		})
	}
}

// discard is a ResponseWriter that keeps its header map across requests, as a benchmark baseline
// free of the recorder's own allocations.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

func TestZeroAllocs(t *testing.T) {
	h := newHandler(t, fullConfig())
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		for _, p := range []string{ClientPath, ServerPath, SupportPath} {
			r := httptest.NewRequest(m, p, nil)
			w := &discard{h: http.Header{}}
			h.ServeHTTP(w, r) // first call creates the header keys
			if got := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); got != 0 {
				t.Errorf("%s %s: got %v allocs per request, want 0", m, p, got)
			}
		}
	}
}

func BenchmarkServeHTTP(b *testing.B) {
	h := newHandler(b, fullConfig())
	for _, p := range []string{ClientPath, ServerPath, SupportPath} {
		b.Run(strings.TrimPrefix(p, "/.well-known/matrix/"), func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, p, nil)
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// MAS and MatrixRTC fill their client well-known keys from their sections.
func TestMASAndRTCKeys(t *testing.T) {
	c := config.Defaults()
	c.ServerName = "example.org"
	c.PublicBaseURL = "https://matrix.example.org/"
	c.Upstreams = map[string]config.Upstream{
		"mas": {Members: []string{"http://127.0.0.1:8080"}}, "lk": {Members: []string{"http://127.0.0.1:8081"}}, "sfu": {Members: []string{"http://127.0.0.1:7880"}},
	}
	c.MAS = config.MAS{Upstream: "mas", PublicBase: "https://auth.example.org"}
	c.RTC = config.RTC{JWTUpstream: "lk", SFUUpstream: "sfu"}
	h := newHandler(t, c)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, ClientPath, nil))
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	auth, _ := doc["org.matrix.msc2965.authentication"].(map[string]any)
	if auth["issuer"] != "https://auth.example.org/" || auth["account"] != "https://auth.example.org/account/" {
		t.Errorf("authentication %v", doc["org.matrix.msc2965.authentication"])
	}
	foci, _ := doc["org.matrix.msc4143.rtc_foci"].([]any)
	if len(foci) != 1 || foci[0].(map[string]any)["livekit_service_url"] != "https://matrix.example.org/livekit/jwt" || foci[0].(map[string]any)["type"] != "livekit" {
		t.Errorf("rtc_foci %v", doc["org.matrix.msc4143.rtc_foci"])
	}
}
