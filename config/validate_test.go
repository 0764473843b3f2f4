package config

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

// base is a valid file that each validation case extends.
const base = "server_name: example.org\n"

func TestValidationRules(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string // appended to base (server_name may be overridden by a later duplicate-free file)
		noBase  bool
		wantKey string // "" = valid
		wantMsg string
	}{
		// server_name
		{name: "server_name missing", noBase: true, yaml: "upstream: http://127.0.0.1:8008\n", wantKey: "server_name", wantMsg: "required"},
		{name: "server_name with port", noBase: true, yaml: "server_name: example.org:8448\n"},
		{name: "server_name IPv4", noBase: true, yaml: "server_name: 192.0.2.1\n"},
		{name: "server_name IPv6", noBase: true, yaml: "server_name: \"[2001:db8::1]:8448\"\n"},
		{name: "server_name bare IPv6", noBase: true, yaml: "server_name: \"2001:db8::1\"\n", wantKey: "server_name", wantMsg: "brackets"},
		{name: "server_name URL", noBase: true, yaml: "server_name: https://example.org\n", wantKey: "server_name", wantMsg: "not a URL"},
		{name: "server_name underscore", noBase: true, yaml: "server_name: ex_ample.org\n", wantKey: "server_name", wantMsg: "not a Matrix server name"},
		{name: "server_name bad port", noBase: true, yaml: "server_name: example.org:99999\n", wantKey: "server_name", wantMsg: "port"},
		// upstream
		{name: "upstream https", yaml: "upstream: https://synapse.internal:8448\n"},
		{name: "upstream with path", yaml: "upstream: http://127.0.0.1:8008/synapse\n", wantKey: "upstream", wantMsg: "must not hold a path"},
		{name: "upstream unix", yaml: "upstream: unix:/run/synapse.sock\n"},
		{name: "upstream unix triple slash", yaml: "upstream: unix:///run/synapse.sock\n"},
		{name: "upstream unix relative", yaml: "upstream: unix:run/synapse.sock\n", wantKey: "upstream", wantMsg: "absolute path"},
		{name: "upstream no scheme", yaml: "upstream: 127.0.0.1:8008\n", wantKey: "upstream", wantMsg: "http:// or https://"},
		{name: "upstream ftp", yaml: "upstream: ftp://x\n", wantKey: "upstream", wantMsg: "http:// or https://"},
		{name: "upstream query", yaml: "upstream: http://x/?a=1\n", wantKey: "upstream", wantMsg: "query or fragment"},
		{name: "upstream fragment", yaml: "upstream: http://x/#f\n", wantKey: "upstream", wantMsg: "query or fragment"},
		{name: "upstream no host", yaml: "upstream: http:///x\n", wantKey: "upstream", wantMsg: "host"},
		{name: "upstream user info", yaml: "upstream: http://u:p@x\n", wantKey: "upstream", wantMsg: "user info"},
		{name: "upstream empty", yaml: "upstream: \"\"\n", wantKey: "upstream", wantMsg: "required"},
		// public_baseurl
		{name: "public_baseurl path", yaml: "public_baseurl: https://example.org/matrix\n"},
		{name: "public_baseurl relative", yaml: "public_baseurl: /matrix/\n", wantKey: "public_baseurl", wantMsg: "absolute"},
		{name: "public_baseurl query", yaml: "public_baseurl: https://m.example.org/?x\n", wantKey: "public_baseurl", wantMsg: "query"},
		{name: "public_baseurl scheme", yaml: "public_baseurl: ws://m.example.org/\n", wantKey: "public_baseurl", wantMsg: "absolute"},
		// listen
		{name: "listen ipv6", yaml: "listen:\n  http: \"[::1]:8080\"\n"},
		{name: "listen port 0", yaml: "listen:\n  http: \"127.0.0.1:0\"\n  ops: \"127.0.0.1:0\"\n"},
		{name: "listen hostname", yaml: "listen:\n  http: \"localhost:8080\"\n"},
		{name: "listen no port", yaml: "listen:\n  http: \"8080\"\n", wantKey: "listen.http", wantMsg: "host:port"},
		{name: "listen bad port", yaml: "listen:\n  ops: \":http\"\n", wantKey: "listen.ops", wantMsg: "port"},
		{name: "listen port range", yaml: "listen:\n  ops: \":70000\"\n", wantKey: "listen.ops", wantMsg: "port"},
		{name: "listen http empty with tls off", yaml: "listen:\n  http: \"\"\n", wantKey: "listen.http", wantMsg: "required while tls.mode is off"},
		{name: "listen ops empty allowed", yaml: "listen:\n  ops: \"\"\n"},
		{name: "listen same address", yaml: "listen:\n  http: \":9100\"\n  ops: \"127.0.0.1:9100\"\n", wantKey: "listen.ops", wantMsg: "already used by listen.http"},
		{name: "listen federation without tls", yaml: "listen:\n  federation: \":8448\"\n", wantKey: "listen.federation", wantMsg: "needs tls.mode"},
		{name: "listen https unused with tls off", yaml: "listen:\n  https: \":8080\"\n"},
		// CIDR lists
		{name: "trusted_proxies ok", yaml: "trusted_proxies: [10.0.0.0/8, 192.0.2.1, \"2001:db8::/32\", \"::1\"]\n"},
		{name: "trusted_proxies bad", yaml: "trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n", wantKey: "trusted_proxies[1]", wantMsg: "not a CIDR"},
		{name: "trusted_proxies hostname", yaml: "trusted_proxies: [proxy.local]\n", wantKey: "trusted_proxies[0]", wantMsg: "not an IP address"},
		{name: "trusted_proxies mapped", yaml: "trusted_proxies: [\"::ffff:10.0.0.0/104\"]\n"},
		{name: "trusted_proxies mapped short", yaml: "trusted_proxies: [\"::ffff:10.0.0.0/80\"]\n", wantKey: "trusted_proxies[0]", wantMsg: "IPv4-mapped"},
		{name: "allow_from bad", yaml: "admin_api:\n  allow_from: [\"127.0.0.1/32\", localhost]\n", wantKey: "admin_api.allow_from[1]", wantMsg: "not an IP address"},
		{name: "allow_from empty closes", yaml: "admin_api:\n  allow_from: []\n"},
		// forward
		{name: "extra_prefixes ok", yaml: "forward:\n  extra_prefixes: [\"/\", \"/_synapse/custom/\"]\n"},
		{name: "extra_prefixes relative", yaml: "forward:\n  extra_prefixes: [\"health\"]\n", wantKey: "forward.extra_prefixes[0]", wantMsg: "must start with \"/\""},
		{name: "extra_prefixes dots", yaml: "forward:\n  extra_prefixes: [\"/a/../b\"]\n", wantKey: "forward.extra_prefixes[0]", wantMsg: "dot segments"},
		{name: "extra_prefixes escape", yaml: "forward:\n  extra_prefixes: [\"/a%2F\"]\n", wantKey: "forward.extra_prefixes[0]", wantMsg: "plain path"},
		{name: "extra_prefixes query", yaml: "forward:\n  extra_prefixes: [\"/a?b\"]\n", wantKey: "forward.extra_prefixes[0]", wantMsg: "plain path"},
		{name: "extra_prefixes double slash", yaml: "forward:\n  extra_prefixes: [\"//a\"]\n", wantKey: "forward.extra_prefixes[0]", wantMsg: "empty segments"},
		// limits
		{name: "limits zero", yaml: "limits:\n  max_header_bytes: 0\n", wantKey: "limits.max_header_bytes", wantMsg: "must be > 0, got 0"},
		{name: "limits negative", yaml: "limits:\n  max_body_size: -1\n", wantKey: "limits.max_body_size", wantMsg: "must be > 0"},
		{name: "limits json over body", yaml: "limits:\n  max_body_size: 1M\n  max_json_body_size: 2M\n", wantKey: "limits.max_json_body_size", wantMsg: "<= limits.max_body_size (1M), got 2M"},
		{name: "limits json equal body", yaml: "limits:\n  max_body_size: 1M\n  max_json_body_size: 1M\n"},
		// timeouts
		{name: "timeouts negative", yaml: "timeouts:\n  idle: -1s\n", wantKey: "timeouts.idle", wantMsg: "must be >= 0"},
		{name: "timeouts zero", yaml: "timeouts:\n  read_header: 0\n  idle: 0\n  shutdown: 0s\n"},
		// log
		{name: "log level", yaml: "log:\n  level: INFO\n", wantKey: "log.level", wantMsg: "debug, info, warn or error"},
		{name: "log format", yaml: "log:\n  format: logfmt\n", wantKey: "log.format", wantMsg: "json or text"},
		{name: "log text", yaml: "log:\n  format: text\n  level: debug\n  access: false\n"},
		// cors
		{name: "cors origins", yaml: "cors:\n  allow_origins: [\"https://app.example.org\", \"http://localhost:3000\"]\n"},
		{name: "cors empty", yaml: "cors:\n  allow_origins: []\n", wantKey: "cors.allow_origins", wantMsg: "must not be empty"},
		{name: "cors star mixed", yaml: "cors:\n  allow_origins: [\"https://a.example\", \"*\"]\n", wantKey: "cors.allow_origins[1]", wantMsg: "must be alone"},
		{name: "cors trailing slash", yaml: "cors:\n  allow_origins: [\"https://a.example/\"]\n"},
		{name: "cors path", yaml: "cors:\n  allow_origins: [\"https://a.example/app\"]\n", wantKey: "cors.allow_origins[0]", wantMsg: "no path other than"},
		{name: "cors wildcard host", yaml: "cors:\n  allow_origins: [\"https://*.example.org\"]\n", wantKey: "cors.allow_origins[0]", wantMsg: "wildcards"},
		{name: "cors no scheme", yaml: "cors:\n  allow_origins: [\"app.example.org\"]\n", wantKey: "cors.allow_origins[0]", wantMsg: "origin like"},
		{name: "cors uppercase", yaml: "cors:\n  allow_origins: [\"https://App.example.org\"]\n"},
		{name: "cors duplicate", yaml: "cors:\n  allow_origins: [\"https://a.example\", \"HTTPS://A.example:443/\"]\n", wantKey: "cors.allow_origins[1]", wantMsg: "duplicate"},
		// sections are validated too
		{name: "tls section validated", yaml: "tls:\n  mode: sometimes\n", wantKey: "tls.mode", wantMsg: "acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := tt.yaml
			if !tt.noBase {
				content = base + content
			}
			p := testkit.TempFile(t, "c.yaml", content)
			c, err := Load(LoadOptions{Path: p})
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				if c.UpstreamURL() == nil || c.PublicBaseURLParsed() == nil {
					t.Errorf("parsed forms not filled")
				}
				return
			}
			probs := problemsOf(t, err)
			if len(probs) != 1 {
				t.Fatalf("got %d problems %v, want 1", len(probs), probs)
			}
			if probs[0].Key != tt.wantKey || !strings.Contains(probs[0].Msg, tt.wantMsg) {
				t.Errorf("got %s: %s, want %s: …%s…", probs[0].Key, probs[0].Msg, tt.wantKey, tt.wantMsg)
			}
			if probs[0].File != p {
				t.Errorf("got file %q, want %q", probs[0].File, p)
			}
			if _, inFile := c2lines(t, content)[tt.wantKey]; inFile && probs[0].Line == 0 {
				t.Errorf("got line 0 for key %s present in the file", tt.wantKey)
			}
		})
	}
}

// c2lines returns the key → line map of a YAML text.
func c2lines(t *testing.T, content string) map[string]int {
	p := &problems{lines: map[string]int{}}
	decodeFile([]byte(content), Defaults(), p)
	return p.lines
}

func TestParsedForms(t *testing.T) {
	reg := testkit.TempFile(t, "as.yaml", "id: bridge\nas_token: as_secret\nsender_localpart: bot\n")
	p := testkit.TempFile(t, "c.yaml", base+"public_baseurl: https://m.example.org/base\ntrusted_proxies: [10.1.2.3/8, \"2001:db8::1\"]\nadmin_api:\n  allow_from: [192.0.2.7]\n"+
		"cors:\n  allow_origins: [\"HTTPS://App.Example.org/\"]\n"+
		"rate_limits:\n  exempt: {addresses: [\"::ffff:192.0.2.8\"], appservice_registrations: ["+strconv.Quote(reg)+"]}\n"+
		"  rules: [{name: r, path: /a/*, per_second: 1, burst_count: 1}]\n")
	c, err := Load(LoadOptions{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if o := c.CORSOrigins(); o.Any() || !reflect.DeepEqual(o.List(), []string{"https://app.example.org"}) {
		t.Errorf("cors origins: got any=%v %q, want [https://app.example.org]", o.Any(), o.List())
	}
	rl := &c.RateLimits
	if got, want := prefixStrings(rl.ExemptPrefixes()), []string{"192.0.2.8/32"}; !reflect.DeepEqual(got, want) {
		t.Errorf("exempt prefixes: got %v, want %v", got, want)
	}
	if got := rl.RulePaths(); len(got) != 1 || !reflect.DeepEqual(got[0], RulePath{Segments: []string{"a", "*"}}) {
		t.Errorf("rule paths: got %#v, want one for /a/*", got)
	}
	if got := rl.Appservices(); len(got) != 1 || got[0].ASToken != "as_secret" || got[0].ID != "bridge" {
		t.Errorf("appservices: got %+v, want the bridge registration", got)
	}
	if got := c.PublicBaseURLParsed().String(); got != "https://m.example.org/base/" {
		t.Errorf("public base URL: got %q, want https://m.example.org/base/", got)
	}
	if got := c.PublicBaseURL; got != "https://m.example.org/base" {
		t.Errorf("PublicBaseURL field: got %q, want it as written", got)
	}
	if got, want := c.TrustedProxyPrefixes(), []string{"10.0.0.0/8", "2001:db8::1/128"}; !reflect.DeepEqual(prefixStrings(got), want) {
		t.Errorf("trusted proxies: got %v, want %v", got, want)
	}
	if got, want := c.AdminAllowPrefixes(), []string{"192.0.2.7/32"}; !reflect.DeepEqual(prefixStrings(got), want) {
		t.Errorf("admin allow: got %v, want %v", got, want)
	}
	if c.UpstreamSocket() != "" {
		t.Errorf("upstream socket: got %q, want empty", c.UpstreamSocket())
	}

	// Validate on a hand-built Config fills the same forms; a failing one keeps none.
	h := Defaults()
	h.ServerName = "example.org"
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := h.PublicBaseURLParsed().String(); got != "https://example.org/" {
		t.Errorf("hand-built: got %q, want https://example.org/", got)
	}
	if h.PublicBaseURL != "" {
		t.Errorf("Validate changed PublicBaseURL to %q", h.PublicBaseURL)
	}
	bad := Defaults()
	bad.ServerName = "example.org"
	bad.Log.Level = "loud"
	if err := bad.Validate(); err == nil || bad.UpstreamURL() != nil || !bad.CORSOrigins().IsZero() || bad.RateLimits.ExemptPrefixes() != nil {
		t.Errorf("invalid config: got err %v, upstream %v, origins %v, exempt %v; want error and no parsed forms",
			err, bad.UpstreamURL(), bad.CORSOrigins(), bad.RateLimits.ExemptPrefixes())
	}
	// A problem only in a section keeps the core forms out too.
	bad = Defaults()
	bad.ServerName = "example.org"
	bad.RateLimits.MaxKeys = 0
	if err := bad.Validate(); err == nil || bad.TrustedProxyPrefixes() != nil || bad.AdminAllowPrefixes() != nil {
		t.Errorf("invalid rate_limits: got err %v, admin allow %v; want error and no parsed forms", err, bad.AdminAllowPrefixes())
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
