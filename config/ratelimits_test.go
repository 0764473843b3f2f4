package config

import (
	"reflect"
	"strconv"
	"testing"
)

// TestRulePathRule: each rate_limits.rules[].path is parsed once into the
// RulePath the limiter matches with, or refused with its message.
func TestRulePathRule(t *testing.T) {
	tests := []struct {
		in      string
		want    RulePath
		wantMsg string // the problem's message after "rate_limits.rules[0].path: "
	}{
		{in: "/_matrix/client/*/sync", want: RulePath{Segments: []string{"_matrix", "client", "*", "sync"}}},
		{in: "/_matrix/media/**", want: RulePath{Segments: []string{"_matrix", "media"}, Rest: true}},
		{in: "/**", want: RulePath{Segments: []string{}, Rest: true}},
		{in: "/", want: RulePath{Segments: []string{""}}},
		{in: "", wantMsg: "is required"},
		{in: "_matrix/client", wantMsg: `must start with '/', got "_matrix/client"`},
		{in: "/a/**/b", wantMsg: `'**' may only be the last segment, got "/a/**/b"`},
		{in: "/a/b*", wantMsg: `'*' must be a whole segment ("*" or a final "**"), got "/a/b*"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c := loadRule(t, "rate_limits:\n  rules:\n    - {name: r, path: "+strconv.Quote(tt.in)+", per_second: 1, burst_count: 1}\n",
				4, "rate_limits.rules[0].path", tt.wantMsg)
			if c == nil {
				return
			}
			if got := c.RateLimits.RulePaths(); len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got %#v, want [%#v]", got, tt.want)
			}
		})
	}
}
