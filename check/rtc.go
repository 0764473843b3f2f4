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

// transportsPath is the MatrixRTC transports endpoint (MSC4143) clients ask.
const transportsPath = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"

const (
	fixTransports = "serve the transports on the homeserver (Synapse: experimental_features.msc4143_enabled and matrix_rtc.transports) or let mxedge answer them (rtc.jwt_upstream: mxedge replaces an empty or unknown answer with its configured list)"
	fixAgree      = "advertise the same lk-jwt-service URL in both places (mxedge: rtc.livekit_service_url feeds both; on the homeserver: matrix_rtc.transports)"
	fixReachJWT   = "make the URL reach lk-jwt-service (mxedge: rtc.jwt_upstream, served at /livekit/jwt/)"
	fixStrip      = "strip the path prefix before lk-jwt-service, which serves /healthz, /sfu/get and /get_token at its root: /livekit/jwt/healthz must arrive as /healthz (nginx: proxy_pass http://lk-jwt:8080/; with the trailing slash; mxedge: rtc.jwt_upstream strips it)"
)

// livekitURLs returns the livekit_service_url of every livekit entry of a
// transports or foci list, in order.
func livekitURLs(list []json.RawMessage) []string {
	var out []string
	for _, raw := range list {
		var e struct {
			Type string `json:"type"`
			URL  string `json:"livekit_service_url"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Type == "livekit" && e.URL != "" {
			out = append(out, e.URL)
		}
	}
	return out
}

// rtc checks MatrixRTC: the transports endpoint, its agreement with the
// client well-known's rtc_foci, and lk-jwt-service's /healthz. It returns the
// https lk-jwt-service URLs for the TLS checks. A deployment without
// MatrixRTC gets one skipped line.
func (c *checker) rtc(ctx context.Context, rep *Report, base *url.URL, wk clientDoc, id identity) []*url.URL {
	const idTr, nTr = "rtc_transports", "RTC transports"
	var foci []json.RawMessage
	advertised := wk.foci != nil
	if advertised {
		json.Unmarshal(wk.foci, &foci)
	}
	wkURLs := livekitURLs(foci)

	var epURLs []string
	epRead := false
	u := joinPath(base, transportsPath)
	var hdr http.Header
	if id.ok {
		hdr = c.bearer()
	}
	fail := func(detail, fix string) {
		rep.add(Result{ID: idTr, Name: nTr, Status: Fail, Detail: detail, Fix: fix})
	}
	resp, err := c.do(ctx, http.MethodGet, u.String(), hdr, "")
	code := ""
	if err == nil {
		code, _ = matrixError(resp.body)
	}
	switch {
	case err != nil:
		detail, fix := describeErr(err, base.Host)
		fail(fmt.Sprintf("GET %s: %s", u, detail), fix)
	case resp.StatusCode == http.StatusOK:
		var doc struct {
			Transports []json.RawMessage `json:"rtc_transports"`
		}
		if err := json.Unmarshal(resp.body, &doc); err != nil {
			fail(fmt.Sprintf("GET %s: not valid JSON: %v", u.Path, err), fixTransports)
			break
		}
		if len(doc.Transports) == 0 {
			fail(fmt.Sprintf("GET %s answered 200 with no transports (%s): Element X takes this as final and caches it for a day, and Element Call 0.24+ has no other source", u.Path, strings.TrimSpace(string(resp.body))), fixTransports)
			break
		}
		epRead, epURLs = true, livekitURLs(doc.Transports)
		detail := fmt.Sprintf("GET %s lists %d transport(s)", u.Path, len(doc.Transports))
		if len(epURLs) > 0 {
			detail += ": livekit " + strings.Join(epURLs, ", ")
		}
		rep.add(Result{ID: idTr, Name: nTr, Status: Pass, Detail: detail})
	case (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && !id.ok:
		rep.add(Result{ID: idTr, Name: nTr, Status: Skip, Detail: id.skipWhy()})
	case (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusMethodNotAllowed) &&
		(code == "M_UNRECOGNIZED" || code == "M_NOT_FOUND"):
		if !advertised {
			rep.add(Result{ID: idTr, Name: nTr, Status: Skip,
				Detail: fmt.Sprintf("MatrixRTC not deployed (%s answered %d %s, no org.matrix.msc4143.rtc_foci in the client well-known)", u.Path, resp.StatusCode, code)})
			return nil
		}
		fail(fmt.Sprintf("GET %s answered %d %s while the client well-known advertises org.matrix.msc4143.rtc_foci: Element Call 0.24+ dropped the well-known fallback and finds no transport", u.Path, resp.StatusCode, code), fixTransports)
	default:
		fail(fmt.Sprintf("GET %s answered %s, want 200 with rtc_transports", u.Path, answer(resp)), fixTransports)
	}
	if len(epURLs) == 0 && len(wkURLs) == 0 {
		return nil
	}

	const idAg, nAg = "rtc_transports_agree", "RTC transports agree"
	switch {
	case !epRead:
		rep.add(Result{ID: idAg, Name: nAg, Status: Skip, Detail: "skipped: the transports endpoint was not read"})
	case len(epURLs) == 0:
		rep.add(Result{ID: idAg, Name: nAg, Status: Skip, Detail: "nothing to compare: the transports endpoint lists no livekit transport"})
	case len(wkURLs) == 0:
		rep.add(Result{ID: idAg, Name: nAg, Status: Skip, Detail: "nothing to compare: the client well-known advertises no livekit rtc_foci"})
	case epURLs[0] != wkURLs[0]:
		rep.add(Result{ID: idAg, Name: nAg, Status: Fail,
			Detail: fmt.Sprintf("the transports endpoint names %s, the client well-known %s: clients split by source (Element Call 0.24+ reads only the endpoint, others the well-known), so users on different clients may not meet in a call", epURLs[0], wkURLs[0]),
			Fix:    fixAgree})
	default:
		rep.add(Result{ID: idAg, Name: nAg, Status: Pass,
			Detail: "the transports endpoint and the client well-known both name " + epURLs[0]})
	}

	var all []string
	for _, s := range append(epURLs, wkURLs...) {
		if !slices.Contains(all, s) {
			all = append(all, s)
		}
	}
	return c.lkJWTHealth(ctx, rep, all)
}

// lkJWTHealth checks GET <url>/healthz for every lk-jwt-service URL and
// returns the https ones.
func (c *checker) lkJWTHealth(ctx context.Context, rep *Report, urls []string) []*url.URL {
	const id, name = "lk_jwt_health", "lk-jwt-service health"
	var tlsURLs []*url.URL
	var passed, failed []string
	fix := ""
	addFail := func(detail, f string) {
		failed = append(failed, detail)
		if fix == "" {
			fix = f
		}
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			addFail(fmt.Sprintf("livekit_service_url %q is not an absolute URL", s), "advertise lk-jwt-service's absolute https URL (mxedge: rtc.livekit_service_url)")
			continue
		}
		if u.Scheme == "http" && !c.o.insecureHTTP {
			addFail(fmt.Sprintf("livekit_service_url %s is plain http: browsers and mobile clients refuse it", s), "serve lk-jwt-service over https (mxedge serves it at https://<public_baseurl host>/livekit/jwt)")
			continue
		}
		if u.Scheme == "https" {
			tlsURLs = append(tlsURLs, u)
		}
		h := trimSlash(s) + "/healthz"
		resp, err := c.do(ctx, http.MethodGet, h, nil, "")
		switch {
		case err != nil:
			detail, f := describeErr(err, u.Host)
			addFail(fmt.Sprintf("GET %s: %s", h, detail), f)
		case resp.StatusCode == http.StatusOK:
			passed = append(passed, "GET "+h+" answered 200")
		case resp.StatusCode == http.StatusNotFound:
			addFail(fmt.Sprintf("GET %s answered 404: the prefix is not stripped (lk-jwt-service serves /healthz at its root)", h), fixStrip)
		default:
			addFail(fmt.Sprintf("GET %s answered %s, want 200", h, answer(resp)), fixReachJWT)
		}
	}
	if len(failed) > 0 {
		rep.add(Result{ID: id, Name: name, Status: Fail, Detail: strings.Join(failed, "; "), Fix: fix})
	} else {
		rep.add(Result{ID: id, Name: name, Status: Pass, Detail: strings.Join(passed, "; ")})
	}
	return tlsURLs
}
