package check

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// defaultFederationPort is where federation goes without an explicit port.
const defaultFederationPort = 8448

// endpoint is a TLS endpoint to inspect.
type endpoint struct{ host, port string }

func (e endpoint) String() string { return net.JoinHostPort(e.host, e.port) }

// run performs every check in order and returns the report.
func (c *checker) run(ctx context.Context) *Report {
	defer c.tr.CloseIdleConnections()
	rep := &Report{Target: c.o.target, ServerName: c.t.serverName}
	var tlsEndpoints []endpoint
	addTLS := func(u *url.URL) {
		if u.Scheme != "https" {
			return
		}
		port := u.Port()
		if port == "" {
			port = "443"
		}
		e := endpoint{strings.ToLower(u.Hostname()), port}
		for _, x := range tlsEndpoints {
			if x == e {
				return
			}
		}
		tlsEndpoints = append(tlsEndpoints, e)
	}
	addTLS(c.t.origin)

	wk := c.clientWellKnown(ctx, rep)
	base := wk.base
	rep.BaseURL = base.String()
	addTLS(base)
	c.homeserver(ctx, rep, base)
	tok := c.accessToken(ctx, rep, base)
	if iss := c.mas(ctx, rep, base, wk); iss != nil {
		addTLS(iss)
	}
	for _, u := range c.rtc(ctx, rep, base, wk, tok) {
		addTLS(u)
	}
	c.openIDUserinfo(ctx, rep, base, tok)
	if c.o.noFederation {
		const why = "client-only deployment (--no-federation)"
		rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Skip, Detail: why})
		rep.add(Result{ID: "server_keys", Name: "federation keys", Status: Skip, Detail: why})
	} else if fed := c.federation(ctx, rep); fed != nil {
		addTLS(fed)
	}
	c.support(ctx, rep)
	for _, e := range tlsEndpoints {
		c.tlsChecks(ctx, rep, e)
	}
	return rep
}

func isJSON(h http.Header) (string, bool) {
	ct := h.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	return ct, err == nil && mt == "application/json"
}

// clientDoc is what the client well-known told: the base URL clients will use
// and the MAS and MatrixRTC keys (nil when absent or not read).
type clientDoc struct {
	base *url.URL
	read bool            // the document was read as JSON
	auth json.RawMessage // org.matrix.msc2965.authentication
	foci json.RawMessage // org.matrix.msc4143.rtc_foci
}

// clientWellKnown checks /.well-known/matrix/client and returns what it says.
func (c *checker) clientWellKnown(ctx context.Context, rep *Report) clientDoc {
	u := joinPath(c.t.origin, "/.well-known/matrix/client")
	fallback := c.t.origin
	wk := clientDoc{base: fallback}
	const (
		idReach = "client_wellknown"
		idJSON  = "client_wellknown_json"
		idType  = "client_wellknown_content_type"
		idCORS  = "client_wellknown_cors"
	)
	skipRest := func(why string) {
		rep.add(Result{ID: idJSON, Name: "client well-known JSON", Status: Skip, Detail: why})
		rep.add(Result{ID: idType, Name: "client well-known content type", Status: Skip, Detail: why})
		rep.add(Result{ID: idCORS, Name: "client well-known CORS", Status: Skip, Detail: why})
	}
	resp, err := c.do(ctx, http.MethodGet, u.String(), nil, "")
	if err != nil {
		detail, fix := describeErr(err, c.t.origin.Host)
		rep.add(Result{ID: idReach, Name: "client well-known", Status: Fail,
			Detail: fmt.Sprintf("GET %s: %s", u, detail), Fix: fix})
		skipRest("skipped: client well-known not reachable")
		return wk
	}
	if resp.StatusCode != http.StatusOK {
		fix := "serve /.well-known/matrix/client on " + c.t.origin.Host + " with {\"m.homeserver\":{\"base_url\":…}} (mxedge serves it from public_baseurl when this host points at it)"
		rep.add(Result{ID: idReach, Name: "client well-known", Status: Fail,
			Detail: fmt.Sprintf("GET %s answered %d, want 200", u, resp.StatusCode), Fix: fix})
		skipRest("skipped: client well-known not served")
		return wk
	}
	rep.add(Result{ID: idReach, Name: "client well-known", Status: Pass, Detail: fmt.Sprintf("GET %s answered 200", u)})

	// JSON and base_url.
	base := fallback
	var doc struct {
		Homeserver *struct {
			BaseURL *string `json:"base_url"`
		} `json:"m.homeserver"`
		Auth json.RawMessage `json:"org.matrix.msc2965.authentication"`
		Foci json.RawMessage `json:"org.matrix.msc4143.rtc_foci"`
	}
	err = json.Unmarshal(resp.body, &doc)
	if err == nil {
		wk.read, wk.auth, wk.foci = true, nonNull(doc.Auth), nonNull(doc.Foci)
	}
	switch {
	case err != nil:
		rep.add(Result{ID: idJSON, Name: "client well-known JSON", Status: Fail,
			Detail: "body is not valid JSON: " + err.Error(),
			Fix:    "serve a JSON object such as {\"m.homeserver\":{\"base_url\":\"https://matrix.example.org\"}}; clients treat invalid JSON as a failed lookup"})
	case doc.Homeserver == nil || doc.Homeserver.BaseURL == nil:
		rep.add(Result{ID: idJSON, Name: "client well-known JSON", Status: Fail,
			Detail: "m.homeserver.base_url is missing",
			Fix:    "add \"m.homeserver\": {\"base_url\": \"https://…\"} to the document"})
	default:
		b, err := url.Parse(*doc.Homeserver.BaseURL)
		switch {
		case err != nil || b.Host == "" || (b.Scheme != "https" && b.Scheme != "http"):
			rep.add(Result{ID: idJSON, Name: "client well-known JSON", Status: Fail,
				Detail: fmt.Sprintf("m.homeserver.base_url %q is not an absolute URL", *doc.Homeserver.BaseURL),
				Fix:    "set base_url to an absolute https URL such as https://matrix.example.org (mxedge: public_baseurl)"})
		case b.Scheme == "http" && !c.o.insecureHTTP:
			rep.add(Result{ID: idJSON, Name: "client well-known JSON", Status: Fail,
				Detail: fmt.Sprintf("m.homeserver.base_url %q is plain http", *doc.Homeserver.BaseURL),
				Fix:    "advertise the https URL: browsers and mobile clients refuse plain http (mxedge: public_baseurl)"})
		default:
			base = b
			rep.add(Result{ID: idJSON, Name: "client well-known JSON", Status: Pass,
				Detail: "m.homeserver.base_url is " + b.String()})
		}
	}
	if ct, ok := isJSON(resp.Header); ok {
		rep.add(Result{ID: idType, Name: "client well-known content type", Status: Pass, Detail: ct})
	} else {
		rep.add(Result{ID: idType, Name: "client well-known content type", Status: Fail,
			Detail: fmt.Sprintf("Content-Type is %q, want application/json", ct),
			Fix:    "serve the file with Content-Type: application/json (Element X rejects other types)"})
	}
	rep.add(corsResult(idCORS, "client well-known CORS", []*response{resp}, []string{"GET " + u.Path}))
	wk.base = base
	return wk
}

// nonNull returns nil for an absent or JSON null value.
func nonNull(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// homeserver checks /_matrix/client/versions, CORS on /_matrix/ responses and
// the preflight.
func (c *checker) homeserver(ctx context.Context, rep *Report, base *url.URL) {
	vu := joinPath(base, "/_matrix/client/versions")
	resp, err := c.do(ctx, http.MethodGet, vu.String(), nil, "")
	fixReach := "point m.homeserver.base_url at the server that forwards /_matrix/ to the homeserver, and make sure that server and the homeserver are running"
	switch {
	case err != nil:
		detail, fix := describeErr(err, base.Host)
		rep.add(Result{ID: "client_versions", Name: "client-server API", Status: Fail,
			Detail: fmt.Sprintf("GET %s: %s", vu, detail), Fix: fix})
	case resp.StatusCode != http.StatusOK:
		rep.add(Result{ID: "client_versions", Name: "client-server API", Status: Fail,
			Detail: fmt.Sprintf("GET %s answered %d, want 200", vu, resp.StatusCode), Fix: fixReach})
	default:
		var doc struct {
			Versions []string `json:"versions"`
		}
		if err := json.Unmarshal(resp.body, &doc); err != nil || len(doc.Versions) == 0 {
			why := "no versions listed"
			if err != nil {
				why = "not valid JSON: " + err.Error()
			}
			rep.add(Result{ID: "client_versions", Name: "client-server API", Status: Fail,
				Detail: fmt.Sprintf("GET %s: %s", vu, why),
				Fix:    "make sure base_url reaches a Matrix homeserver and nothing in between rewrites /_matrix/client/versions"})
		} else {
			rep.Versions = doc.Versions
			rep.add(Result{ID: "client_versions", Name: "client-server API", Status: Pass,
				Detail: fmt.Sprintf("%s answered versions %s", vu, strings.Join(doc.Versions, ", "))})
		}
	}

	// CORS on plain responses: the versions answer and an error answer.
	var resps []*response
	var whats []string
	if resp != nil {
		resps, whats = append(resps, resp), append(whats, fmt.Sprintf("GET %s (%d)", vu.Path, resp.StatusCode))
	}
	wu := joinPath(base, "/_matrix/client/v3/account/whoami")
	if r2, err := c.do(ctx, http.MethodGet, wu.String(), nil, ""); err == nil {
		resps, whats = append(resps, r2), append(whats, fmt.Sprintf("GET %s (%d)", wu.Path, r2.StatusCode))
	}
	if len(resps) == 0 {
		rep.add(Result{ID: "matrix_cors", Name: "CORS on /_matrix/", Status: Skip, Detail: "skipped: base_url not reachable"})
	} else {
		rep.add(corsResult("matrix_cors", "CORS on /_matrix/", resps, whats))
	}

	// The preflight a browser sends before an authenticated request.
	pu := joinPath(base, "/_matrix/client/v3/sync")
	h := http.Header{}
	h.Set("Access-Control-Request-Method", "GET")
	h.Set("Access-Control-Request-Headers", "authorization")
	pr, err := c.do(ctx, http.MethodOptions, pu.String(), h, "")
	if err != nil {
		detail, fix := describeErr(err, base.Host)
		rep.add(Result{ID: "preflight", Name: "CORS preflight", Status: Fail,
			Detail: fmt.Sprintf("OPTIONS %s: %s", pu, detail), Fix: fix})
		return
	}
	rep.add(preflightResult(pr, pu.Path))
}

// federation resolves the server name as a federating server would, checks the
// server well-known and /_matrix/key/v2/server, and returns the federation URL
// (nil when resolution failed).
func (c *checker) federation(ctx context.Context, rep *Report) *url.URL {
	host, port, err := splitServerName(c.t.serverName)
	if err != nil {
		rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Fail,
			Detail: err.Error(), Fix: "pass a valid server name with --server-name"})
		return nil
	}
	scheme := "https"
	if c.o.insecureHTTP && c.t.origin.Scheme == "http" {
		scheme = "http"
	}
	fedHost, fedPort, hostHeader := host, port, c.t.serverName
	_, ipErr := netip.ParseAddr(host)
	switch {
	case ipErr == nil:
		rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Skip,
			Detail: "server name is an IP literal: no delegation"})
	case port != 0:
		rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Skip,
			Detail: "server name has an explicit port: no delegation"})
	default:
		wk := joinPath(c.t.origin, "/.well-known/matrix/server")
		resp, err := c.do(ctx, http.MethodGet, wk.String(), nil, "")
		switch {
		case err != nil:
			detail, fix := describeErr(err, c.t.origin.Host)
			rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Fail,
				Detail: fmt.Sprintf("GET %s: %s", wk, detail), Fix: fix})
			return nil
		case resp.StatusCode == http.StatusNotFound:
			rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Pass,
				Detail: fmt.Sprintf("no server well-known (404): federation goes to %s:%d (SRV records are not checked)", host, defaultFederationPort)})
		case resp.StatusCode != http.StatusOK:
			rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Fail,
				Detail: fmt.Sprintf("GET %s answered %d, want 200 or 404", wk, resp.StatusCode),
				Fix:    "serve /.well-known/matrix/server with {\"m.server\":\"matrix.example.org:443\"} (mxedge: well_known.server), or answer 404 when federation runs on port 8448 of the server name"})
			return nil
		default:
			var doc struct {
				Server *string `json:"m.server"`
			}
			var dh string
			var dp int
			var derr error
			if err := json.Unmarshal(resp.body, &doc); err != nil {
				derr = fmt.Errorf("not valid JSON: %v", err)
			} else if doc.Server == nil {
				derr = fmt.Errorf("m.server is missing")
			} else if dh, dp, derr = splitServerName(*doc.Server); derr == nil && strings.ContainsAny(dh, "[]") {
				derr = fmt.Errorf("bad host in %q", *doc.Server)
			}
			if derr != nil {
				rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Fail,
					Detail: fmt.Sprintf("GET %s: %v", wk, derr),
					Fix:    "serve {\"m.server\":\"host[:port]\"} naming where federation is served (mxedge: well_known.server)"})
				return nil
			}
			fedHost, fedPort, hostHeader = dh, dp, *doc.Server
			note := ""
			if dp == 0 {
				note = " (port 8448: SRV records are not checked)"
			}
			rep.add(Result{ID: "server_wellknown", Name: "federation delegation", Status: Pass,
				Detail: fmt.Sprintf("delegated to %s%s", *doc.Server, note)})
		}
	}
	if fedPort == 0 {
		fedPort = defaultFederationPort
	}
	fed := &url.URL{Scheme: scheme, Host: net.JoinHostPort(fedHost, strconv.Itoa(fedPort))}
	rep.Federation = fed.Host
	c.serverKeys(ctx, rep, fed, hostHeader)
	return fed
}

// clientOnlyHint ends the fix of a failing federation keys check: a
// deployment without federation says so instead of being auto-detected, which
// would quietly pass a federating server whose port 8448 is broken.
const clientOnlyHint = "; a client-only deployment (federation off) passes --no-federation"

// serverKeys checks /_matrix/key/v2/server on the federation endpoint.
func (c *checker) serverKeys(ctx context.Context, rep *Report, fed *url.URL, hostHeader string) {
	ku := joinPath(fed, "/_matrix/key/v2/server")
	const id, name = "server_keys", "federation keys"
	add := func(r Result) {
		if r.Status == Fail {
			r.Fix += clientOnlyHint
		}
		rep.add(r)
	}
	resp, err := c.do(ctx, http.MethodGet, ku.String(), nil, hostHeader)
	if err != nil {
		detail, fix := describeErr(err, fed.Host)
		add(Result{ID: id, Name: name, Status: Fail, Detail: fmt.Sprintf("GET %s: %s", ku, detail), Fix: fix})
		return
	}
	if resp.StatusCode != http.StatusOK {
		add(Result{ID: id, Name: name, Status: Fail,
			Detail: fmt.Sprintf("GET %s answered %d, want 200", ku, resp.StatusCode),
			Fix:    "forward /_matrix/key/ and /_matrix/federation/ on " + fed.Host + " to the homeserver (mxedge: listen.federation)"})
		return
	}
	var doc struct {
		ServerName   string                     `json:"server_name"`
		VerifyKeys   map[string]json.RawMessage `json:"verify_keys"`
		ValidUntilTS int64                      `json:"valid_until_ts"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		add(Result{ID: id, Name: name, Status: Fail,
			Detail: fmt.Sprintf("GET %s: not valid JSON: %v", ku, err),
			Fix:    "make sure " + fed.Host + " reaches the homeserver and not another web server"})
		return
	}
	switch {
	case doc.ServerName != c.t.serverName:
		add(Result{ID: id, Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s serves keys for %q, want %q", fed.Host, doc.ServerName, c.t.serverName),
			Fix:    "point the delegation at the homeserver whose server_name is " + c.t.serverName + " (or fix server_name in the homeserver's config)"})
	case len(doc.VerifyKeys) == 0:
		add(Result{ID: id, Name: name, Status: Fail,
			Detail: "verify_keys is empty", Fix: "check the homeserver's signing key configuration"})
	case doc.ValidUntilTS != 0 && time.UnixMilli(doc.ValidUntilTS).Before(c.o.now()):
		add(Result{ID: id, Name: name, Status: Fail,
			Detail: fmt.Sprintf("keys expired at %s", time.UnixMilli(doc.ValidUntilTS).UTC().Format(time.RFC3339)),
			Fix:    "make sure nothing caches /_matrix/key/v2/server responses"})
	default:
		add(Result{ID: id, Name: name, Status: Pass,
			Detail: fmt.Sprintf("%s serves keys for %s (%d verify key(s))", fed.Host, doc.ServerName, len(doc.VerifyKeys))})
	}
}

// support checks /.well-known/matrix/support when it is published.
func (c *checker) support(ctx context.Context, rep *Report) {
	u := joinPath(c.t.origin, "/.well-known/matrix/support")
	const id, name = "support_wellknown", "support well-known"
	resp, err := c.do(ctx, http.MethodGet, u.String(), nil, "")
	if err != nil {
		rep.add(Result{ID: id, Name: name, Status: Skip, Detail: "skipped: " + c.t.origin.Host + " not reachable"})
		return
	}
	if resp.StatusCode == http.StatusNotFound {
		rep.add(Result{ID: id, Name: name, Status: Skip, Detail: "not published (optional, MSC1929)"})
		return
	}
	fail := func(detail string) {
		rep.add(Result{ID: id, Name: name, Status: Fail, Detail: detail,
			Fix: "serve {\"contacts\":[{\"role\":\"m.role.admin\",\"matrix_id\":\"@admin:example.org\"}]} and/or \"support_page\" with Content-Type: application/json, or answer 404 (mxedge: well_known.support)"})
	}
	if resp.StatusCode != http.StatusOK {
		fail(fmt.Sprintf("GET %s answered %d, want 200 or 404", u, resp.StatusCode))
		return
	}
	if ct, ok := isJSON(resp.Header); !ok {
		fail(fmt.Sprintf("Content-Type is %q, want application/json", ct))
		return
	}
	var doc struct {
		Contacts *[]struct {
			Role         string `json:"role"`
			MatrixID     string `json:"matrix_id"`
			EmailAddress string `json:"email_address"`
		} `json:"contacts"`
		SupportPage *string `json:"support_page"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		fail("not valid MSC1929 JSON: " + err.Error())
		return
	}
	if doc.Contacts == nil && doc.SupportPage == nil {
		fail("neither contacts nor support_page is set")
		return
	}
	n := 0
	if doc.Contacts != nil {
		for i, ct := range *doc.Contacts {
			if ct.Role == "" || (ct.MatrixID == "" && ct.EmailAddress == "") {
				fail(fmt.Sprintf("contacts[%d] needs a role and a matrix_id or email_address", i))
				return
			}
		}
		n = len(*doc.Contacts)
	}
	detail := fmt.Sprintf("%d contact(s)", n)
	if doc.SupportPage != nil {
		detail += ", support page " + *doc.SupportPage
	}
	rep.add(Result{ID: id, Name: name, Status: Pass, Detail: detail})
}

// joinPath returns base with p appended to its path (query and fragment
// dropped), keeping the leading slash that url.JoinPath loses on an empty path.
func joinPath(base *url.URL, p string) *url.URL {
	u := &url.URL{Scheme: base.Scheme, Host: base.Host}
	u.Path = strings.TrimSuffix(base.Path, "/") + p
	return u
}
