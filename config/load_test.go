package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// env returns a Getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// problemsOf returns the problems of err, failing when err is not an *Error.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v (%T), want *config.Error", err, err)
	}
	return ce.Problems
}

// loadRule loads base+yaml, which sets one entry, and returns the Config;
// with wantMsg it instead checks that the only problem is
// "file:line: key: wantMsg" and returns nil.
func loadRule(t *testing.T, yaml string, line int, key, wantMsg string) *Config {
	t.Helper()
	p := testkit.TempFile(t, "c.yaml", base+yaml)
	c, err := Load(LoadOptions{Path: p})
	if wantMsg == "" {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return c
	}
	probs := problemsOf(t, err)
	if want := fmt.Sprintf("%s:%d: %s: %s", p, line, key, wantMsg); len(probs) != 1 || probs[0].String() != want {
		t.Fatalf("got %v, want [%s]", probs, want)
	}
	return nil
}

func TestDefaults(t *testing.T) {
	c := Defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"upstream", c.Upstream, "http://127.0.0.1:8008"},
		{"listen.http", c.Listen.HTTP, ":8080"},
		{"listen.https", c.Listen.HTTPS, ":443"},
		{"listen.federation", c.Listen.Federation, ""},
		{"listen.ops", c.Listen.Ops, "127.0.0.1:9100"},
		{"cors.allow_origins", c.CORS.AllowOrigins, []string{"*"}},
		{"admin_api.allow_from", c.AdminAPI.AllowFrom, []string{"127.0.0.1/32", "::1/128"}},
		{"limits.max_header_bytes", c.Limits.MaxHeaderBytes, Size(32 * 1024)},
		{"limits.max_body_size", c.Limits.MaxBodySize, Size(50 * 1024 * 1024)},
		{"limits.max_json_body_size", c.Limits.MaxJSONBodySize, Size(10 * 1024 * 1024)},
		{"timeouts.read_header", c.Timeouts.ReadHeader.D(), 10 * time.Second},
		{"timeouts.idle", c.Timeouts.Idle.D(), 120 * time.Second},
		{"timeouts.upstream_response_header", c.Timeouts.UpstreamResponseHeader.D(), time.Duration(0)},
		{"timeouts.read_body_idle", c.Timeouts.ReadBodyIdle.D(), 60 * time.Second},
		{"timeouts.write_idle", c.Timeouts.WriteIdle.D(), 60 * time.Second},
		{"timeouts.shutdown", c.Timeouts.Shutdown.D(), 60 * time.Second},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"log.access", c.Log.Access, true},
		{"tls.mode", c.TLS.Mode, TLSModeOff},
		{"server_name", c.ServerName, ""},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// Fresh copies: changing one Config does not change the next.
	c.CORS.AllowOrigins[0] = "https://x.example"
	if got := Defaults().CORS.AllowOrigins[0]; got != "*" {
		t.Errorf("Defaults shares slices: got %q, want *", got)
	}
}

// TestFirstRunNeedsNoFile is `mxedge run --upstream … --server-name example.org`.
func TestFirstRunNeedsNoFile(t *testing.T) {
	c, err := Load(LoadOptions{Getenv: env(nil), Flags: Overrides{Upstream: "http://127.0.0.1:8008", ServerName: "example.org"}})
	if err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if c.Listen.HTTP != ":8080" || c.File != "" {
		t.Errorf("got listen.http %q file %q, want :8080 and no file", c.Listen.HTTP, c.File)
	}
	if got := c.PublicBaseURLParsed().String(); got != "https://example.org/" {
		t.Errorf("public base URL: got %q, want https://example.org/", got)
	}
	if got := c.UpstreamURL().String(); got != "http://127.0.0.1:8008" {
		t.Errorf("upstream: got %q, want http://127.0.0.1:8008", got)
	}
}

func TestPrecedence(t *testing.T) {
	file := "server_name: file.example\nlog:\n  level: warn\n"
	fullEnv := map[string]string{
		"MXEDGE_SERVER_NAME": "env.example",
		"MXEDGE_LOG_LEVEL":   "debug",
		"MXEDGE_LOG_FORMAT":  "text",
		"MXEDGE_LISTEN_OPS":  "127.0.0.1:9200",
	}
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		flags      Overrides
		wantServer string
		wantLevel  string
		wantFormat string
		wantOps    string
	}{
		{name: "defaults", flags: Overrides{ServerName: "flag.example"}, wantServer: "flag.example", wantLevel: "info", wantFormat: "json", wantOps: "127.0.0.1:9100"},
		{name: "env over defaults", env: fullEnv, wantServer: "env.example", wantLevel: "debug", wantFormat: "text", wantOps: "127.0.0.1:9200"},
		{name: "file over env", file: file, env: fullEnv, wantServer: "file.example", wantLevel: "warn", wantFormat: "text", wantOps: "127.0.0.1:9200"},
		{name: "flags over file", file: file, env: fullEnv, flags: Overrides{ServerName: "flag.example", LogLevel: "error", ListenOps: "127.0.0.1:9300"},
			wantServer: "flag.example", wantLevel: "error", wantFormat: "text", wantOps: "127.0.0.1:9300"},
		{name: "file only", file: file, wantServer: "file.example", wantLevel: "warn", wantFormat: "json", wantOps: "127.0.0.1:9100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := LoadOptions{Getenv: env(tt.env), Flags: tt.flags}
			if tt.file != "" {
				o.Path = testkit.TempFile(t, "mxedge.yaml", tt.file)
			}
			c, err := Load(o)
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			got := []string{c.ServerName, c.Log.Level, c.Log.Format, c.Listen.Ops}
			want := []string{tt.wantServer, tt.wantLevel, tt.wantFormat, tt.wantOps}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestEnvVars(t *testing.T) {
	e := map[string]string{
		"MXEDGE_SERVER_NAME":       "example.org",
		"MXEDGE_UPSTREAM":          "unix:/run/synapse.sock",
		"MXEDGE_PUBLIC_BASEURL":    "https://matrix.example.org",
		"MXEDGE_LISTEN_HTTP":       ":80",
		"MXEDGE_LISTEN_HTTPS":      ":8443",
		"MXEDGE_LISTEN_FEDERATION": ":8448",
		"MXEDGE_LISTEN_OPS":        "127.0.0.1:9101",
		"MXEDGE_LOG_LEVEL":         "warn",
		"MXEDGE_LOG_FORMAT":        "text",
		"MXEDGE_TRUSTED_PROXIES":   "10.0.0.0/8, 192.0.2.1 ,",
		"MXEDGE_TLS_MODE":          "files",
		"MXEDGE_TLS_EMAIL":         "admin@example.org",
		"MXEDGE_TLS_DOMAINS":       "matrix.example.org,example.org",
	}
	// tls files mode needs readable files: only check the values, not validity.
	c := Defaults()
	for _, v := range EnvVars() {
		if v.set != nil {
			if val := e[v.Name]; val != "" {
				v.set(c, val)
			} else {
				t.Errorf("%s: not covered by this test", v.Name)
			}
		}
	}
	got := []any{c.ServerName, c.Upstream, c.PublicBaseURL, c.Listen, c.Log.Level, c.Log.Format, c.TrustedProxies, c.TLS.Mode, c.TLS.Email, c.TLS.Domains}
	want := []any{"example.org", "unix:/run/synapse.sock", "https://matrix.example.org", Listen{":80", ":8443", ":8448", "127.0.0.1:9101"},
		"warn", "text", []string{"10.0.0.0/8", "192.0.2.1"}, "files", "admin@example.org", []string{"matrix.example.org", "example.org"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	// And through Load (TLS off so that no file is needed).
	delete(e, "MXEDGE_TLS_MODE")
	e["MXEDGE_LISTEN_FEDERATION"] = ""
	c2, err := Load(LoadOptions{Getenv: env(e)})
	if err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if c2.UpstreamSocket() != "/run/synapse.sock" || c2.UpstreamURL().String() != "http://localhost" {
		t.Errorf("unix upstream: got socket %q url %q", c2.UpstreamSocket(), c2.UpstreamURL())
	}
	if got := c2.PublicBaseURLParsed().String(); got != "https://matrix.example.org/" {
		t.Errorf("public base URL: got %q, want trailing slash added", got)
	}
	wantP := Prefixes{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}
	if got := c2.TrustedProxyPrefixes(); !reflect.DeepEqual(got, wantP) {
		t.Errorf("trusted proxies: got %v, want %v", got, wantP)
	}

	// MXEDGE_CONFIG names the file when no path is given.
	p := testkit.TempFile(t, "m.yaml", "server_name: fromfile.example\n")
	c3, err := Load(LoadOptions{Getenv: env(map[string]string{"MXEDGE_CONFIG": p})})
	if err != nil || c3.ServerName != "fromfile.example" || c3.File != p {
		t.Errorf("MXEDGE_CONFIG: got %v, %v", c3, err)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		p := testkit.TempFile(t, "e.yaml", content)
		c, err := Load(LoadOptions{Path: p, Flags: Overrides{ServerName: "example.org"}})
		if err != nil {
			t.Fatalf("%q: got %v, want nil", content, err)
		}
		want := Defaults()
		if c.Limits != want.Limits || c.Timeouts != want.Timeouts || c.Listen != want.Listen {
			t.Errorf("%q: got %+v, want defaults", content, c)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(LoadOptions{Path: filepath.Join(t.TempDir(), "nope.yaml")})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

// TestStrictDecoding: unknown keys, wrong types, duplicates, each with its
// line and full key, all reported at once.
func TestStrictDecoding(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // "line key: message part"
	}{
		{name: "misspelt top key", yaml: "server_name: example.org\nupstrem: http://x\n",
			want: []string{`2 upstrem: unknown key (did you mean "upstream"?)`}},
		{name: "misspelt nested key", yaml: "server_name: example.org\nlisten:\n  http: \":80\"\n  opps: \":9\"\n",
			want: []string{`4 listen.opps: unknown key (did you mean "ops"?)`}},
		{name: "unknown key lists valid ones", yaml: "server_name: example.org\nlog:\n  colour: red\n",
			want: []string{"3 log.colour: unknown key (valid: access, format, level)"}},
		{name: "deep unknown key", yaml: "server_name: example.org\nrate_limits:\n  rc_login:\n    address:\n      burst: 3\n",
			want: []string{"5 rate_limits.rc_login.address.burst: unknown key"}},
		{name: "wrong scalar type", yaml: "server_name: example.org\nlog:\n  access: maybe\n",
			want: []string{`3 log.access: must be true or false, got "maybe"`}},
		{name: "mapping for string", yaml: "server_name: {a: 1}\n",
			want: []string{"1 server_name: must be a string, got a mapping"}},
		{name: "scalar for list", yaml: "server_name: example.org\ntrusted_proxies: 10.0.0.0/8\n",
			want: []string{`2 trusted_proxies: must be a list, got "10.0.0.0/8"`}},
		{name: "list item type", yaml: "server_name: example.org\ncors:\n  allow_origins:\n    - https://a.example\n    - [x]\n",
			want: []string{"5 cors.allow_origins[1]: must be a string, got a list"}},
		{name: "scalar for section", yaml: "server_name: example.org\nlimits: 5\n",
			want: []string{`2 limits: must be a mapping, got "5"`}},
		{name: "bad size and duration", yaml: "server_name: example.org\nlimits:\n  max_body_size: lots\ntimeouts:\n  idle: 5\n",
			want: []string{`3 limits.max_body_size: invalid size "lots"`, "5 timeouts.idle: duration 5 has no unit"}},
		{name: "duplicate key", yaml: "server_name: example.org\nlog:\n  level: info\n  level: debug\n",
			want: []string{"4 log.level: duplicate key (first set on line 3)"}},
		{name: "root not a mapping", yaml: "- a\n- b\n",
			want: []string{"1 : must be a mapping of keys"}},
		{name: "syntax error", yaml: "server_name: example.org\nlisten:\n  http: \":80\n",
			want: []string{"invalid YAML"}},
		{name: "two documents", yaml: "server_name: example.org\n---\nserver_name: b\n",
			want: []string{"2 : holds more than one YAML document"}},
		{name: "all at once", yaml: "server_nme: example.org\nlisten:\n  htp: \":80\"\nlimits:\n  max_body_size: x\nlog:\n  level: loud\n",
			want: []string{"0 server_name: required", `1 server_nme: unknown key (did you mean "server_name"?)`, `3 listen.htp: unknown key (did you mean "http"?)`,
				`5 limits.max_body_size: invalid size "x"`, `7 log.level: must be debug, info, warn or error, got "loud"`}},
		{name: "null keeps defaults for scalars", yaml: "server_name: example.org\nlimits:\n  max_body_size:\nlog:\n  level: ~\n"},
		{name: "short unknown key", yaml: "server_name: example.org\nx: 1\n",
			want: []string{"2 x: unknown key"}},
		{name: "merge key in a section", yaml: "server_name: example.org\nlog: &l {level: warn}\ntimeouts:\n  <<: {idle: 5s}\n  shutdown: 1s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testkit.TempFile(t, "c.yaml", tt.yaml)
			_, err := Load(LoadOptions{Path: p})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			probs := problemsOf(t, err)
			if len(probs) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d %q", len(probs), probs, len(tt.want), tt.want)
			}
			for i, pr := range probs {
				if pr.File != p {
					t.Errorf("problem %d: got file %q, want %q", i, pr.File, p)
				}
				got := strings.TrimSpace(strings.Join([]string{strconv.Itoa(pr.Line), pr.Key + ":", pr.Msg}, " "))
				if tt.name == "syntax error" {
					got = pr.Msg
				}
				if !strings.HasPrefix(got, tt.want[i]) {
					t.Errorf("problem %d: got %q, want prefix %q", i, got, tt.want[i])
				}
			}
		})
	}
}

// TestAliasBombs: self-referencing aliases and merge keys end quickly with a problem.
func TestAliasBombs(t *testing.T) {
	for _, in := range []string{
		"<<: &a [*a]\n",
		"&a {<<: [*a, *a]}\n",
		"log: &a {<<: [*a, *a, *a]}\n",
		"x: &a [*a, *a]\nwell_known:\n  client: {y: *a}\n",
	} {
		done := make(chan error, 1)
		go func() {
			_, err := load([]byte(in), "b.yaml", func(string) string { return "" }, Overrides{})
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%q: got nil, want problems", in)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: load did not return", in)
		}
	}
}
