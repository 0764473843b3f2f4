package proxy

import (
	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/workers"
)

// Route is what mxedge decides about a request once, early, from its method and
// raw path: every later stage reads it instead of matching the path again.
type Route struct {
	Gate     Gate                 // coarse class: what may be forwarded and by whom
	Class    Class                // metrics label, timeouts, body limits
	Limits   ratelimit.Categories // rate-limit categories
	LongPoll bool                 // never cut by upstream_response_header (sync, events, media downloads)
	JSONBody bool                 // body bounded by max_json_body_size instead of max_body_size
	CORS     bool                 // mxedge's Matrix CORS, exactly once (else the upstream's own)
	// Where it goes (see table.go): the pool, by index in the snapshot's
	// pools (0: homeserver), and how many bytes of the raw path are stripped.
	Pool  uint8
	Strip uint16
	// WebSocket lets an HTTP/1.1 Upgrade: websocket cross (else Upgrade is dropped).
	WebSocket bool
	// Transports marks the MatrixRTC transports endpoint: answered from the
	// configuration when the homeserver lists none.
	Transports bool
	// Worker routing (workers:): the role's index in workers.Roles plus one
	// (0: main), the balancing key, and whether an unavailable pool fails the
	// request instead of falling back to the main process.
	Role   uint8
	By     workers.Key
	Strict bool
}

// Classify checks raw, a request path exactly as received (without query),
// and fills its route from the method. ok is false, and the route refused,
// when CheckPath refuses the path, or when a normalised view of it (the
// views CheckPath compares gates on: dot segments resolved, escapes decoded,
// ';' and '\\' read the loose ways) would get other rate-limit categories,
// another long-poll or body-limit treatment than raw: "/_matrix/client/v3/./login"
// or "…/login;x" must not reach an upstream that resolves them without the
// login limit. It allocates nothing for paths up to 512 bytes.
func Classify(method, raw string, extra []string) (Route, bool) {
	r, _, ok := classifyPath(method, raw, extra)
	return r, ok
}

// classifyPath is Classify, returning also the index of the extra prefix the
// path falls under (GateExtra; -1 otherwise).
func classifyPath(method, raw string, extra []string) (Route, int, bool) {
	rc := routeCheck{method: method}
	g, idx, ok := checkPath(raw, extra, &rc)
	if !ok {
		return Route{Gate: GateRefused, Class: ClassRefused}, -1, false
	}
	return classify(method, raw, g), idx, true
}

// routeCheck carries what checkPath compares on every view of a /_matrix/
// path: the route raw itself gets.
type routeCheck struct {
	method string
	want   Route
}

// agrees reports whether view v of the path classifies like raw.
func (rc *routeCheck) agrees(v []byte) bool {
	r := Route{Gate: GateMatrix}
	classifyMatrix(&r, rc.method, v, false)
	return r.Limits == rc.want.Limits && r.LongPoll == rc.want.LongPoll && r.JSONBody == rc.want.JSONBody
}

// classify fills the route of a request from its method and raw path (without
// query). gate is the path's gate from CheckPath. It allocates nothing.
func classify(method, raw string, gate Gate) Route {
	r := Route{Gate: gate}
	switch gate {
	case GateRefused:
		r.Class = ClassRefused
	case GateExtra:
		r.Class = ClassOther
	case GateAdmin:
		r.Class = ClassAdmin
	case GateSynapseClient:
		r.Class = ClassSynapseClient
	case GateWellKnown:
		r.Class, r.CORS = ClassWellKnown, true
	case GateFederation:
		r.Class, r.CORS = ClassFederation, true
	case GateMatrix:
		r.CORS = true
		classifyMatrix(&r, method, raw, true)
	}
	if method == "OPTIONS" && r.CORS {
		r.Class = ClassPreflight
	}
	return r
}

// maxSegs bounds the segments classifyMatrix looks at; Matrix endpoints that
// matter for classification have fewer.
const maxSegs = 10

// classifyMatrix classifies /_matrix/client/… and /_matrix/media/… requests
// from the path p: the raw path, whose keyword segments are compared
// percent-decoded (decode set: "%73ync" is "sync"), or a normalised view,
// compared exactly. IDs are never looked at.
func classifyMatrix[T string | []byte](r *Route, method string, p T, decode bool) {
	segs, n := splitSegments(p)
	// segs[0] == "_matrix"
	r.Class = ClassClient
	r.JSONBody = true
	if n < 3 {
		return
	}
	api, rest := segs[1], segs[3:n] // segs[2] is the version
	if n > 3 && segEq(segs[2], "api", decode) && segEq(segs[3], "v1", decode) {
		rest = segs[4:n] // Synapse still serves its oldest endpoints under /_matrix/client/api/v1/
	}
	switch {
	case segEq(api, "media", decode):
		r.JSONBody = false
		classifyMedia(r, method, rest, decode)
		return
	case !segEq(api, "client", decode):
		r.JSONBody = false // /_matrix/<other>: not a client JSON API
		return
	}
	if len(rest) == 0 {
		return
	}
	if isLongPoll(rest, decode) {
		r.Class, r.LongPoll = ClassSync, true
		return
	}
	if method == "POST" && segEq(rest[len(rest)-1], "requestToken", decode) &&
		(segEq(rest[0], "register", decode) || segEq(rest[0], "account", decode)) {
		r.Limits = ratelimit.Of(ratelimit.ThreePIDValidation)
		if segEq(rest[0], "register", decode) {
			r.Class = ClassRegister
		}
		return
	}
	switch first := rest[0]; {
	case segEq(first, "login", decode):
		r.Class = ClassLogin
		if len(rest) == 1 && method == "POST" {
			r.Limits = ratelimit.Of(ratelimit.LoginAddress, ratelimit.LoginAccount, ratelimit.LoginFailedAttempts)
		}
	case segEq(first, "logout", decode) || segEq(first, "refresh", decode):
		r.Class = ClassLogin
	case segEq(first, "register", decode):
		r.Class = ClassRegister
		switch {
		case len(rest) == 1 && method == "POST":
			r.Limits = ratelimit.Of(ratelimit.Registration)
		case len(rest) == 3 && segEq(rest[1], "m.login.registration_token", decode) && segEq(rest[2], "validity", decode):
			r.Limits = ratelimit.Of(ratelimit.RegistrationTokenValidity)
		}
	case segEq(first, "org.matrix.msc3231", decode) && len(rest) == 4 && segEq(rest[1], "register", decode) &&
		segEq(rest[2], "org.matrix.msc3231.login.registration_token", decode) && segEq(rest[3], "validity", decode):
		r.Class = ClassRegister
		r.Limits = ratelimit.Of(ratelimit.RegistrationTokenValidity)
	case segEq(first, "rooms", decode) && len(rest) >= 3:
		classifyRoom(r, method, rest[2:], decode)
	case segEq(first, "createRoom", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.Message, ratelimit.RoomCreation)
	case segEq(first, "join", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.JoinsLocal, ratelimit.JoinsPerRoom)
	case segEq(first, "presence", decode) && len(rest) == 3 && segEq(rest[2], "status", decode) && method == "PUT":
		r.Limits = ratelimit.Of(ratelimit.PresencePerUser)
	case segEq(first, "user_directory", decode) && len(rest) == 2 && segEq(rest[1], "search", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.UserDirectory)
	case segEq(first, "users", decode) && len(rest) == 3 && segEq(rest[2], "report", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.Reports)
	case segEq(first, "media", decode):
		// authenticated media (v1.11): /_matrix/client/v1/media/…
		r.JSONBody = false
		classifyMedia(r, method, rest[1:], decode)
	case segEq(first, "org.matrix.msc4140", decode) && len(rest) >= 2 && segEq(rest[1], "delayed_events", decode):
		r.Limits = ratelimit.Of(ratelimit.DelayedEventMgmt)
	}
}

// isLongPoll reports whether the client API endpoint rest (after the version)
// is one the homeserver holds open: /sync, the legacy /events and /initialSync,
// /rooms/{id}/initialSync, and sliding sync (/unstable/<msc>/sync).
func isLongPoll[T string | []byte](rest []T, decode bool) bool {
	switch len(rest) {
	case 1:
		return segEq(rest[0], "sync", decode) || segEq(rest[0], "events", decode) || segEq(rest[0], "initialSync", decode)
	case 2:
		return segEq(rest[1], "sync", decode)
	case 3:
		return segEq(rest[0], "rooms", decode) && segEq(rest[2], "initialSync", decode)
	}
	return false
}

// classifyRoom handles /rooms/{roomId}/<op>/… ; op is ops[0].
func classifyRoom[T string | []byte](r *Route, method string, ops []T, decode bool) {
	op := ops[0]
	switch {
	case segEq(op, "send", decode) || segEq(op, "redact", decode):
		if method == "PUT" || method == "POST" {
			r.Class = ClassSend
			r.Limits = ratelimit.Of(ratelimit.Message)
		}
	case segEq(op, "state", decode):
		r.Class = ClassState
		if method == "PUT" {
			r.Limits = ratelimit.Of(ratelimit.Message)
		}
	case segEq(op, "join", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.JoinsLocal, ratelimit.JoinsPerRoom)
	case segEq(op, "invite", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.InvitesPerIssuer, ratelimit.InvitesPerUser, ratelimit.InvitesPerRoom)
	case segEq(op, "report", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.Reports)
	case segEq(op, "upgrade", decode) && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.RoomCreation)
	}
}

// classifyMedia handles the media API; ops start after the version
// (/_matrix/media/v3/<ops>) or after /_matrix/client/v1/media/.
func classifyMedia[T string | []byte](r *Route, method string, ops []T, decode bool) {
	r.Class = ClassMedia
	if len(ops) == 0 {
		return
	}
	switch op := ops[0]; {
	case segEq(op, "upload", decode):
		r.Class = ClassMediaUpload
	case segEq(op, "create", decode):
		r.Class = ClassMediaUpload
		if method == "POST" {
			r.Limits = ratelimit.Of(ratelimit.MediaCreate)
		}
	case segEq(op, "download", decode) || segEq(op, "thumbnail", decode):
		r.Class, r.LongPoll = ClassMediaDownload, true
	}
}

// splitSegments splits the path "/a/b/c" into its segments (empty ones
// skipped), at most maxSegs of them, and returns how many it found.
func splitSegments[T string | []byte](p T) (segs [maxSegs]T, n int) {
	for i := 0; i < len(p) && n < maxSegs; {
		if p[i] == '/' {
			i++
			continue
		}
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		segs[n] = p[i:j]
		n++
		i = j
	}
	return segs, n
}

// segEq compares a segment with lit: percent-decoded once when decode is
// set (a raw path), exactly otherwise (a normalised view).
func segEq[T string | []byte](seg T, lit string, decode bool) bool {
	if decode {
		return segEqDecoded(seg, lit)
	}
	return string(seg) == lit
}

// segEqDecoded reports whether the raw segment seg, percent-decoded once,
// equals lit. It allocates nothing.
func segEqDecoded[T string | []byte](seg T, lit string) bool {
	if len(seg) == len(lit) {
		return string(seg) == lit
	}
	j := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' && i+2 < len(seg) {
			h, ok1 := h1.Unhex(seg[i+1])
			l, ok2 := h1.Unhex(seg[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = h<<4 | l
			i += 2
		}
		if j >= len(lit) || lit[j] != c {
			return false
		}
		j++
	}
	return j == len(lit)
}
