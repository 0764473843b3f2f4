package proxy

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/ratelimit"
)

// Listener says which public listener a request arrived on; it changes what is
// served: the federation listener forwards federation paths only, without CORS.
type Listener uint8

const (
	// ListenerClient is the plain HTTP listener (tls.mode off) or the https listener.
	ListenerClient Listener = iota
	// ListenerFederation is the federation listener (listen.federation).
	ListenerFederation
)

// Server is mxedge's request path. It is safe for concurrent use; a reload
// (Prepare, then Commit) swaps its configuration atomically for new requests.
type Server struct {
	snap    atomic.Pointer[snapshot]
	log     *slog.Logger
	obs     Observer
	limiter *ratelimit.Limiter
	ready   *Readiness
	tunnels *tunnelSet
	roles   roleStats // requests per worker role, across reloads
}

// Handler returns the handler for one listener. tls says whether the listener
// terminates TLS (X-Forwarded-Proto https, HSTS).
func (s *Server) Handler(kind Listener, tls bool) http.Handler {
	l := &listener{kind: kind, tls: tls, proto: protoHTTP}
	if tls {
		l.proto = protoHTTPS
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, l) })
}

type listener struct {
	kind  Listener
	tls   bool
	proto []string // X-Forwarded-Proto when no trusted proxy says otherwise
}

var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// maxRequestLine bounds the request line mxedge forwards: Twisted (Synapse)
// refuses lines over 16 KiB, so a longer target is answered 414 here rather
// than forwarded to a certain error.
const maxRequestLine = 16 << 10

// request is one request's state, read by the stages below. Stages fill only
// what later stages read; what became of the request is the outcome each
// stage returns.
type request struct {
	snap      *snapshot
	lst       *listener
	route     Route
	peer      netip.Addr // socket peer
	client    netip.Addr // the address mxedge trusts as the client
	proto     []string   // X-Forwarded-Proto sent upstream
	host      string     // the client's Host
	id        string
	origin    string
	start     time.Time
	rawPath   string
	query     string
	body      *body
	tunnelIn  int64  // bytes from the client through a WebSocket tunnel
	user      string // the user behind the access token (workers.resolver), "" unknown
	userKey   uint64 // the balancing key of a route balanced by user
	preflight bool   // answered by cors.Preflight, which sets the CORS headers itself
	closeConn bool   // answer with Connection: close (HTTP/1.x)
	limit     ratelimit.Decision
	w         responseWriter
}

// outcome is what became of a request beyond its status: whether it was
// forwarded, how long the upstream took to answer, and why it failed. serve
// logs and counts it once, in finish.
type outcome struct {
	forwarded bool
	upstream  time.Duration // to the upstream's response head (or its failure)
	fail      string        // failure kind (h1.Kind, failClient), "" when none
	err       error         // the cause, logged, never sent to the client
	abort     bool          // the response was cut: abort the client's connection
}

// serve is the whole path of a request: validate → classify → client address
// → request id → metrics → preflight → refusals → body limits → rate limit →
// local answers (well-known) → forward → finish (log, count, abort).
func (s *Server) serve(rw http.ResponseWriter, r *http.Request, l *listener) {
	snap := s.snap.Load()
	rq := &request{snap: snap, lst: l, start: time.Now(), host: r.Host}
	w := &rq.w
	w.init(rw, r, rq)
	var out outcome
	defer s.finish(rq, r, &out)

	// Method and target are checked before anything reads them: HTTP/2 lets
	// spaces and tabs through in :method and :path, and a request line built
	// from them would read differently upstream.
	validLine := h1.ValidToken(r.Method) && h1.ValidTarget(r.RequestURI)
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		// HTTP/1.0: net/http drops a Transfer-Encoding there without a
		// trace, so a chunked body could be read as a next request. RFC 9112
		// §6.1 says to close after such a message; mxedge cannot tell which
		// ones had it, so it closes after every HTTP/1.0 answer.
		rq.closeConn = true
	}

	// Classify once.
	rq.rawPath, rq.query = splitRequestURI(r)
	route, pathOK := snap.table.route(r.Method, r.Host, rq.rawPath, rq.query)
	rq.route = route
	if !pathOK || !validLine {
		// Refused, but still answered with CORS where a browser expects it.
		rq.route.CORS = rq.route.Gate != GateMASHost && (strings.HasPrefix(rq.rawPath, "/_matrix/") || strings.HasPrefix(rq.rawPath, "/.well-known/matrix/"))
	}
	if l.kind == ListenerFederation {
		rq.route.CORS = false
		if rq.route.Gate != GateFederation && !(rq.route.Gate == GateWellKnown && rq.rawPath == "/.well-known/matrix/server") {
			rq.route.Class, rq.route.Gate = ClassRefused, GateRefused
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		rq.peer = ap.Addr().Unmap().WithZone("")
	}
	var proto string
	rq.client, proto = ClientAddr(rq.peer, r.Header, snap.trustedProxies)
	rq.proto = l.proto
	switch proto {
	case "http":
		rq.proto = protoHTTP
	case "https":
		rq.proto = protoHTTPS
	}
	rq.id = s.requestID(r, rq)
	rq.origin = headerValue(r.Header, "Origin")
	s.obs.Begin(int(rq.route.Class))

	switch {
	case !validLine:
		writeError(w, http.StatusBadRequest, errUnrecognized, "Malformed request line")
		return
	case len(r.Method)+len(r.RequestURI)+len(" HTTP/1.1")+1 > maxRequestLine:
		rq.closeConn = true
		writeError(w, http.StatusRequestURITooLong, errUnknown, "Request URI too long")
		return
	}
	// Preflights are answered here and never forwarded.
	if rq.route.CORS && r.Method == http.MethodOptions {
		rq.preflight = true
		snap.cors.Preflight(w, r)
		return
	}
	switch {
	case !pathOK:
		writeError(w, http.StatusBadRequest, errUnrecognized, "Ambiguous request path")
		return
	case !ValidQuery(rq.query):
		writeError(w, http.StatusBadRequest, errInvalidParam, "Malformed query string")
		return
	case rq.route.Gate == GateRefused:
		writeError(w, http.StatusNotFound, errUnrecognized, "Unrecognized request")
		return
	case rq.route.Gate == GateAdmin && !snap.adminAllow.Contains(rq.peer),
		rq.route.Gate == GateMASAdmin && !snap.masAdminAllow.Contains(rq.peer):
		writeError(w, http.StatusNotFound, errUnrecognized, "Unrecognized request")
		return
	case headerBytes(r) > snap.maxHeaderBytes:
		rq.closeConn = true
		writeError(w, http.StatusRequestHeaderFieldsTooLarge, errUnknown, "Request headers too large")
		return
	}
	if !s.limitBody(w, r, rq) {
		return
	}
	s.resolveUser(r, rq)
	if s.limiter != nil && !snap.noRateLimit {
		rq.limit = s.limiter.CheckAs(r, rq.client, rq.route.Limits, rq.user)
		if !rq.limit.Allowed {
			writeLimitExceeded(w, rq.limit.Status, rq.limit.RetryAfter)
			return
		}
	}
	if rq.route.Gate == GateWellKnown {
		snap.wellKnown.ServeHTTP(w, r)
		return
	}
	out = snap.fwd.forward(w, r, rq)
}

// limitBody answers 413 up front when Content-Length is over the route's limit
// (before any 100 Continue), and otherwise wraps the body so that a chunked
// body is cut at the limit and a stalled one after timeouts.read_body_idle.
func (s *Server) limitBody(w *responseWriter, r *http.Request, rq *request) bool {
	limit := rq.snap.maxBody
	if rq.route.JSONBody {
		limit = rq.snap.maxJSONBody
	}
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, errTooLarge, "Request body too large")
		return false
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return true
	}
	b := &body{rc: r.Body, limit: limit, declared: r.ContentLength, idle: rq.snap.readBodyIdle}
	b.deadline, _ = w.ResponseWriter.(interface{ SetReadDeadline(time.Time) error })
	r.Body = b
	rq.body = b
	return true
}

// finish runs when the request is done, whatever happened: it turns a panic
// into a 500, reports to the limiter and metrics, logs the outcome once, and
// aborts the client's connection when the response was cut.
func (s *Server) finish(rq *request, r *http.Request, out *outcome) {
	p := recover()
	w := &rq.w
	if p == http.ErrAbortHandler {
		out.abort = true
	} else if p != nil {
		s.log.Error("panic serving request", logRequestID, rq.id, "panic", p)
		if !w.wroteHeader {
			writeError(w, http.StatusInternalServerError, errUnknown, "Internal error")
		}
	}
	status := w.status
	if out.abort || status == 0 {
		status = statusClientClosed
	}
	abandonBody(w, r, rq.body)
	w.clearDeadline()
	if s.limiter != nil && rq.limit.Allowed {
		s.limiter.Done(&rq.limit, status)
	}
	in := rq.tunnelIn
	if rq.body != nil {
		in += rq.body.n
	}
	d := time.Since(rq.start)
	if out.forwarded {
		s.obs.Upstream(int(rq.route.Class), out.upstream, out.fail)
	}
	s.obs.End(int(rq.route.Class), r.Method, status, d, in, w.written)
	if out.err != nil {
		s.upstreamError(rq, out)
	}
	if rq.snap.accessLog {
		s.accessLog(rq, r, status, in, d, out)
	}
	if out.abort {
		panic(http.ErrAbortHandler)
	}
}

// abandonBody makes the server close the connection after the response when
// the request body was not read to its end (refused, too large, stalled,
// answered early): net/http would otherwise try to drain it after the
// handler, with no deadline, and a client that never sends it would hold the
// connection forever.
func abandonBody(w *responseWriter, r *http.Request, b *body) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody || (b != nil && b.eof.Load()) {
		return
	}
	if d, ok := w.ResponseWriter.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Now())
	}
}

// statusClientClosed is logged when no response could be given (the client
// went away, or the response was aborted mid-body).
const statusClientClosed = 499

// finalizeHeader adds mxedge's own headers to a final response header, once.
func (rq *request) finalizeHeader(h http.Header, code int) {
	if rq.route.CORS && !rq.preflight {
		rq.snap.cors.Apply(h, rq.origin)
	}
	h["X-Request-Id"] = []string{rq.id}
	if rq.lst.tls && rq.snap.hsts != nil {
		h["Strict-Transport-Security"] = rq.snap.hsts
	}
	if rq.closeConn && rq.w.http1 {
		h["Connection"] = hdrClose
	}
}

var hdrClose = []string{"close"}

// requestID takes a trusted proxy's X-Request-Id when valid, else makes one.
func (s *Server) requestID(r *http.Request, rq *request) string {
	if rq.client != rq.peer || rq.snap.trustedProxies.Contains(rq.peer) {
		if id := headerValue(r.Header, "X-Request-Id"); id != "" && ValidRequestID(id) {
			return id
		}
	}
	var buf [20]byte
	return NewRequestID(&buf)
}

// splitRequestURI returns the raw path and query exactly as the client sent
// them. An absolute-form target ("http://host/p?q") yields its path part.
func splitRequestURI(r *http.Request) (path, query string) {
	u := r.RequestURI
	if u != "" && u[0] != '/' {
		if i := strings.Index(u, "://"); i > 0 {
			u = u[i+3:]
			if j := strings.IndexByte(u, '/'); j >= 0 {
				u = u[j:]
			} else {
				u = "/"
			}
		}
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i], u[i+1:]
	}
	return u, ""
}

// headerBytes approximates the request head's size as it came on the wire.
func headerBytes(r *http.Request) int64 {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
