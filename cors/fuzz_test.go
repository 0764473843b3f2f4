package cors

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzApply feeds client Origins and upstream header lines to Apply and checks the invariants:
// one line of each CORS header under its canonical key only, Allow-Origin only for an allowed
// origin, Retry-After exposed, no upstream Access-Control-* left behind.
func FuzzApply(f *testing.F) {
	f.Add("https://app.example.org", "access-control-allow-origin", "*", "Synapse-Trace-Id, Server")
	f.Add("HTTPS://APP.EXAMPLE.ORG", "Access-Control-Max-Age", "5", "a,,b, A")
	f.Add("null", "vary", "origin", "")
	policies := []*Policy{mustNew(f, "*"), mustNew(f, "https://app.example.org", "http://localhost:3000")}
	f.Fuzz(func(t *testing.T, origin, key, value, expose string) {
		for _, p := range policies {
			h := http.Header{key: {value}, "Access-Control-Expose-Headers": {expose}}
			p.Apply(h, origin)
			for k := range h {
				lk := strings.ToLower(k)
				if strings.HasPrefix(lk, "access-control-") && k != http.CanonicalHeaderKey(k) {
					t.Fatalf("non-canonical %q left in %q", k, h)
				}
			}
			for _, k := range []string{hAllowMethods, hAllowHeaders, hExpose} {
				if len(h[k]) != 1 {
					t.Fatalf("%s: got %q, want one line", k, h[k])
				}
			}
			if _, ok := h[hMaxAge]; ok {
				t.Fatalf("Max-Age left on a non-preflight response")
			}
			acao := h[hAllowOrigin]
			switch {
			case p.anyOrigin && (len(acao) != 1 || acao[0] != "*"):
				t.Fatalf("allow-origin: got %q, want [*]", acao)
			case !p.anyOrigin && len(acao) > 0 && (len(acao) != 1 || acao[0] != origin || p.match(origin) == nil):
				t.Fatalf("allow-origin: got %q for origin %q", acao, origin)
			}
			if !hasToken(h[hExpose], "Retry-After") {
				t.Fatalf("expose: got %q, want Retry-After in it", h[hExpose])
			}
		}
	})
}
