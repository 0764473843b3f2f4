package check

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mxedge/mxedge/h1"
)

const fixDuplicate = "let exactly one layer set CORS headers: mxedge replaces the homeserver's copies, so remove the add_header/header lines of any proxy in front of it (browsers reject \"*, *\")"

// headerOnce returns the single value of header k, or a problem: missing, sent
// on several lines, or a single line that repeats a comma-separated list where
// only one value is allowed (single=true).
func headerOnce(h http.Header, k string, single bool) (string, string) {
	vs := h.Values(k)
	switch {
	case len(vs) == 0:
		return "", "no " + k + " header"
	case len(vs) > 1:
		return "", fmt.Sprintf("%s sent %d times (%q): duplicate headers", k, len(vs), strings.Join(vs, `", "`))
	}
	v := vs[0]
	if single && strings.Contains(v, ",") {
		return "", fmt.Sprintf("%s is %q: duplicate values", k, v)
	}
	if !single && hasDuplicateToken(v) {
		return "", fmt.Sprintf("%s is %q: duplicate values", k, v)
	}
	return v, ""
}

func tokens(v string) []string {
	var out []string
	for t := range h1.ListTokens([]string{v}) {
		out = append(out, strings.ToLower(t))
	}
	return out
}

// hasDuplicateToken reports a list that names one token twice, the mark of two
// layers appending their own copy ("GET, POST, GET, POST").
func hasDuplicateToken(v string) bool {
	seen := map[string]bool{}
	for _, t := range tokens(v) {
		if seen[t] {
			return true
		}
		seen[t] = true
	}
	return false
}

func hasToken(v, want string) bool {
	for _, t := range tokens(v) {
		if t == strings.ToLower(want) {
			return true
		}
	}
	return false
}

// originProblem checks Access-Control-Allow-Origin and returns a problem and
// its fix, or "".
func originProblem(h http.Header) (string, string) {
	v, p := headerOnce(h, "Access-Control-Allow-Origin", true)
	if p != "" {
		if strings.HasPrefix(p, "no ") {
			return p, "add Access-Control-Allow-Origin: * to every /_matrix/ and /.well-known/matrix/ response, errors included (mxedge does this itself)"
		}
		return p, fixDuplicate
	}
	if v != "*" && v != checkOrigin {
		return fmt.Sprintf("Access-Control-Allow-Origin is %q, which shuts out other web clients", v),
			"send Access-Control-Allow-Origin: * as the Matrix spec recommends (mxedge: cors.allow_origins: [\"*\"])"
	}
	return "", ""
}

// corsResult checks the CORS headers of ordinary (non-preflight) responses.
func corsResult(id, name string, resps []*response, whats []string) Result {
	for i, r := range resps {
		if p, fix := originProblem(r.Header); p != "" {
			return Result{ID: id, Name: name, Status: Fail, Detail: p + " on " + whats[i], Fix: fix}
		}
		for _, k := range []string{"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers"} {
			if len(r.Header.Values(k)) == 0 {
				continue
			}
			if _, p := headerOnce(r.Header, k, false); p != "" {
				return Result{ID: id, Name: name, Status: Fail, Detail: p + " on " + whats[i], Fix: fixDuplicate}
			}
		}
	}
	return Result{ID: id, Name: name, Status: Pass,
		Detail: "one Access-Control-Allow-Origin: " + resps[0].Header.Get("Access-Control-Allow-Origin") + " on " + strings.Join(whats, ", ")}
}

// preflightResult checks the answer to OPTIONS with Access-Control-Request-Headers: authorization.
func preflightResult(r *response, path string) Result {
	const id, name = "preflight", "CORS preflight"
	fail := func(detail, fix string) Result {
		return Result{ID: id, Name: name, Status: Fail, Detail: fmt.Sprintf("OPTIONS %s: %s", path, detail), Fix: fix}
	}
	if r.StatusCode < 200 || r.StatusCode > 299 {
		return fail(fmt.Sprintf("answered %d, want 204 or 200", r.StatusCode),
			"answer OPTIONS on every /_matrix/ path with 204 and the CORS headers, without running endpoint logic (mxedge does; check that no proxy in front rejects OPTIONS)")
	}
	if p, fix := originProblem(r.Header); p != "" {
		return fail(p, fix)
	}
	methods, p := headerOnce(r.Header, "Access-Control-Allow-Methods", false)
	if p != "" {
		if strings.HasPrefix(p, "no ") {
			return fail(p, "send Access-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE, OPTIONS on preflight answers")
		}
		return fail(p, fixDuplicate)
	}
	if methods != "*" {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			if !hasToken(methods, m) {
				return fail(fmt.Sprintf("Access-Control-Allow-Methods %q lacks %s", methods, m),
					"send Access-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE, OPTIONS")
			}
		}
	}
	headers, p := headerOnce(r.Header, "Access-Control-Allow-Headers", false)
	if p != "" {
		if strings.HasPrefix(p, "no ") {
			return fail(p, "send Access-Control-Allow-Headers: X-Requested-With, Content-Type, Authorization on preflight answers")
		}
		return fail(p, fixDuplicate)
	}
	if !hasToken(headers, "Authorization") {
		detail := fmt.Sprintf("Access-Control-Allow-Headers %q does not allow Authorization", headers)
		if hasToken(headers, "*") {
			detail += " (a wildcard never covers Authorization)"
		}
		return fail(detail, "list Authorization explicitly: Access-Control-Allow-Headers: X-Requested-With, Content-Type, Authorization")
	}
	return Result{ID: id, Name: name, Status: Pass,
		Detail: fmt.Sprintf("OPTIONS %s answered %d allowing %s with Authorization", path, r.StatusCode, methods)}
}
