package check

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// identity is what the access token turned out to be.
type identity struct {
	given  bool   // a token was passed
	ok     bool   // whoami accepted it
	userID string // whoami's user_id
}

// skipWhy says why a check that needs an accepted token is skipped.
func (id identity) skipWhy() string {
	if id.given {
		return "skipped: the access token was not accepted"
	}
	return "skipped: needs --access-token"
}

// accessToken checks the token with /account/whoami. Without a token it adds
// no line.
func (c *checker) accessToken(ctx context.Context, rep *Report, base *url.URL) identity {
	if c.o.accessToken == "" {
		return identity{}
	}
	c.secret(c.o.accessToken)
	id := identity{given: true}
	const rid, name = "access_token", "access token"
	u := joinPath(base, "/_matrix/client/v3/account/whoami")
	resp, err := c.do(ctx, http.MethodGet, u.String(), c.bearer(), "")
	if err != nil {
		detail, fix := describeErr(err, base.Host)
		rep.add(Result{ID: rid, Name: name, Status: Fail, Detail: fmt.Sprintf("GET %s: %s", u, detail), Fix: fix})
		return id
	}
	var doc struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.Unmarshal(resp.body, &doc); err != nil || doc.UserID == "" {
			rep.add(Result{ID: rid, Name: name, Status: Fail,
				Detail: fmt.Sprintf("GET %s answered 200 without a user_id", u),
				Fix:    "make sure base_url reaches the homeserver and nothing in between answers /_matrix/client/v3/account/whoami"})
			return id
		}
		id.ok, id.userID = true, doc.UserID
		detail := "whoami answered " + doc.UserID
		if doc.DeviceID != "" {
			detail += " (device " + doc.DeviceID + ")"
		}
		rep.add(Result{ID: rid, Name: name, Status: Pass, Detail: detail})
	case http.StatusUnauthorized, http.StatusForbidden:
		rep.add(Result{ID: rid, Name: name, Status: Fail,
			Detail: fmt.Sprintf("the homeserver does not accept the access token: whoami answered %s", answer(resp)),
			Fix:    "pass a current access token of a user of this server (Element: Settings, Help & About, Access Token; with MAS, a token from a session MAS issued)"})
	case http.StatusServiceUnavailable:
		rep.add(Result{ID: rid, Name: name, Status: Fail,
			Detail: fmt.Sprintf("whoami answered %s: the homeserver cannot check the token with MAS", answer(resp)),
			Fix:    "set matrix_authentication_service.endpoint in homeserver.yaml to an address where Synapse reaches MAS (e.g. http://mas:8080/), and check that MAS runs"})
	default:
		rep.add(Result{ID: rid, Name: name, Status: Fail,
			Detail: fmt.Sprintf("whoami answered %s, want 200", answer(resp)),
			Fix:    "make sure base_url reaches the homeserver (and the homeserver reaches MAS)"})
	}
	return id
}

// openIDUserinfo checks that /_matrix/federation/v1/openid/userinfo reaches
// the homeserver: lk-jwt-service (and integration managers) check a user's
// OpenID token there, with federation on or off. With an accepted access
// token it makes the round trip: request an OpenID token, look it up.
func (c *checker) openIDUserinfo(ctx context.Context, rep *Report, base *url.URL, id identity) {
	const rid, name = "openid_userinfo", "OpenID userinfo"
	const path = "/_matrix/federation/v1/openid/userinfo"
	fixForward := "forward " + path + " to the homeserver whether federation is on or off, otherwise lk-jwt-service answers \"Failed to look up user info\" and calls fail (mxedge forwards it, also with federation.enabled: false)"
	u := joinPath(base, path)
	fail := func(detail, fix string) {
		rep.add(Result{ID: rid, Name: name, Status: Fail, Detail: detail, Fix: fix})
	}
	resp, err := c.do(ctx, http.MethodGet, u.String(), nil, "")
	if err != nil {
		detail, fix := describeErr(err, base.Host)
		fail(fmt.Sprintf("GET %s: %s", u, detail), fix)
		return
	}
	code, _ := matrixError(resp.body)
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		fail(fmt.Sprintf("GET %s answered %s: not forwarded to the homeserver", u, answer(resp)), fixForward)
		return
	case resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest:
		fail(fmt.Sprintf("GET %s without a token answered %s, want 401 with a Matrix error", u, answer(resp)), fixForward)
		return
	case code == "":
		fail(fmt.Sprintf("GET %s without a token answered %d without a Matrix errcode: something other than the homeserver answered", u, resp.StatusCode), fixForward)
		return
	}
	detail := fmt.Sprintf("GET %s without a token answered %d %s", u.Path, resp.StatusCode, code)
	if c.o.noFederation {
		detail += " (with federation off, lk-jwt-service still reaches userinfo by resolving the server name as a federating server would)"
	}
	if !id.ok {
		if id.given {
			detail += "; OpenID round trip " + id.skipWhy()
		}
		rep.add(Result{ID: rid, Name: name, Status: Pass, Detail: detail})
		return
	}

	// The round trip lk-jwt-service makes: a fresh OpenID token, looked up.
	ru := joinPath(base, "/_matrix/client/v3/user/"+url.PathEscape(id.userID)+"/openid/request_token")
	resp, err = c.doBody(ctx, http.MethodPost, ru.String(), c.bearer(), "", []byte("{}"))
	if err != nil {
		detail, fix := describeErr(err, base.Host)
		fail(fmt.Sprintf("POST %s: %s", ru, detail), fix)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(resp.body, &tok) != nil || tok.AccessToken == "" {
		fail(fmt.Sprintf("POST %s answered %s, want 200 with an access_token", ru.Path, answer(resp)),
			"make sure the homeserver issues OpenID tokens (Element Call needs them): nothing in front of it may block "+ru.Path)
		return
	}
	c.secret(tok.AccessToken)
	q := joinPath(base, path)
	q.RawQuery = url.Values{"access_token": {tok.AccessToken}}.Encode()
	resp, err = c.do(ctx, http.MethodGet, q.String(), nil, "")
	if err != nil {
		detail, fix := describeErr(err, base.Host)
		fail(fmt.Sprintf("GET %s: %s", q, detail), fix)
		return
	}
	var info struct {
		Sub string `json:"sub"`
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		fail(fmt.Sprintf("GET %s refused a fresh OpenID token of %s: answered %s", q, id.userID, answer(resp)),
			"forward "+path+" to the same homeserver that issues the tokens (with workers: to one that reads the same database), otherwise lk-jwt-service answers \"Failed to look up user info\"")
	case json.Unmarshal(resp.body, &info) != nil || info.Sub != id.userID:
		fail(fmt.Sprintf("GET %s answered sub %q for a token of %s", q.Path, info.Sub, id.userID),
			"forward "+path+" to the homeserver itself: something else answers it")
	default:
		rep.add(Result{ID: rid, Name: name, Status: Pass,
			Detail: detail + "; a fresh OpenID token came back as " + info.Sub})
	}
}
