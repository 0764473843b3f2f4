package config

import (
	"net/url"
	"reflect"
	"strings"
)

// Route CORS choices (routes[].cors).
const (
	RouteCORSMatrix   = "matrix"
	RouteCORSUpstream = "upstream"
)

// RouteRateLimitNone names no rate-limit category for a route.
const RouteRateLimitNone = "none"

// Fixed path prefixes of MatrixRTC, on the Matrix hosts: lk-jwt-service and
// the LiveKit SFU, each with the prefix stripped.
const (
	RTCJWTPrefix = "/livekit/jwt"
	RTCSFUPrefix = "/livekit/sfu"
)

// MAS configures the Matrix Authentication Service: compat login on the
// Matrix API, and MAS's own host.
type MAS struct {
	// Upstream names the MAS pool. Empty: MAS mode off (default).
	Upstream string `yaml:"upstream"`
	// PublicBase is MAS's http.public_base (https://auth.example.org/); its
	// host is served by mxedge and forwarded whole to MAS. Required with
	// upstream. The issuer in the client well-known.
	PublicBase string `yaml:"public_base"`
	// AccountURL is MAS's account page, advertised in the client well-known.
	// Default <public_base>account/.
	AccountURL string `yaml:"account_url"`
	// CompatLogin sends /login, /logout and /refresh to MAS (Synapse no longer
	// serves them under MAS). false keeps them on the homeserver while users
	// are migrated (syn2mas). Default true.
	CompatLogin *bool `yaml:"compat_login"`
	// AdminAPI gates MAS's admin API (/api/admin/v1/ on MAS's host) like
	// admin_api gates Synapse's. Default: closed to everyone.
	AdminAPI AdminAPI `yaml:"admin_api"`
}

// RTC configures MatrixRTC (Element Call): lk-jwt-service and the LiveKit SFU.
type RTC struct {
	// JWTUpstream names the lk-jwt-service pool, reached at /livekit/jwt/
	// (prefix stripped). Empty: MatrixRTC off (default).
	JWTUpstream string `yaml:"jwt_upstream"`
	// SFUUpstream names the LiveKit SFU pool, reached at /livekit/sfu/
	// (prefix stripped, WebSocket allowed). Required with jwt_upstream.
	SFUUpstream string `yaml:"sfu_upstream"`
	// LiveKitServiceURL is lk-jwt-service's public URL, advertised in the
	// client well-known (org.matrix.msc4143.rtc_foci) and in the rtc
	// transports answer. Default <public_baseurl>livekit/jwt.
	LiveKitServiceURL string `yaml:"livekit_service_url"`
}

// Route is an extra routing rule (routes[]): a host and/or a path prefix sent
// to a pool, checked before the Matrix table.
type Route struct {
	// Host matches the request's host (case-insensitive, port ignored).
	// Empty: any host.
	Host string `yaml:"host"`
	// PathPrefix matches whole path segments ("/admin" matches /admin and
	// /admin/x, not /adminx). Empty: every path.
	PathPrefix string `yaml:"path_prefix"`
	// Upstream names the pool. Required.
	Upstream string `yaml:"upstream"`
	// StripPrefix removes path_prefix before forwarding ("/admin/x" → "/x").
	StripPrefix bool `yaml:"strip_prefix"`
	// CORS is matrix (mxedge's Matrix CORS headers, exactly once) or upstream
	// (the upstream's own, untouched). Default upstream.
	CORS string `yaml:"cors"`
	// RateLimit names an rc_* category applied per client (as for Matrix
	// routes), or none. Default none.
	RateLimit string `yaml:"rate_limit"`
	// WebSocket allows HTTP/1.1 Upgrade: websocket on the route. Default false.
	WebSocket bool `yaml:"websocket"`
}

// Federation says whether the homeserver federates.
type Federation struct {
	// Enabled forwards /_matrix/federation/ and /_matrix/key/. false (a
	// client-only deployment) refuses them, except
	// /_matrix/federation/v1/openid/userinfo, which lk-jwt-service and
	// integration managers need. Default true.
	Enabled *bool `yaml:"enabled"`
}

// EdgeRoute is a routes[] entry as Validate parsed it.
type EdgeRoute struct {
	Host        string // lower case, no port; "" any
	PathPrefix  string // "" or "/x" (no trailing '/'): whole segments
	Pool        string
	StripPrefix bool
	MatrixCORS  bool
	RateLimit   string // an rc_* category name, "" none
	WebSocket   bool
}

// edgeForms are the parsed MAS, RTC and route settings.
type edgeForms struct {
	masBase    *url.URL
	masAccount string
	rtcURL     string
	routes     []EdgeRoute
}

// MASEnabled reports whether MAS mode is on.
func (c *Config) MASEnabled() bool { return c.MAS.Upstream != "" }

// MASCompatLogin reports whether compat login goes to MAS.
func (c *Config) MASCompatLogin() bool {
	return c.MASEnabled() && (c.MAS.CompatLogin == nil || *c.MAS.CompatLogin)
}

// MASPublicBase returns MAS's public_base parsed (path ending in "/"), nil
// when MAS is off.
func (c *Config) MASPublicBase() *url.URL { return c.edge.masBase }

// MASHost returns MAS's public host in lower case without port, "" when MAS
// is off.
func (c *Config) MASHost() string {
	if c.edge.masBase == nil {
		return ""
	}
	return strings.ToLower(c.edge.masBase.Hostname())
}

// MASAccountURL returns mas.account_url or its default.
func (c *Config) MASAccountURL() string { return c.edge.masAccount }

// RTCEnabled reports whether MatrixRTC routing is on.
func (c *Config) RTCEnabled() bool { return c.RTC.JWTUpstream != "" }

// RTCServiceURL returns rtc.livekit_service_url or its default, "" when off.
func (c *Config) RTCServiceURL() string { return c.edge.rtcURL }

// EdgeRoutes returns routes[] parsed, in order.
func (c *Config) EdgeRoutes() []EdgeRoute { return c.edge.routes }

// FederationEnabled reports federation.enabled (default true).
func (c *Config) FederationEnabled() bool {
	return c.Federation.Enabled == nil || *c.Federation.Enabled
}

// matrixHost is the host clients reach the Matrix API on.
func matrixHost(pub *url.URL) string {
	if pub == nil {
		return ""
	}
	return strings.ToLower(pub.Hostname())
}

// checkEdge validates mas, rtc, routes and federation against the pools.
func (c *Config) checkEdge(p *problems, pf *parsedForms) {
	pool := func(key, name string) bool {
		if name == "" {
			p.add(key, "required")
			return false
		}
		if pf.pools != nil && !hasPool(pf.pools, name) {
			p.add(key, "names no pool in upstreams (have %s)", poolNames(pf.pools))
			return false
		}
		return true
	}
	mh := matrixHost(pf.publicBaseURL)
	ef := &pf.edge
	if m := c.MAS; m.Upstream != "" || m.PublicBase != "" || m.AccountURL != "" || m.CompatLogin != nil {
		pool("mas.upstream", m.Upstream)
		if m.PublicBase == "" {
			p.add("mas.public_base", "required with mas.upstream: MAS's http.public_base, like https://auth.example.org/")
		} else if u, err := url.Parse(m.PublicBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
			p.add("mas.public_base", "must be an absolute http(s) URL, got %q", m.PublicBase)
		} else if checkHTTPURLParts(p, "mas.public_base", m.PublicBase, u) {
			switch {
			case u.Path != "" && u.Path != "/":
				p.add("mas.public_base", "must be a host of its own without path (MAS's pages are served at its root), got %q", m.PublicBase)
			case strings.EqualFold(u.Hostname(), mh):
				p.add("mas.public_base", "must be a host of its own, not public_baseurl's %q", mh)
			default:
				u.Path = "/"
				ef.masBase = u
				ef.masAccount = u.String() + "account/"
			}
		}
		if m.AccountURL != "" {
			if err := checkHTTPURL(m.AccountURL); err != nil {
				p.add("mas.account_url", "%v, got %q", err, m.AccountURL)
			} else {
				ef.masAccount = m.AccountURL
			}
		}
	}
	pf.masAdmin = checkPrefixes(p, "mas.admin_api.allow_from", c.MAS.AdminAPI.AllowFrom)

	if r := c.RTC; r.JWTUpstream != "" || r.SFUUpstream != "" || r.LiveKitServiceURL != "" {
		pool("rtc.jwt_upstream", r.JWTUpstream)
		pool("rtc.sfu_upstream", r.SFUUpstream)
		switch {
		case r.LiveKitServiceURL != "":
			if err := checkHTTPURL(r.LiveKitServiceURL); err != nil {
				p.add("rtc.livekit_service_url", "%v, got %q", err, r.LiveKitServiceURL)
			} else if u, _ := url.Parse(r.LiveKitServiceURL); strings.EqualFold(u.Hostname(), mh) && strings.TrimSuffix(u.Path, "/") != RTCJWTPrefix {
				p.add("rtc.livekit_service_url", "on the Matrix host it must be %s%s: mxedge routes lk-jwt-service there, got %q", mh, RTCJWTPrefix, r.LiveKitServiceURL)
			} else {
				ef.rtcURL = strings.TrimSuffix(r.LiveKitServiceURL, "/")
			}
		case pf.publicBaseURL != nil:
			ef.rtcURL = strings.TrimSuffix(pf.publicBaseURL.String(), "/") + RTCJWTPrefix
		}
	}

	reserved := []string{"/_matrix", "/_synapse", "/.well-known/matrix"}
	if c.RTC.JWTUpstream != "" {
		reserved = append(reserved, RTCJWTPrefix, RTCSFUPrefix)
	}
	cats := rcCategoryNames()
	seen := map[string]int{}
	for i, r := range c.Routes {
		key := indexKey("routes", i)
		er := EdgeRoute{Pool: r.Upstream, StripPrefix: r.StripPrefix, WebSocket: r.WebSocket}
		pool(key+".upstream", r.Upstream)
		if r.Host == "" && r.PathPrefix == "" {
			p.add(key, "needs a host, a path_prefix or both")
		}
		if r.Host != "" {
			h := strings.ToLower(strings.TrimSuffix(r.Host, "."))
			if CheckServerName(h) != nil || strings.Contains(h, ":") {
				p.add(key+".host", "must be a host name without port, got %q", r.Host)
			}
			if h == c.MASHostFrom(ef) {
				p.add(key+".host", "is MAS's host (mas.public_base): MAS mode routes it")
			}
			er.Host = h
		}
		if r.PathPrefix != "" {
			if err := checkPathPrefix(r.PathPrefix); err != nil {
				p.add(key+".path_prefix", "%v, got %q", err, r.PathPrefix)
			} else {
				er.PathPrefix = strings.TrimSuffix(r.PathPrefix, "/")
			}
		}
		if r.StripPrefix && er.PathPrefix == "" {
			p.add(key+".strip_prefix", "needs a path_prefix to strip")
		}
		// Overlap with the Matrix routes: on the Matrix host (or any host,
		// when the route names none), a prefix may neither cover nor sit
		// under a reserved one.
		if r.PathPrefix != "" && (er.Host == "" || er.Host == mh) {
			for _, res := range reserved {
				if segPrefix(er.PathPrefix, res) || segPrefix(res, er.PathPrefix) || er.PathPrefix == "" {
					p.add(key+".path_prefix", "overlaps mxedge's %s routes: extra routes may not shadow or reach into them", res)
					break
				}
			}
		}
		if r.PathPrefix == "" && (er.Host == "" || er.Host == mh) && r.Host != "" {
			p.add(key+".host", "is the Matrix host (public_baseurl) with no path_prefix: it would shadow every Matrix route")
		}
		switch r.CORS {
		case "", RouteCORSUpstream:
		case RouteCORSMatrix:
			er.MatrixCORS = true
		default:
			p.add(key+".cors", "must be %s or %s, got %q", RouteCORSMatrix, RouteCORSUpstream, r.CORS)
		}
		switch {
		case r.RateLimit == "" || r.RateLimit == RouteRateLimitNone:
		case cats[r.RateLimit]:
			er.RateLimit = r.RateLimit
		default:
			p.add(key+".rate_limit", "must name an rc_* category (like rc_login.address, rc_message) or none, got %q", r.RateLimit)
		}
		id := er.Host + " " + er.PathPrefix
		if j, dup := seen[id]; dup {
			p.add(key, "matches the same requests as routes[%d]", j)
		}
		seen[id] = i
		ef.routes = append(ef.routes, er)
	}

	if !c.FederationEnabled() {
		if c.Listen.Federation != "" {
			p.add("listen.federation", "must be empty with federation.enabled false")
		}
		if c.WellKnown.Server != "" {
			p.add("well_known.server", "delegates federation, which federation.enabled false turns off")
		}
	}
	for _, k := range []string{"org.matrix.msc2965.authentication", "m.authentication"} {
		if _, set := c.WellKnown.Client[k]; set && c.MAS.Upstream != "" {
			p.add("well_known.client."+k, "must not be set: mas fills it")
		}
	}
	if _, set := c.WellKnown.Client["org.matrix.msc4143.rtc_foci"]; set && c.RTC.JWTUpstream != "" {
		p.add("well_known.client.org.matrix.msc4143.rtc_foci", "must not be set: rtc fills it")
	}
}

// MASHostFrom is MASHost during validation.
func (c *Config) MASHostFrom(ef *edgeForms) string {
	if ef.masBase == nil {
		return ""
	}
	return strings.ToLower(ef.masBase.Hostname())
}

// segPrefix reports whether path p is prefix or under it, by whole segments.
func segPrefix(p, prefix string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

func hasPool(pools []*PoolSpec, name string) bool {
	for _, p := range pools {
		if p.Name == name {
			return true
		}
	}
	return false
}

func poolNames(pools []*PoolSpec) string {
	var n []string
	for _, p := range pools {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// rcCategoryNames returns the rc_* category names a route may name: every
// Bucket of rate_limits, named like "rc_message" or "rc_login.address"
// (the names the ratelimit package gives its categories).
func rcCategoryNames() map[string]bool {
	out := map[string]bool{}
	bucket := reflect.TypeFor[Bucket]()
	t := reflect.TypeFor[RateLimits]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !strings.HasPrefix(name, "rc_") || name == "rc_admin_redaction" || name == "rc_federation" {
			continue
		}
		switch {
		case f.Type == bucket:
			out[name] = true
		case f.Type.Kind() == reflect.Struct:
			for j := range f.Type.NumField() {
				sf := f.Type.Field(j)
				sub, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
				if sf.Type == bucket {
					out[name+"."+sub] = true
				}
			}
		}
	}
	return out
}
