package config

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

// TestOriginRule: each cors.allow_origins entry is normalised to what a
// browser sends in Origin, or refused with its message.
func TestOriginRule(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // the normalised origin; "" when refused
		wantMsg string // the problem's message after "cors.allow_origins[0]: "
	}{
		{name: "plain", in: "https://app.example.org", want: "https://app.example.org"},
		{name: "trailing slash", in: "https://app.example.org/", want: "https://app.example.org"},
		{name: "upper case", in: "HTTPS://App.Example.org", want: "https://app.example.org"},
		{name: "default https port", in: "https://app.example.org:443", want: "https://app.example.org"},
		{name: "default http port", in: "http://localhost:80/", want: "http://localhost"},
		{name: "https on port 80 kept", in: "https://app.example.org:80", want: "https://app.example.org:80"},
		{name: "other port", in: "http://localhost:3000", want: "http://localhost:3000"},
		{name: "port leading zero", in: "https://app.example.org:08448", want: "https://app.example.org:8448"},
		{name: "empty port", in: "https://app.example.org:", want: "https://app.example.org"},
		{name: "IPv6", in: "https://[2001:DB8::1]:8443/", want: "https://[2001:db8::1]:8443"},
		{name: "path", in: "https://app.example.org/app",
			wantMsg: `must be scheme://host[:port] only (no path other than "/", no query, fragment or user info), got "https://app.example.org/app"`},
		{name: "query", in: "https://app.example.org/?x",
			wantMsg: `must be scheme://host[:port] only (no path other than "/", no query, fragment or user info), got "https://app.example.org/?x"`},
		{name: "fragment", in: "https://app.example.org#x",
			wantMsg: `must be scheme://host[:port] only (no path other than "/", no query, fragment or user info), got "https://app.example.org#x"`},
		{name: "user info", in: "https://u@app.example.org",
			wantMsg: `must be scheme://host[:port] only (no path other than "/", no query, fragment or user info), got "https://u@app.example.org"`},
		{name: "no scheme", in: "app.example.org", wantMsg: `must be an origin like https://app.example.org, got "app.example.org"`},
		{name: "other scheme", in: "ftp://app.example.org", wantMsg: `must be an origin like https://app.example.org, got "ftp://app.example.org"`},
		{name: "no host", in: "https://", wantMsg: `must be an origin like https://app.example.org, got "https://"`},
		{name: "opaque", in: "https:app.example.org", wantMsg: `must be an origin like https://app.example.org, got "https:app.example.org"`},
		{name: "port zero", in: "https://app.example.org:0", wantMsg: `port must be a number in 1-65535, got "https://app.example.org:0"`},
		{name: "port too big", in: "https://app.example.org:65536", wantMsg: `port must be a number in 1-65535, got "https://app.example.org:65536"`},
		{name: "null", in: "null", wantMsg: `"null" is not allowed (sandboxed documents and file: pages send it), got "null"`},
		{name: "wildcard host", in: "https://*.example.org", wantMsg: `wildcards are not supported in an origin: use ["*"] or exact origins, got "https://*.example.org"`},
		{name: "not ASCII", in: "https://bücher.example", wantMsg: `host must be ASCII: write an internationalised name in its xn-- form, as browsers send it, got "https://bücher.example"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadRule(t, "cors:\n  allow_origins: ["+strconv.Quote(tt.in)+"]\n", 3, "cors.allow_origins[0]", tt.wantMsg)
			if c == nil {
				return
			}
			if o := c.CORSOrigins(); o.Any() || !slices.Equal(o.List(), []string{tt.want}) {
				t.Errorf("got any=%v %q, want [%s]", o.Any(), o.List(), tt.want)
			}
		})
	}
}

// TestOriginList: the rules of the list as a whole.
func TestOriginList(t *testing.T) {
	tests := []struct {
		name     string
		in       string // the YAML list
		wantAny  bool
		want     []string
		wantProb []string // "key: message" of each problem
	}{
		{name: "star", in: `["*"]`, wantAny: true},
		{name: "list in order", in: `["https://b.example", "HTTP://Localhost:3000/"]`, want: []string{"https://b.example", "http://localhost:3000"}},
		{name: "empty", in: `[]`, wantProb: []string{`cors.allow_origins: must not be empty: use ["*"] or list the allowed origins`}},
		{name: "star mixed", in: `["https://a.example", "*"]`, wantProb: []string{`cors.allow_origins[1]: "*" must be alone: use ["*"] or list exact origins`}},
		{name: "same origin spelt twice", in: `["https://a.example", "HTTPS://A.example:443/"]`,
			wantProb: []string{`cors.allow_origins[1]: duplicate of cors.allow_origins[0] (both are https://a.example), got "HTTPS://A.example:443/"`}},
		{name: "every problem at once", in: `["https://a.example/x", "*", "null"]`, wantProb: []string{
			`cors.allow_origins[0]: must be scheme://host[:port] only (no path other than "/", no query, fragment or user info), got "https://a.example/x"`,
			`cors.allow_origins[1]: "*" must be alone: use ["*"] or list exact origins`,
			`cors.allow_origins[2]: "null" is not allowed (sandboxed documents and file: pages send it), got "null"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(LoadOptions{Path: testkit.TempFile(t, "c.yaml", base+"cors:\n  allow_origins: "+tt.in+"\n")})
			if tt.wantProb != nil {
				var got []string
				for _, pr := range problemsOf(t, err) {
					got = append(got, pr.Key+": "+pr.Msg)
				}
				if !slices.Equal(got, tt.wantProb) {
					t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.wantProb, "\n"))
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if o := c.CORSOrigins(); o.Any() != tt.wantAny || !slices.Equal(o.List(), tt.want) {
				t.Errorf("got any=%v %q, want any=%v %q", o.Any(), o.List(), tt.wantAny, tt.want)
			}
		})
	}
}
