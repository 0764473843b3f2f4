package ratelimit

import (
	"strings"

	"github.com/mxedge/mxedge/config"
)

// rule is a compiled admin rule (rate_limits.rules).
type rule struct {
	name    string // "rule:<name>", the category label
	methods []string
	segs    []string // pattern segments; "*" one segment; a final "**" any rest
	rest    bool     // the pattern ended in "**" (not in segs)
	key     string
	limit   Limit
}

// compileRule compiles r, whose path Config.Validate parsed into path.
func compileRule(r config.RateLimitRule, path config.RulePath) rule {
	cr := rule{name: "rule:" + r.Name, methods: r.Methods, segs: path.Segments, rest: path.Rest, key: r.Key,
		limit: NewLimit(r.PerSecond, r.BurstCount)}
	if cr.key == "" {
		cr.key = config.RuleKeyIP
	}
	return cr
}

// match reports whether the rule applies to method and the decoded path. It
// does not allocate.
func (r *rule) match(method, path string) bool {
	if len(r.methods) > 0 {
		ok := false
		for _, m := range r.methods {
			if m == method {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if path == "" || path[0] != '/' {
		return false
	}
	if len(r.segs) == 0 {
		return r.rest || path == "/"
	}
	p := path[1:]
	last := len(r.segs) - 1
	for i, s := range r.segs {
		seg, after, more := strings.Cut(p, "/")
		if s != "*" && s != seg {
			return false
		}
		if i == last {
			// The path may go on only when the pattern ends in "**".
			return !more || r.rest
		}
		if !more {
			return false
		}
		p = after
	}
	return false
}
