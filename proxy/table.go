package proxy

import (
	"fmt"
	"strings"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/upstream"
	"github.com/mxedge/mxedge/workers"
)

// table routes a request to its pool, compiled once per configuration from
// the pools, mas, rtc and routes sections. Checked in this order: MAS's own
// host, routes with a host, then the Matrix table (Classify), where
// forward.extra_prefixes, the path-only routes and the /livekit/ prefixes are
// the extra prefixes whose views must agree.
type table struct {
	pools []*upstream.Pool // by index: 0 is homeserver

	masHost   string
	mas       uint8 // pool index
	masCompat bool  // /login, /logout, /refresh go to MAS
	rtc       bool  // the transports endpoint is answered when the homeserver lists none

	hostRoutes []tableRoute // routes with a host, in order
	extra      []string     // extra prefixes for checkPath, each ending in '/'
	extraTo    []tableRoute // what each extra prefix leads to
	federation bool

	workers *workers.Router // nil: no worker roles configured
	wroute  []Route         // by workers target index: Pool, Role, By, Strict to set
	initial int             // pool index of initial_synchrotron, -1 none
}

// tableRoute is where a host or prefix leads.
type tableRoute struct {
	host   string // lower case; "" any
	prefix string // "" (a whole host) or "/x/" (whole segments)
	route  Route
}

// masAdminPrefix is MAS's admin API on its host.
var masAdminPrefix = []string{"/api/admin/"}

// hostOnlyExtra makes checkPath validate a path forwarded whole to a host's
// pool: every path is GateExtra except the reserved roots.
var hostOnlyExtra = []string{"/"}

// openIDUserinfo is the one federation endpoint a client-only deployment
// keeps: lk-jwt-service and integration managers check OpenID tokens with it.
const openIDUserinfo = "/_matrix/federation/v1/openid/userinfo"

// compileTable builds the routing table of cfg over the pools of set.
func compileTable(cfg *config.Config, set *upstream.Set) (*table, error) {
	t := &table{federation: cfg.FederationEnabled()}
	index := map[string]uint8{}
	add := func(name string) (uint8, error) {
		if i, ok := index[name]; ok {
			return i, nil
		}
		p := set.Pool(name)
		if p == nil {
			return 0, fmt.Errorf("no pool %q", name)
		}
		if len(t.pools) >= 255 {
			return 0, fmt.Errorf("too many pools")
		}
		index[name] = uint8(len(t.pools))
		t.pools = append(t.pools, p)
		return index[name], nil
	}
	if _, err := add(config.HomeserverPool); err != nil {
		return nil, err
	}
	for _, p := range set.Pools() {
		if _, err := add(p.Name()); err != nil {
			return nil, err
		}
	}
	if roles := cfg.WorkerRoles(); len(roles) > 0 {
		data, err := workers.Synapse()
		if err != nil {
			return nil, err
		}
		if t.workers, err = workers.NewRouter(data, roles); err != nil {
			return nil, err
		}
		for _, tg := range t.workers.Targets() {
			var wr Route
			if tg.Role != workers.Main {
				wr.Pool, wr.Role, wr.Strict = index[tg.Pool], roleIndex(tg.Role), tg.Strict
			}
			wr.By = tg.Key
			t.wroute = append(t.wroute, wr)
		}
	}
	t.initial = -1
	if p, ok := cfg.WorkerRoles()["initial_synchrotron"]; ok {
		t.initial = int(index[p])
	}
	if cfg.MASEnabled() {
		t.masHost = cfg.MASHost()
		t.mas = index[cfg.MAS.Upstream]
		t.masCompat = cfg.MASCompatLogin()
	}
	for _, e := range cfg.Forward.ExtraPrefixes {
		t.extra = append(t.extra, e)
		t.extraTo = append(t.extraTo, tableRoute{route: Route{Gate: GateExtra, Class: ClassOther}})
	}
	if cfg.RTCEnabled() {
		t.rtc = true
		jwt := Route{Gate: GateExtra, Class: ClassRTC, Pool: index[cfg.RTC.JWTUpstream], Strip: uint16(len(config.RTCJWTPrefix))}
		sfu := Route{Gate: GateExtra, Class: ClassRTC, Pool: index[cfg.RTC.SFUUpstream], Strip: uint16(len(config.RTCSFUPrefix)), WebSocket: true}
		t.extra = append(t.extra, config.RTCJWTPrefix+"/", config.RTCSFUPrefix+"/")
		t.extraTo = append(t.extraTo, tableRoute{prefix: config.RTCJWTPrefix + "/", route: jwt}, tableRoute{prefix: config.RTCSFUPrefix + "/", route: sfu})
	}
	for _, er := range cfg.EdgeRoutes() {
		r := Route{Gate: GateExtra, Class: ClassRoute, Pool: index[er.Pool], CORS: er.MatrixCORS, WebSocket: er.WebSocket}
		if er.RateLimit != "" {
			c, ok := ratelimit.CategoryByName(er.RateLimit)
			if !ok {
				return nil, fmt.Errorf("routes: unknown rate-limit category %q", er.RateLimit)
			}
			r.Limits = ratelimit.Of(c)
		}
		prefix := ""
		if er.PathPrefix != "" {
			prefix = er.PathPrefix + "/"
			if er.StripPrefix {
				r.Strip = uint16(len(er.PathPrefix))
			}
		}
		tr := tableRoute{host: er.Host, prefix: prefix, route: r}
		if er.Host != "" {
			t.hostRoutes = append(t.hostRoutes, tr)
			continue
		}
		t.extra = append(t.extra, prefix)
		t.extraTo = append(t.extraTo, tr)
	}
	return t, nil
}

// route classifies a request: method, Host (any case, with or without port),
// raw path and raw query. ok is false when the path must be refused as
// ambiguous.
func (t *table) route(method, host, raw, query string) (Route, bool) {
	host = hostName(host)
	if t.masHost != "" && h1.EqualFold(host, t.masHost) {
		g, _, ok := checkPath(raw, masAdminPrefix, nil)
		r := Route{Gate: GateMASHost, Class: ClassMAS, Pool: t.mas, Limits: ratelimit.Of(ratelimit.MASAddress)}
		if g == GateExtra {
			r.Gate = GateMASAdmin
		}
		return r, ok
	}
	for i := range t.hostRoutes {
		hr := &t.hostRoutes[i]
		if !h1.EqualFold(host, hr.host) {
			continue
		}
		if hr.prefix == "" {
			_, _, ok := checkPath(raw, hostOnlyExtra, nil)
			return hr.route, ok
		}
		if exactPrefix(raw, hr.prefix) {
			return hr.route, true // "/admin" itself: plain, nothing to normalise
		}
		if g, _, ok := checkPath(raw, []string{hr.prefix}, nil); g == GateExtra || !ok {
			return hr.route, ok
		}
	}
	for i, p := range t.extraTo {
		if p.prefix != "" && exactPrefix(raw, p.prefix) {
			return t.extraTo[i].route, true
		}
	}
	r, idx, ok := classifyPath(method, raw, t.extra)
	switch {
	case !ok:
	case r.Gate == GateExtra:
		r = t.extraTo[idx].route
	case r.Gate == GateFederation && !t.federation && raw != openIDUserinfo:
		r.Gate, r.Class = GateRefused, ClassRefused
	case r.Class == ClassLogin && t.masCompat:
		r.Pool = t.mas // CORS stays mxedge's: exactly one copy over MAS's
	case t.rtc && r.Gate == GateMatrix && method == "GET" && isTransports(raw):
		r.Transports = true
	}
	if ok && t.workers != nil && r.Pool == 0 && r.Gate != GateRefused && r.Gate != GateWellKnown {
		t.worker(&r, method, raw, query)
	}
	return r, ok
}

// worker sends a homeserver request to the worker role Synapse's rules give
// it (workers.md), with the role's balancing key.
func (t *table) worker(r *Route, method, raw, query string) {
	i, ok := t.workers.Route(method, raw)
	if !ok {
		return
	}
	wr := &t.wroute[i]
	if wr.Role == 0 {
		return // main
	}
	r.Pool, r.Role, r.By, r.Strict = wr.Pool, wr.Role, wr.By, wr.Strict
	if wr.Role == roleSynchrotron && t.initial >= 0 && workers.Initial(raw, query) {
		r.Pool, r.Role = uint8(t.initial), roleInitialSynchrotron
	}
}

// The roles worker() treats specially, as roleIndex gives them (checked by
// TestRoleIndexes).
const (
	roleSynchrotron        uint8 = 1
	roleInitialSynchrotron uint8 = 2
)

// roleIndex is a role's index in workers.Roles plus one (0: main).
func roleIndex(role string) uint8 {
	for i, r := range workers.Roles {
		if r == role {
			return uint8(i + 1)
		}
	}
	return 0
}

// exactPrefix reports whether raw is prefix without its trailing '/'
// ("/admin" for the route "/admin/").
func exactPrefix(raw, prefix string) bool {
	return len(raw) == len(prefix)-1 && raw == prefix[:len(prefix)-1]
}

// isTransports reports the MatrixRTC transports endpoints: Synapse serves the
// unstable one; the v1 one is the spec's name.
func isTransports(raw string) bool {
	return raw == "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports" || raw == "/_matrix/client/v1/rtc/transports"
}

// hostName returns the host of a Host header without its port (an IPv6
// literal keeps its brackets).
func hostName(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}
