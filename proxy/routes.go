package proxy

import (
	"github.com/mxedge/mxedge/ratelimit"
)

// Route is what mxedge decides about a request once, early, from its method and
// raw path: every later stage reads it instead of matching the path again.
type Route struct {
	Gate     Gate                 // coarse class: what may be forwarded and by whom
	Class    Class                // metrics label, timeouts, body limits
	Limits   ratelimit.Categories // rate-limit categories
	LongPoll bool                 // never cut by upstream_response_header (sync, events, media downloads)
	JSONBody bool                 // body bounded by max_json_body_size instead of max_body_size
	CORS     bool                 // under /_matrix/ or /.well-known/matrix/ (client listener)
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
		classifyMatrix(&r, method, raw)
	}
	if method == "OPTIONS" && r.CORS {
		r.Class = ClassPreflight
	}
	return r
}

// maxSegs bounds the segments classifyMatrix looks at; Matrix endpoints that
// matter for classification have fewer.
const maxSegs = 10

// classifyMatrix classifies /_matrix/client/… and /_matrix/media/… requests.
// Keyword segments are compared percent-decoded (so "%73ync" is "sync"), IDs
// are never looked at.
func classifyMatrix(r *Route, method, raw string) {
	var segs [maxSegs]string
	n := splitSegments(raw, &segs)
	// segs[0] == "_matrix"
	r.Class = ClassClient
	r.JSONBody = true
	if n < 3 {
		return
	}
	api, rest := segs[1], segs[3:n] // segs[2] is the version
	switch {
	case segEq(api, "media"):
		r.JSONBody = false
		classifyMedia(r, method, rest)
		return
	case !segEq(api, "client"):
		r.JSONBody = false // /_matrix/<other>: not a client JSON API
		return
	}
	if len(rest) == 0 {
		return
	}
	if isLongPoll(rest) {
		r.Class, r.LongPoll = ClassSync, true
		return
	}
	if method == "POST" && segEq(rest[len(rest)-1], "requestToken") &&
		(segEq(rest[0], "register") || segEq(rest[0], "account")) {
		r.Limits = ratelimit.Of(ratelimit.ThreePIDValidation)
		if segEq(rest[0], "register") {
			r.Class = ClassRegister
		}
		return
	}
	switch first := rest[0]; {
	case segEq(first, "login"):
		r.Class = ClassLogin
		if len(rest) == 1 && method == "POST" {
			r.Limits = ratelimit.Of(ratelimit.LoginAddress, ratelimit.LoginAccount, ratelimit.LoginFailedAttempts)
		}
	case segEq(first, "logout"):
		r.Class = ClassLogin
	case segEq(first, "register"):
		r.Class = ClassRegister
		switch {
		case len(rest) == 1 && method == "POST":
			r.Limits = ratelimit.Of(ratelimit.Registration)
		case len(rest) == 3 && segEq(rest[1], "m.login.registration_token") && segEq(rest[2], "validity"):
			r.Limits = ratelimit.Of(ratelimit.RegistrationTokenValidity)
		}
	case segEq(first, "org.matrix.msc3231") && len(rest) == 4 && segEq(rest[1], "register") &&
		segEq(rest[2], "org.matrix.msc3231.login.registration_token") && segEq(rest[3], "validity"):
		r.Class = ClassRegister
		r.Limits = ratelimit.Of(ratelimit.RegistrationTokenValidity)
	case segEq(first, "rooms") && len(rest) >= 3:
		classifyRoom(r, method, rest[2:])
	case segEq(first, "createRoom") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.Message, ratelimit.RoomCreation)
	case segEq(first, "join") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.JoinsLocal, ratelimit.JoinsPerRoom)
	case segEq(first, "presence") && len(rest) == 3 && segEq(rest[2], "status") && method == "PUT":
		r.Limits = ratelimit.Of(ratelimit.PresencePerUser)
	case segEq(first, "user_directory") && len(rest) == 2 && segEq(rest[1], "search") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.UserDirectory)
	case segEq(first, "users") && len(rest) == 3 && segEq(rest[2], "report") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.Reports)
	case segEq(first, "media"):
		// authenticated media (v1.11): /_matrix/client/v1/media/…
		r.JSONBody = false
		classifyMedia(r, method, rest[1:])
	case segEq(first, "org.matrix.msc4140") && len(rest) >= 2 && segEq(rest[1], "delayed_events"):
		r.Limits = ratelimit.Of(ratelimit.DelayedEventMgmt)
	}
}

// isLongPoll reports whether the client API endpoint rest (after the version)
// is one the homeserver holds open: /sync, the legacy /events and /initialSync,
// /rooms/{id}/initialSync, and sliding sync (/unstable/<msc>/sync).
func isLongPoll(rest []string) bool {
	switch len(rest) {
	case 1:
		return segEq(rest[0], "sync") || segEq(rest[0], "events") || segEq(rest[0], "initialSync")
	case 2:
		return segEq(rest[1], "sync")
	case 3:
		return segEq(rest[0], "rooms") && segEq(rest[2], "initialSync")
	}
	return false
}

// classifyRoom handles /rooms/{roomId}/<op>/… ; op is ops[0].
func classifyRoom(r *Route, method string, ops []string) {
	op := ops[0]
	switch {
	case segEq(op, "send") || segEq(op, "redact"):
		if method == "PUT" || method == "POST" {
			r.Class = ClassSend
			r.Limits = ratelimit.Of(ratelimit.Message)
		}
	case segEq(op, "state"):
		r.Class = ClassState
		if method == "PUT" {
			r.Limits = ratelimit.Of(ratelimit.Message)
		}
	case segEq(op, "join") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.JoinsLocal, ratelimit.JoinsPerRoom)
	case segEq(op, "invite") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.InvitesPerIssuer, ratelimit.InvitesPerUser, ratelimit.InvitesPerRoom)
	case segEq(op, "report") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.Reports)
	case segEq(op, "upgrade") && method == "POST":
		r.Limits = ratelimit.Of(ratelimit.RoomCreation)
	}
}

// classifyMedia handles the media API; ops start after the version
// (/_matrix/media/v3/<ops>) or after /_matrix/client/v1/media/.
func classifyMedia(r *Route, method string, ops []string) {
	r.Class = ClassMedia
	if len(ops) == 0 {
		return
	}
	switch op := ops[0]; {
	case segEq(op, "upload"):
		r.Class = ClassMediaUpload
	case segEq(op, "create"):
		r.Class = ClassMediaUpload
		if method == "POST" {
			r.Limits = ratelimit.Of(ratelimit.MediaCreate)
		}
	case segEq(op, "download") || segEq(op, "thumbnail"):
		r.Class, r.LongPoll = ClassMediaDownload, true
	}
}

// splitSegments splits the raw path "/a/b/c" into its segments (empty ones
// skipped), storing at most len(segs) and returning how many it stored.
func splitSegments(p string, segs *[maxSegs]string) int {
	n := 0
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
	return n
}

// segEq reports whether the raw segment seg, percent-decoded, equals lit. It
// allocates nothing.
func segEq(seg, lit string) bool {
	if len(seg) == len(lit) {
		return seg == lit
	}
	j := 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' && i+2 < len(seg) {
			h, ok1 := unhex(seg[i+1])
			l, ok2 := unhex(seg[i+2])
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

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
