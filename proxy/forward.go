package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/upstream"
	"github.com/mxedge/mxedge/workers"
)

// forwarder carries requests to the route's pool over mxedge's own HTTP/1.1
// client (package h1): the raw path and query byte-exact (less a route's
// stripped prefix), Host preserved, forwarding headers built from the one
// client address mxedge trusts, bodies streamed both ways.
type forwarder struct {
	// headerTimeout bounds the wait for the response head, except on
	// long-polls and media downloads (0: none).
	headerTimeout   time.Duration
	wsIdle          time.Duration // timeouts.websocket_idle
	allowUnderscore bool          // forward.allow_underscores_in_headers
}

// Failure kinds of an outcome, beyond h1.Kind's.
const (
	failClient      = "client"      // the client went away or broke its request
	failUnavailable = "unavailable" // no member of the pool is healthy
	failQueue       = "queue"       // the pool's queue was full or too slow
)

// forward sends the request to its pool and copies the answer back. Before
// the response head, a failure is answered by upstreamFailed; after it, a
// failed copy is reported with abort set, so that serve aborts the client's
// response and a truncated answer never looks complete.
func (f *forwarder) forward(w *responseWriter, r *http.Request, rq *request) outcome {
	out := outcome{forwarded: true}
	pool, m, err := acquire(r, rq)
	if err != nil {
		out.upstream = time.Since(rq.start)
		return poolFailed(w, r, err, out)
	}
	req := f.request(r, rq, m)
	if rq.route.WebSocket && wantsWebSocket(r) {
		return f.tunnel(w, r, rq, pool, m, &req)
	}
	res, err := m.Conns().RoundTrip(r.Context(), &req)
	// A member that could not be connected to got nothing of the request:
	// try the pool's next choice (the failure has ejected this one), at
	// most once per member.
	for tries := 1; err != nil && tries < len(pool.Members()) && isConnectError(err) && r.Context().Err() == nil; tries++ {
		pool.Release(m, err)
		if m, err = pick(r, rq, pool); err != nil {
			out.upstream = time.Since(rq.start)
			return poolFailed(w, r, err, out)
		}
		req = f.request(r, rq, m)
		res, err = m.Conns().RoundTrip(r.Context(), &req)
	}
	out.upstream = time.Since(rq.start)
	if err != nil {
		pool.Release(m, err)
		return upstreamFailed(w, r, rq, err, out)
	}
	if rq.route.Transports {
		err = f.transports(w, rq, res)
	} else {
		res.Header(w.Header())
		w.WriteHeader(res.Status)
		err = res.WriteBody(w)
	}
	res.Close()
	if err != nil && isWriteError(err) {
		pool.Release(m, nil) // the client's fault, not the member's
		out.fail = failClient
	} else {
		pool.Release(m, err)
		out.fail = h1.Kind(err)
	}
	if err != nil {
		out.err, out.abort = err, true
	}
	return out
}

// acquire picks the pool and member of the request: the route's pool, by
// the route's balancing key when it has one (rendezvous: a user, a room, an
// origin server stays on one member). A worker role whose pool has no member
// available falls back to the main process (the homeserver pool), except for
// the strict roles (media repository, SSO).
func acquire(r *http.Request, rq *request) (*upstream.Pool, *upstream.Member, error) {
	pools := rq.snap.table.pools
	pool := pools[rq.route.Pool]
	fallback := rq.route.Role != 0 && !rq.route.Strict
	fellBack := false
	if fallback && !pool.Available() {
		pool, fallback, fellBack = pools[0], false, true
	}
	m, err := pick(r, rq, pool)
	if fallback && errors.Is(err, upstream.ErrNoMember) {
		pool, fellBack = pools[0], true
		m, err = pool.Acquire(r.Context())
	}
	if st := rq.snap.roles; st != nil && (rq.route.Role != 0 || rq.route.Pool == 0) {
		if fellBack {
			st.fallback[rq.route.Role].Add(1)
		} else {
			st.served[rq.route.Role].Add(1)
		}
	}
	return pool, m, err
}

// pick acquires a member of pool for rq, by the route's key when it has one.
func pick(r *http.Request, rq *request, pool *upstream.Pool) (*upstream.Member, error) {
	if key, keyed := routeKey(r, rq); keyed {
		return pool.AcquireKey(r.Context(), key)
	}
	return pool.Acquire(r.Context())
}

// routeKey returns the balancing key of the request's route, if it has one.
func routeKey(r *http.Request, rq *request) (uint64, bool) {
	switch rq.route.By {
	case workers.KeyUser:
		return rq.userKey, rq.userKey != 0
	case workers.KeyRoom:
		return workers.RoomKey(rq.rawPath)
	case workers.KeyOrigin:
		return workers.OriginKey(headerValue(r.Header, "Authorization"))
	case workers.KeyOne:
		return 0, true
	}
	return 0, false
}

// request builds the h1 request for member m.
func (f *forwarder) request(r *http.Request, rq *request, m *upstream.Member) h1.Request {
	host := r.Host
	if host == "" {
		host = m.Endpoint().Host
	}
	path := rq.rawPath
	if n := int(rq.route.Strip); n > 0 {
		path = path[n:]
		if path == "" {
			path = "/"
		}
	}
	req := h1.Request{
		Method:          r.Method,
		Path:            path,
		Query:           rq.query,
		Host:            host,
		Header:          r.Header,
		Strip:           stripClientField,
		Fields:          rq,
		AllowUnderscore: f.allowUnderscore,
		Body:            r.Body,
		ContentLength:   r.ContentLength,
		LongPoll:        rq.route.LongPoll,
	}
	if !rq.route.LongPoll {
		req.HeaderTimeout = f.headerTimeout
	}
	return req
}

// stripClientField reports the client fields mxedge replaces with its own:
// forwarding headers (set from the one client address mxedge trusts) and the
// request id.
func stripClientField(k string) bool {
	switch k {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id":
		return true
	}
	return false
}

// AppendFields appends mxedge's own forwarding fields: X-Forwarded-For and
// X-Real-IP (the trusted client address, replacing whatever the client sent,
// never appended to it), X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id.
func (rq *request) AppendFields(b []byte) []byte {
	for _, k := range [...]string{"X-Forwarded-For: ", "X-Real-Ip: "} {
		b = append(b, k...)
		b = appendAddr(b, rq.client)
		b = append(b, "\r\n"...)
	}
	for _, p := range rq.proto {
		b = append(b, "X-Forwarded-Proto: "...)
		b = append(b, p...)
		b = append(b, "\r\n"...)
	}
	if rq.host != "" {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, rq.host...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Request-Id: "...)
	b = append(b, rq.id...)
	return append(b, "\r\n"...)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.IsValid() {
		return a.AppendTo(b)
	}
	return append(b, "unknown"...) // a unix-socket peer: no address
}

// poolFailed answers when the pool gave no member: 502 at once when none is
// healthy, 429 with Retry-After when its queue is full or too slow (so that
// clients back off instead of marking the server down).
func poolFailed(w *responseWriter, r *http.Request, err error, out outcome) outcome {
	out.err = err
	var qe *upstream.QueueError
	switch {
	case errors.As(err, &qe):
		out.fail = failQueue
		writeLimitExceeded(w, http.StatusTooManyRequests, qe.RetryAfter)
	case errors.Is(err, upstream.ErrNoMember):
		out.fail = failUnavailable
		writeError(w, http.StatusBadGateway, errUnknown, "No upstream available")
	case r.Context().Err() != nil:
		out.fail = failClient // the client went away while queued
	default:
		out.fail = h1.Kind(err)
		writeError(w, http.StatusBadGateway, errUnknown, "Upstream unavailable")
	}
	return out
}

// upstreamFailed answers when the request could not be carried: the client's
// faults are 4xx (413 too large, 408 stalled, 400 malformed, nothing when it
// went away), the upstream's 502 or 504, always Matrix JSON. The cause goes
// into the outcome, never to the client.
func upstreamFailed(w *responseWriter, r *http.Request, rq *request, err error, out outcome) outcome {
	out.err = err
	out.fail = h1.Kind(err)
	if rq.body != nil {
		switch rq.body.state.Load() {
		case bodyTooLarge:
			out.fail = failClient
			writeError(w, http.StatusRequestEntityTooLarge, errTooLarge, "Request body too large")
			return out
		case bodyStalled:
			out.fail = failClient
			writeError(w, http.StatusRequestTimeout, errUnknown, "Request body timed out")
			return out
		case bodyMalformed:
			out.fail = failClient
			rq.closeConn = true
			writeError(w, http.StatusBadRequest, errUnknown, "Malformed request body")
			return out
		case bodyAborted:
			out.fail = failClient
			return out // the client is gone or broke its body: nobody to answer
		}
	}
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		out.fail = failClient
		return out // the client went away
	}
	if out.fail == "timeout" {
		writeError(w, http.StatusGatewayTimeout, errUnknown, "Upstream timed out")
		return out
	}
	writeError(w, http.StatusBadGateway, errUnknown, "Upstream unavailable")
	return out
}

// isConnectError and isWriteError test err's kind; their targets escape to
// the heap, so they are called only on failure (no allocation per request).
func isConnectError(err error) bool {
	var ce *h1.ConnectError
	return errors.As(err, &ce)
}

func isWriteError(err error) bool {
	var we *h1.WriteError
	return errors.As(err, &we)
}
