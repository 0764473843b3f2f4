package config

import (
	"fmt"
	"strconv"
	"testing"
)

// addressLists are the keys that take addresses, each with a file that sets
// it to one value (%s, a quoted YAML string) on line 3 and a reader of its
// parsed form.
var addressLists = []struct {
	key    string
	yaml   string
	parsed func(c *Config) Prefixes
}{
	{"trusted_proxies", "\ntrusted_proxies: [%s]\n", (*Config).TrustedProxyPrefixes},
	{"admin_api.allow_from", "admin_api:\n  allow_from: [%s]\n", (*Config).AdminAllowPrefixes},
	{"rate_limits.exempt.addresses", "rate_limits:\n  exempt: {addresses: [%s]}\n", func(c *Config) Prefixes { return c.RateLimits.ExemptPrefixes() }},
}

// TestAddressRule: every list of addresses accepts and refuses the same
// entries, with the same parsed prefix or the same message.
func TestAddressRule(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // the parsed prefix; "" when refused
		wantMsg string // the problem's message after "key[0]: "
	}{
		{name: "IPv4 CIDR", in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{name: "IPv4 address", in: "192.0.2.1", want: "192.0.2.1/32"},
		{name: "host bits masked", in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{name: "IPv6 CIDR", in: "2001:db8::/32", want: "2001:db8::/32"},
		{name: "IPv6 address", in: "2001:db8::1", want: "2001:db8::1/128"},
		{name: "spaces trimmed", in: " 192.0.2.1 ", want: "192.0.2.1/32"},
		{name: "mapped address unmapped", in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{name: "mapped /128 unmapped", in: "::ffff:10.0.0.1/128", want: "10.0.0.1/32"},
		{name: "mapped CIDR unmapped", in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{name: "mapped CIDR host bits masked", in: "::ffff:10.1.2.3/104", want: "10.0.0.0/8"},
		{name: "whole mapped range is all IPv4", in: "::ffff:0:0/96", want: "0.0.0.0/0"},
		{name: "mapped CIDR shorter than /96", in: "::ffff:10.0.0.0/80",
			wantMsg: `an IPv4-mapped prefix needs /96 or longer to have an IPv4 form (::ffff:10.0.0.0/104 is 10.0.0.0/8); write the IPv4 or the IPv6 CIDR, got "::ffff:10.0.0.0/80"`},
		{name: "zone", in: "fe80::1%eth0", wantMsg: `must not have a zone (%…): addresses are matched without zones, got "fe80::1%eth0"`},
		{name: "zone in CIDR", in: "fe80::1%eth0/64", wantMsg: `not a CIDR (like 10.0.0.0/8 or 2001:db8::/32), got "fe80::1%eth0/64"`},
		{name: "bits too long", in: "10.0.0.0/33", wantMsg: `not a CIDR (like 10.0.0.0/8 or 2001:db8::/32), got "10.0.0.0/33"`},
		{name: "host name", in: "proxy.local", wantMsg: `not an IP address or CIDR (like 10.0.0.0/8), got "proxy.local"`},
		{name: "empty", in: "", wantMsg: `not an IP address or CIDR (like 10.0.0.0/8), got ""`},
	}
	for _, tt := range tests {
		for _, l := range addressLists {
			t.Run(tt.name+"/"+l.key, func(t *testing.T) {
				c := loadRule(t, fmt.Sprintf(l.yaml, strconv.Quote(tt.in)), 3, l.key+"[0]", tt.wantMsg)
				if c == nil {
					return
				}
				if got := l.parsed(c); len(got) != 1 || got[0].String() != tt.want {
					t.Errorf("got %v, want [%s]", got, tt.want)
				}
			})
		}
	}
}
