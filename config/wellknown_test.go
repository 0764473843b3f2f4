package config

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestCheckServerName(t *testing.T) {
	tests := []struct {
		in     string
		wantOK bool
	}{
		{"example.org", true},
		{"matrix.example.org:443", true},
		{"matrix.example.org:8448", true},
		{"localhost", true},
		{"xn--bcher-kva.example", true},
		{"1.2.3.4", true},
		{"1.2.3.4:8448", true},
		{"[2001:db8::1]", true},
		{"[2001:db8::1]:8448", true},
		{"[::1]:1", true},
		{"a.b.c:65535", true},
		{"", false},
		{"example.org:", false},
		{"example.org:0", false},
		{"example.org:65536", false},
		{"example.org:+80", false},
		{"example.org:080808", false},
		{"https://example.org", false},
		{"example.org/path", false},
		{"2001:db8::1", false},
		{"[2001:db8::1", false},
		{"[2001:db8::1]x", false},
		{"[1.2.3.4]", false},
		{"[fe80::1%eth0]", false},
		{"1.2.3.256", false},
		{"1.2.3", false},
		{"exa mple.org", false},
		{"exa_mple.org", false},
		{"-example.org", false},
		{"example..org", false},
		{"example.org.", false},
		{strings.Repeat("a", 64) + ".org", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := CheckServerName(tt.in)
			if (err == nil) != tt.wantOK {
				t.Errorf("CheckServerName(%q): got %v, want ok=%v", tt.in, err, tt.wantOK)
			}
		})
	}
}

func TestCheckUserID(t *testing.T) {
	tests := []struct {
		in     string
		wantOK bool
	}{
		{"@admin:example.org", true},
		{"@a.b_c=d-e/f+g:example.org:8448", true},
		{"@Legacy!User:[::1]:8448", true},
		{"@admin:1.2.3.4", true},
		{"admin:example.org", false},
		{"@admin", false},
		{"@:example.org", false},
		{"@ad min:example.org", false},
		{"@admin:", false},
		{"@admin:exa mple.org", false},
		{"@" + strings.Repeat("a", 250) + ":example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := CheckUserID(tt.in)
			if (err == nil) != tt.wantOK {
				t.Errorf("CheckUserID(%q): got %v, want ok=%v", tt.in, err, tt.wantOK)
			}
		})
	}
}

// decodeWellKnown decodes a well_known YAML section as Load does.
func decodeWellKnown(t *testing.T, src string) *Config {
	t.Helper()
	c := &Config{}
	if err := yaml.Unmarshal([]byte(src), &c.WellKnown); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return c
}

func TestValidateWellKnown(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantKeys []string // keys of the problems, in order; nil = valid
	}{
		{name: "empty", yaml: `{}`},
		{name: "full", yaml: `
client:
  m.identity_server: {base_url: "https://vector.im"}
  io.element.e2ee: {default: false}
  org.matrix.msc4143.rtc_foci: [{type: livekit, livekit_service_url: "https://rtc.example.org"}]
  m.tile_server: {map_style_url: "https://tiles.example.org/style.json"}
  org.example.when: 2024-01-02
  org.example.n: 1.5
server: matrix.example.org:443
support:
  contacts:
    - {role: m.role.admin, matrix_id: "@admin:example.org", email_address: admin@example.org}
    - {role: m.role.security, email_address: security@example.org}
    - {role: org.example.moderator, matrix_id: "@mod:other.example"}
  support_page: https://example.org/support
`},
		{name: "support page only", yaml: `support: {support_page: "https://example.org/help"}`},
		{name: "contacts only", yaml: `support: {contacts: [{role: m.role.admin, email_address: a@example.org}]}`},
		{name: "server with url", yaml: `server: https://matrix.example.org`, wantKeys: []string{"well_known.server"}},
		{name: "server bare ipv6", yaml: `server: "2001:db8::1"`, wantKeys: []string{"well_known.server"}},
		{name: "server bad port", yaml: `server: "example.org:99999"`, wantKeys: []string{"well_known.server"}},
		{name: "client overrides homeserver", yaml: `client: {m.homeserver: {base_url: "https://x.org"}}`,
			wantKeys: []string{"well_known.client.m.homeserver"}},
		{name: "client empty key", yaml: `client: {"": 1}`, wantKeys: []string{"well_known.client"}},
		{name: "identity server not a mapping", yaml: `client: {m.identity_server: "https://vector.im"}`,
			wantKeys: []string{"well_known.client.m.identity_server"}},
		{name: "identity server relative", yaml: `client: {m.identity_server: {base_url: vector.im}}`,
			wantKeys: []string{"well_known.client.m.identity_server.base_url"}},
		{name: "identity server missing base_url", yaml: `client: {m.identity_server: {}}`,
			wantKeys: []string{"well_known.client.m.identity_server.base_url"}},
		{name: "client non-string keys", yaml: `client: {org.example.x: {1: a}}`,
			wantKeys: []string{"well_known.client.org.example.x"}},
		{name: "client nested inf", yaml: `client: {org.example.x: [1, .inf]}`,
			wantKeys: []string{"well_known.client.org.example.x[1]"}},
		{name: "support empty", yaml: `support: {}`, wantKeys: []string{"well_known.support"}},
		{name: "support null is absent", yaml: `support: null`},
		{name: "support contacts empty", yaml: `support: {contacts: []}`, wantKeys: []string{"well_known.support.contacts"}},
		{name: "support contacts empty with page", yaml: `support: {contacts: [], support_page: "https://x.org"}`},
		{name: "support contacts not a list", yaml: `support: {contacts: {role: m.role.admin}}`,
			wantKeys: []string{"well_known.support.contacts"}},
		{name: "support page relative", yaml: `support: {support_page: /support}`,
			wantKeys: []string{"well_known.support.support_page"}},
		{name: "support page not a string", yaml: `support: {support_page: 3}`,
			wantKeys: []string{"well_known.support.support_page"}},
		{name: "contact without role", yaml: `support: {contacts: [{email_address: a@example.org}]}`,
			wantKeys: []string{"well_known.support.contacts[0].role"}},
		{name: "contact typo role", yaml: `support: {contacts: [{role: m.role.admim, email_address: a@example.org}]}`,
			wantKeys: []string{"well_known.support.contacts[0].role"}},
		{name: "contact uppercase custom role", yaml: `support: {contacts: [{role: Org.Example, email_address: a@example.org}]}`,
			wantKeys: []string{"well_known.support.contacts[0].role"}},
		{name: "contact without address", yaml: `support: {contacts: [{role: m.role.admin}]}`,
			wantKeys: []string{"well_known.support.contacts[0]"}},
		{name: "contact bad mxid", yaml: `support: {contacts: [{role: m.role.admin, matrix_id: "admin@example.org"}]}`,
			wantKeys: []string{"well_known.support.contacts[0].matrix_id"}},
		{name: "contact bad email", yaml: `support: {contacts: [{role: m.role.admin, email_address: "Admin <a@example.org>"}]}`,
			wantKeys: []string{"well_known.support.contacts[0].email_address"}},
		{name: "contact email no at", yaml: `support: {contacts: [{role: m.role.admin, email_address: "example.org"}]}`,
			wantKeys: []string{"well_known.support.contacts[0].email_address"}},
		{name: "contact not a mapping", yaml: `support: {contacts: ["@admin:example.org"]}`,
			wantKeys: []string{"well_known.support.contacts[0]"}},
		{name: "every problem at once", yaml: `
server: "x:0"
client: {m.homeserver: 1}
support: {contacts: [{role: 7}], support_page: ftp://x}
`, wantKeys: []string{
			"well_known.server",
			"well_known.client.m.homeserver",
			"well_known.support.support_page",
			"well_known.support.contacts[0].role",
			"well_known.support.contacts[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeWellKnown(t, tt.yaml).ValidateWellKnown()
			var got []string
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					got = append(got, p.Key)
				}
			} else if err != nil {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			if strings.Join(got, " ") != strings.Join(tt.wantKeys, " ") {
				t.Errorf("problem keys: got %q, want %q (%v)", got, tt.wantKeys, err)
			}
		})
	}
}
