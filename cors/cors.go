package cors

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/mxedge/mxedge/h1"

	"github.com/mxedge/mxedge/config"
)

// Header values sent on every response. MaxAge is the preflight cache lifetime in seconds.
const (
	AllowMethods  = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
	AllowHeaders  = "X-Requested-With, Content-Type, Authorization"
	MaxAge        = 86400
	ExposeAlways  = "Retry-After"
	synapseExpose = "Synapse-Trace-Id, Server"
)

// Canonical header keys.
const (
	hAllowOrigin  = "Access-Control-Allow-Origin"
	hAllowMethods = "Access-Control-Allow-Methods"
	hAllowHeaders = "Access-Control-Allow-Headers"
	hExpose       = "Access-Control-Expose-Headers"
	hMaxAge       = "Access-Control-Max-Age"
	hVary         = "Vary"
	acPrefix      = "access-control-"
)

// Policy applies one CORS configuration. It is immutable after New apart from an internal cache
// and safe for concurrent use. The zero value is not usable; build one with New.
//
// The header values Apply and Preflight assign are []string slices shared by every response:
// callers must not modify them in place (assigning a new slice to the header key is fine;
// Header.Add/Set on the same key replace or copy as the net/http API does, since the shared
// slices have no spare capacity).
type Policy struct {
	anyOrigin bool
	origins   []allowed // as config.Origins.List: lower-case, default port dropped

	allowOrigin  []string // {"*"}
	allowMethods []string
	allowHeaders []string
	maxAge       []string
	vary         []string // {"Origin"}
	exposeNone   []string // {"Retry-After"}
	exposeSyn    []string // Synapse's value merged

	last atomic.Pointer[exposeEntry] // merged value for the last other upstream value
}

type allowed struct {
	origin string   // "https://app.example.org"
	value  []string // {origin}, echoed when the request spells it the same way
}

type exposeEntry struct {
	upstream string
	merged   []string
}

// New builds a Policy from cors.allow_origins as config parsed it
// (Config.CORSOrigins): any origin, or a list of origins already written as
// browsers send them (lowercase, no default port, no path). Requests are
// still matched case-insensitively. The zero Origins (a Config that was not
// validated) is an error: it would allow nothing, silently.
func New(o config.Origins) (*Policy, error) {
	if o.IsZero() {
		return nil, errors.New("cors.allow_origins: not parsed: build the Policy from a Config that config.Load or Config.Validate accepted")
	}
	p := &Policy{
		anyOrigin:    o.Any(),
		allowOrigin:  []string{"*"},
		allowMethods: []string{AllowMethods},
		allowHeaders: []string{AllowHeaders},
		maxAge:       []string{strconv.Itoa(MaxAge)},
		vary:         []string{"Origin"},
		exposeNone:   []string{ExposeAlways},
		exposeSyn:    []string{mergeExpose([]string{synapseExpose})},
	}
	for _, origin := range o.List() {
		p.origins = append(p.origins, allowed{origin: origin, value: []string{origin}})
	}
	return p, nil
}

// AllowsAny reports whether the policy allows every origin ("*").
func (p *Policy) AllowsAny() bool { return p.anyOrigin }

// Apply makes h carry exactly one of each CORS header for a response to a request with Origin
// origin (empty when the request had none):
//   - Access-Control-Allow-Origin: "*", or with a list of origins the request's origin when it
//     matches one (scheme and host compared case-insensitively) and no header when it does not;
//     with a list, Vary gains "Origin" once (existing Vary values are kept);
//   - Access-Control-Allow-Methods and Access-Control-Allow-Headers (AllowMethods, AllowHeaders);
//   - Access-Control-Expose-Headers: every header name the upstream exposed (all its lines and
//     comma lists) plus Retry-After, deduplicated case-insensitively, on one line.
//
// Every other Access-Control-* header already in h (the upstream's Max-Age, Allow-Credentials…),
// under any key spelling, is removed. h may hold the upstream's copies; Apply owns h for the call.
// It allocates nothing when the upstream exposed nothing or exactly "Synapse-Trace-Id, Server".
func (p *Policy) Apply(h http.Header, origin string) {
	var expose []string // the upstream's Expose-Headers lines
	varyHasOrigin := false
	for k, v := range h {
		if len(k) >= len(acPrefix) && strings.EqualFold(k[:len(acPrefix)], acPrefix) {
			if strings.EqualFold(k, hExpose) {
				if expose == nil {
					expose = v
				} else {
					expose = append(append([]string(nil), expose...), v...) // rare: several key spellings
				}
			}
			switch k {
			case hAllowOrigin, hAllowMethods, hAllowHeaders, hExpose:
				// overwritten (or deleted) below: cheaper than delete + insert
			default:
				delete(h, k)
			}
			continue
		}
		if !p.anyOrigin && !varyHasOrigin && strings.EqualFold(k, hVary) {
			varyHasOrigin = hasToken(v, "Origin") || hasToken(v, "*")
		}
	}

	if p.anyOrigin {
		h[hAllowOrigin] = p.allowOrigin
	} else {
		if v := p.match(origin); v != nil {
			h[hAllowOrigin] = v
		} else {
			delete(h, hAllowOrigin)
		}
		if !varyHasOrigin {
			if old := h[hVary]; len(old) == 0 {
				h[hVary] = p.vary
			} else {
				h[hVary] = append(old[:len(old):len(old)], "Origin")
			}
		}
	}
	h[hAllowMethods] = p.allowMethods
	h[hAllowHeaders] = p.allowHeaders
	h[hExpose] = p.exposeFor(expose)
}

// match returns the Allow-Origin value for origin, or nil when origin is not allowed.
func (p *Policy) match(origin string) []string {
	if origin == "" {
		return nil
	}
	for i := range p.origins {
		a := &p.origins[i]
		if origin == a.origin {
			return a.value
		}
		if strings.EqualFold(origin, a.origin) {
			return []string{origin} // echo the request's own spelling: browsers compare bytes
		}
	}
	return nil
}

// exposeFor returns the merged Expose-Headers value for the upstream's lines.
func (p *Policy) exposeFor(upstream []string) []string {
	switch {
	case len(upstream) == 0 || (len(upstream) == 1 && strings.TrimSpace(upstream[0]) == ""):
		return p.exposeNone
	case len(upstream) > 1:
		return []string{mergeExpose(upstream)}
	case upstream[0] == synapseExpose:
		return p.exposeSyn
	}
	if e := p.last.Load(); e != nil && e.upstream == upstream[0] {
		return e.merged
	}
	e := &exposeEntry{upstream: upstream[0], merged: []string{mergeExpose(upstream)}}
	p.last.Store(e)
	return e.merged
}

// mergeExpose joins the header names of lines (comma lists) and Retry-After, dropping empty
// names and case-insensitive duplicates (the first spelling wins). Linear in the names: a
// long list from the upstream is deduplicated through a set.
func mergeExpose(lines []string) string {
	var names []string
	var seen map[string]bool // lower-cased names, once the list is long
	add := func(n string) {
		switch {
		case seen != nil:
			k := strings.ToLower(n)
			if seen[k] {
				return
			}
			seen[k] = true
		case len(names) >= 16:
			seen = make(map[string]bool, 2*len(names))
			for _, have := range names {
				seen[strings.ToLower(have)] = true
			}
			seen[strings.ToLower(n)] = true
			if len(seen) == len(names) {
				return
			}
		default:
			for _, have := range names {
				if h1.EqualFold(have, n) {
					return
				}
			}
		}
		names = append(names, n)
	}
	for n := range h1.ListTokens(lines) {
		add(n)
	}
	add(ExposeAlways)
	return strings.Join(names, ", ")
}

// hasToken reports whether the comma-separated lines hold token (case-insensitive).
func hasToken(lines []string, token string) bool {
	for t := range h1.ListTokens(lines) {
		if h1.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// Preflight answers an OPTIONS request: status 204 with the headers Apply sets plus
// Access-Control-Max-Age (MaxAge seconds). It reads only the request's Origin header and never
// runs endpoint logic.
func (p *Policy) Preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	p.Apply(h, originOf(r.Header))
	h[hMaxAge] = p.maxAge
	w.WriteHeader(http.StatusNoContent)
}

// originOf returns the first Origin value without allocating.
func originOf(h http.Header) string {
	if v := h["Origin"]; len(v) > 0 {
		return v[0]
	}
	return ""
}
