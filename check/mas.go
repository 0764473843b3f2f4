package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

const (
	fixReachMAS = "make the issuer's /.well-known/openid-configuration reach MAS (mxedge: mas.public_base's host goes to mas.upstream, whole)"
	fixIssuer   = "make them equal, trailing slash included: MSC2965 and OpenID Connect Discovery require the issuer to match exactly, and clients refuse the server otherwise; set MAS's http.public_base to its public URL and advertise the same string (mxedge: mas.public_base fills the well-known)"
	fixCompat   = "route /_matrix/client/{api/v1,r0,v3,unstable}/login, /logout, /refresh and everything under them to MAS, which answers them for clients that do not speak OAuth yet (MAS#1941) (mxedge: mas.upstream with mas.compat_login: true, the default)"
)

// mas checks the Matrix Authentication Service the client well-known
// advertises: its discovery document, issuer and metadata, and compat login
// on base. It returns the issuer's URL (for the TLS checks), nil when none.
func (c *checker) mas(ctx context.Context, rep *Report, base *url.URL, wk clientDoc) *url.URL {
	const (
		idDisc, nDisc     = "mas_discovery", "MAS discovery"
		idIssuer, nIssuer = "mas_issuer", "MAS issuer"
		idMeta, nMeta     = "mas_metadata", "MAS metadata"
	)
	if wk.auth == nil {
		why := "MAS not advertised (no org.matrix.msc2965.authentication in the client well-known)"
		if !wk.read {
			why = "skipped: client well-known not read"
		}
		rep.add(Result{ID: idDisc, Name: nDisc, Status: Skip, Detail: why})
		return nil
	}
	skipDoc := func(why string) {
		rep.add(Result{ID: idIssuer, Name: nIssuer, Status: Skip, Detail: why})
		rep.add(Result{ID: idMeta, Name: nMeta, Status: Skip, Detail: why})
	}

	issuer, iu := c.issuer(wk.auth)
	var doc map[string]json.RawMessage
	switch {
	case issuer == "":
		rep.add(Result{ID: idDisc, Name: nDisc, Status: Fail,
			Detail: "org.matrix.msc2965.authentication in the client well-known has no issuer",
			Fix:    "set \"issuer\" to MAS's http.public_base, like https://auth.example.org/ (mxedge: mas.public_base fills it)"})
		skipDoc("skipped: no issuer")
	case iu == nil:
		detail := fmt.Sprintf("issuer %q is not an absolute https URL", issuer)
		if strings.HasPrefix(issuer, "http://") {
			detail = fmt.Sprintf("issuer %q is plain http: clients refuse it", issuer)
		}
		rep.add(Result{ID: idDisc, Name: nDisc, Status: Fail,
			Detail: detail,
			Fix:    "advertise MAS's https public URL as issuer, like https://auth.example.org/ (mxedge: mas.public_base)"})
		skipDoc("skipped: no usable issuer")
	default:
		doc = c.discovery(ctx, rep, issuer)
		if doc == nil {
			skipDoc("skipped: no discovery document")
			break
		}
		rep.add(issuerResult(issuer, doc))
		rep.add(metadataResult(doc))
	}
	c.compatLogin(ctx, rep, base)
	return iu
}

// issuer returns the issuer of the authentication key and its URL, the URL
// nil when it is not absolute or is plain http without --insecure-http.
func (c *checker) issuer(auth json.RawMessage) (string, *url.URL) {
	var a struct {
		Issuer string `json:"issuer"`
	}
	if json.Unmarshal(auth, &a) != nil || a.Issuer == "" {
		return "", nil
	}
	u, err := url.Parse(a.Issuer)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && c.o.insecureHTTP)) {
		return a.Issuer, nil
	}
	return a.Issuer, u
}

// discovery fetches and checks the issuer's OpenID Connect discovery
// document, returning it when it is usable.
func (c *checker) discovery(ctx context.Context, rep *Report, issuer string) map[string]json.RawMessage {
	const id, name = "mas_discovery", "MAS discovery"
	u := trimSlash(issuer) + "/.well-known/openid-configuration"
	resp, err := c.do(ctx, http.MethodGet, u, nil, "")
	if err != nil {
		host := issuer
		if iu, perr := url.Parse(issuer); perr == nil {
			host = iu.Host
		}
		detail, fix := describeErr(err, host)
		rep.add(Result{ID: id, Name: name, Status: Fail, Detail: fmt.Sprintf("GET %s: %s", u, detail), Fix: fix})
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		rep.add(Result{ID: id, Name: name, Status: Fail,
			Detail: fmt.Sprintf("GET %s answered %s, want 200", u, answer(resp)), Fix: fixReachMAS})
		return nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &doc); err != nil || doc == nil {
		rep.add(Result{ID: id, Name: name, Status: Fail,
			Detail: fmt.Sprintf("GET %s: not a JSON object", u), Fix: fixReachMAS})
		return nil
	}
	if p, fix := originProblem(resp.Header); p != "" {
		if fix == fixDuplicate {
			fix = "remove the CORS headers a proxy adds on MAS's host: MAS sets its own, and browsers reject two (mxedge leaves MAS's host to MAS's own CORS)"
		} else {
			fix = "let MAS answer with its own CORS headers: web clients read this document from another origin"
		}
		rep.add(Result{ID: id, Name: name, Status: Fail, Detail: p + " on GET " + u, Fix: fix})
		return doc // the document itself can still be checked
	}
	rep.add(Result{ID: id, Name: name, Status: Pass,
		Detail: fmt.Sprintf("GET %s answered 200 with one Access-Control-Allow-Origin: %s", u, resp.Header.Get("Access-Control-Allow-Origin"))})
	return doc
}

// issuerResult compares the discovery document's issuer with the advertised one.
func issuerResult(want string, doc map[string]json.RawMessage) Result {
	const id, name = "mas_issuer", "MAS issuer"
	var got string
	if json.Unmarshal(doc["issuer"], &got) != nil || got == "" {
		return Result{ID: id, Name: name, Status: Fail,
			Detail: "the discovery document has no issuer", Fix: fixIssuer}
	}
	if got == want {
		return Result{ID: id, Name: name, Status: Pass, Detail: fmt.Sprintf("%s in the discovery document and the client well-known", got)}
	}
	detail := fmt.Sprintf("the discovery document says issuer %q, the client well-known %q", got, want)
	gu, gerr := url.Parse(got)
	wu, werr := url.Parse(want)
	switch {
	case trimSlash(got) == trimSlash(want):
		detail += " (they differ only in the trailing slash)"
	case gerr == nil && werr == nil && !strings.EqualFold(gu.Host, wu.Host):
		detail += fmt.Sprintf(" (another host: %s, not %s)", gu.Host, wu.Host)
	}
	return Result{ID: id, Name: name, Status: Fail, Detail: detail, Fix: fixIssuer}
}

// metadataResult checks what a Matrix client needs of the discovery
// document (MSC2965, MSC2966, MSC2964): the endpoints and the code flow with
// PKCE.
func metadataResult(doc map[string]json.RawMessage) Result {
	const id, name = "mas_metadata", "MAS metadata"
	var gaps []string
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"} {
		var s string
		if json.Unmarshal(doc[k], &s) != nil || s == "" {
			gaps = append(gaps, "no "+k)
			continue
		}
		if u, err := url.Parse(s); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			gaps = append(gaps, fmt.Sprintf("%s %q is not an absolute URL", k, s))
		}
	}
	for _, w := range []struct {
		key  string
		want []string
	}{
		{"response_types_supported", []string{"code"}},
		{"grant_types_supported", []string{"authorization_code", "refresh_token"}},
		{"response_modes_supported", []string{"query", "fragment"}},
		{"code_challenge_methods_supported", []string{"S256"}},
	} {
		var have []string
		if json.Unmarshal(doc[w.key], &have) != nil {
			have = nil
		}
		var lacks []string
		for _, x := range w.want {
			if !slices.Contains(have, x) {
				lacks = append(lacks, x)
			}
		}
		if len(lacks) > 0 {
			gaps = append(gaps, w.key+" lacks "+strings.Join(lacks, " and "))
		}
	}
	if len(gaps) > 0 {
		return Result{ID: id, Name: name, Status: Fail,
			Detail: "the discovery document is incomplete: " + strings.Join(gaps, "; "),
			Fix:    "serve MAS's own discovery document (MAS publishes all of these): make sure the issuer's host reaches MAS and not a static file or another OpenID provider"}
	}
	return Result{ID: id, Name: name, Status: Pass,
		Detail: "authorization, token, registration and revocation endpoints; code flow with refresh tokens and S256 PKCE"}
}

// compatLogin checks that GET /login on base is MAS's answer: an m.login.sso
// flow that tells OAuth-aware clients to prefer OAuth (MSC3824).
func (c *checker) compatLogin(ctx context.Context, rep *Report, base *url.URL) {
	const id, name = "mas_compat_login", "MAS compat login"
	const stable, unstable = "oauth_aware_preferred", "org.matrix.msc3824.delegated_oidc_compatibility"
	u := joinPath(base, "/_matrix/client/v3/login")
	fail := func(detail string) {
		rep.add(Result{ID: id, Name: name, Status: Fail, Detail: detail, Fix: fixCompat})
	}
	resp, err := c.do(ctx, http.MethodGet, u.String(), nil, "")
	if err != nil {
		detail, fix := describeErr(err, base.Host)
		rep.add(Result{ID: id, Name: name, Status: Fail, Detail: fmt.Sprintf("GET %s: %s", u, detail), Fix: fix})
		return
	}
	if code, _ := matrixError(resp.body); resp.StatusCode == http.StatusNotFound && code == "M_UNRECOGNIZED" {
		fail(fmt.Sprintf("GET %s answered 404 M_UNRECOGNIZED: the homeserver got it (Synapse does not serve /login under MAS), so compat login is not routed to MAS", u.Path))
		return
	}
	if resp.StatusCode != http.StatusOK {
		fail(fmt.Sprintf("GET %s answered %s, want 200 with MAS's login flows", u.Path, answer(resp)))
		return
	}
	var doc struct {
		Flows []map[string]json.RawMessage `json:"flows"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		fail(fmt.Sprintf("GET %s: not valid JSON: %v", u.Path, err))
		return
	}
	var types []string
	var sso map[string]json.RawMessage
	for _, f := range doc.Flows {
		var t string
		json.Unmarshal(f["type"], &t)
		types = append(types, t)
		if t == "m.login.sso" && sso == nil {
			sso = f
		}
	}
	flows := "flows " + strings.Join(types, ", ")
	if len(types) == 0 {
		flows = "no flows"
	}
	isTrue := func(k string) bool {
		var b bool
		return json.Unmarshal(sso[k], &b) == nil && b
	}
	switch {
	case sso == nil:
		fail(fmt.Sprintf("GET %s lists %s but no m.login.sso: the homeserver's own login answers", u.Path, flows))
	case isTrue(stable) && isTrue(unstable):
		rep.add(Result{ID: id, Name: name, Status: Pass,
			Detail: fmt.Sprintf("GET %s lists %s; m.login.sso has %s (and the unstable %s)", u.Path, flows, stable, unstable)})
	case isTrue(stable):
		rep.add(Result{ID: id, Name: name, Status: Pass,
			Detail: fmt.Sprintf("GET %s lists %s; m.login.sso has %s (without the unstable %s)", u.Path, flows, stable, unstable)})
	case isTrue(unstable):
		rep.add(Result{ID: id, Name: name, Status: Pass,
			Detail: fmt.Sprintf("GET %s lists %s; m.login.sso has only the unstable %s: an older MAS", u.Path, flows, unstable)})
	default:
		fail(fmt.Sprintf("GET %s lists %s but m.login.sso has no %s (MSC3824): the homeserver's own login answers", u.Path, flows, stable))
	}
}
