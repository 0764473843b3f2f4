package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/mxedge/mxedge/h1"
)

// forwarder carries requests to the homeserver over mxedge's own HTTP/1.1
// client (package h1): the raw path and query byte-exact, Host preserved,
// forwarding headers built from the one client address mxedge trusts, bodies
// streamed both ways.
type forwarder struct {
	pool *h1.Pool
	// headerTimeout bounds the wait for the response head, except on
	// long-polls and media downloads (0: none).
	headerTimeout   time.Duration
	defaultHost     string // Host sent when the client sent none
	allowUnderscore bool   // forward.allow_underscores_in_headers
}

// forward sends the request upstream and copies the answer back. Before the
// response head, a failure is answered by upstreamFailed; after it, a failed
// copy is reported with abort set, so that serve aborts the client's response
// and a truncated answer never looks complete.
func (f *forwarder) forward(w *responseWriter, r *http.Request, rq *request) outcome {
	host := r.Host
	if host == "" {
		host = f.defaultHost
	}
	req := h1.Request{
		Method:          r.Method,
		Path:            rq.rawPath,
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
	res, err := f.pool.RoundTrip(r.Context(), &req)
	out := outcome{forwarded: true, upstream: time.Since(rq.start)}
	if err != nil {
		return upstreamFailed(w, r, rq, err, out)
	}
	res.Header(w.Header())
	w.WriteHeader(res.Status)
	err = res.WriteBody(w)
	res.Close()
	if err != nil {
		out.err = err
		out.fail = h1.Kind(err)
		var we *h1.WriteError
		if errors.As(err, &we) {
			out.fail = failClient
		}
		out.abort = true
	}
	return out
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

// Failure kinds of an outcome, beyond h1.Kind's.
const (
	failClient = "client" // the client went away or broke its request
)

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
