package proxy

import (
	"context"
	"errors"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// forwarder carries requests to the homeserver with httputil.ReverseProxy and
// Rewrite: the raw path and query byte-exact, Host preserved, forwarding
// headers built from the one client address mxedge trusts, bodies streamed
// both ways, Matrix JSON for every failure.
type forwarder struct {
	target *url.URL
	// plain serves long-polls and media downloads (no response-header
	// timeout); timed serves the rest when upstream_response_header is set.
	plain, timed *httputil.ReverseProxy
	transports   []*http.Transport
	log          logger
}

// logger is the part of the server the forwarder reports to.
type logger interface {
	upstreamError(rq *request, kind string, err error)
}

// bufferPool hands ReverseProxy 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(p []byte) { b.p.Put(&p) }

var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

// newForwarder builds the forwarder for upstream (an http(s) URL, or a unix
// socket path when socket is non-empty).
func newForwarder(target *url.URL, socket string, headerTimeout time.Duration, log logger, errorLog *stdlog.Logger) *forwarder {
	f := &forwarder{target: target, log: log}
	mk := func(rht time.Duration) *httputil.ReverseProxy {
		t := newTransport(socket, rht)
		f.transports = append(f.transports, t)
		return &httputil.ReverseProxy{
			Rewrite:        f.rewrite,
			Transport:      t,
			BufferPool:     copyBuffers,
			ModifyResponse: f.modifyResponse,
			ErrorHandler:   f.errorHandler,
			ErrorLog:       errorLog,
		}
	}
	f.plain = mk(0)
	f.timed = f.plain
	if headerTimeout > 0 {
		f.timed = mk(headerTimeout)
	}
	return f
}

// newTransport is the upstream connection pool: sized for thousands of
// concurrent long-polls, HTTP/1.1 keep-alive, no environment proxy, no
// transparent compression (the bytes pass through as the homeserver sent them).
func newTransport(socket string, responseHeaderTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	if socket != "" {
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		}
	}
	return t
}

func (f *forwarder) close() {
	for _, t := range f.transports {
		t.CloseIdleConnections()
	}
}

type ctxKey struct{}

// forward sends the request upstream. The ReverseProxy sees our response
// writer, so the error handler finds the request state through it.
func (snap *snapshot) forward(w *responseWriter, r *http.Request, rq *request) {
	// Matrix has no protocol switches: never let a client ask the upstream for
	// one (ReverseProxy would re-add Upgrade after stripping hop-by-hop headers).
	delete(r.Header, "Upgrade")
	delete(r.Header, "Http2-Settings")
	p := snap.fwd.timed
	if rq.route.LongPoll {
		p = snap.fwd.plain
	}
	rq.fwd = true
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, rq))
	p.ServeHTTP(w, r)
}

// rewrite builds the outbound request. ReverseProxy has already removed
// hop-by-hop headers (and those named in Connection) and the client's
// Forwarded/X-Forwarded-* headers.
func (f *forwarder) rewrite(pr *httputil.ProxyRequest) {
	rq := pr.In.Context().Value(ctxKey{}).(*request)
	out := pr.Out
	out.URL.Scheme = f.target.Scheme
	out.URL.Host = f.target.Host
	// Opaque makes the request line carry the raw path byte-exact: no
	// re-escaping, no cleaning (federation signatures cover the raw URI).
	out.URL.Opaque = rq.rawPath
	out.URL.RawPath = ""
	out.URL.RawQuery = rq.query
	out.URL.ForceQuery = false
	out.Host = pr.In.Host
	h := out.Header
	client := rq.client.String()
	h["X-Forwarded-For"] = []string{client}
	h["X-Real-Ip"] = []string{client}
	h["X-Forwarded-Proto"] = rq.proto
	if pr.In.Host != "" {
		h["X-Forwarded-Host"] = []string{pr.In.Host}
	}
	h["X-Request-Id"] = []string{rq.id}
}

// modifyResponse records when the upstream answered.
func (f *forwarder) modifyResponse(res *http.Response) error {
	if rq, ok := res.Request.Context().Value(ctxKey{}).(*request); ok {
		rq.upstream = time.Since(rq.start)
	}
	return nil
}

// errorHandler answers when the upstream could not be reached or the request
// could not be carried: the client's faults are 4xx, the upstream's 502/504,
// always Matrix JSON. The cause is logged without the URL (it may hold tokens).
func (f *forwarder) errorHandler(rw http.ResponseWriter, r *http.Request, err error) {
	w, ok := rw.(*responseWriter)
	if !ok {
		writeError(rw, http.StatusBadGateway, errUnknown, "Upstream unavailable")
		return
	}
	rq := w.rq
	rq.upstream = time.Since(rq.start)
	if rq.body != nil {
		switch rq.body.state.Load() {
		case bodyTooLarge:
			writeError(w, http.StatusRequestEntityTooLarge, errTooLarge, "Request body too large")
			return
		case bodyStalled:
			writeError(w, http.StatusRequestTimeout, errUnknown, "Request body timed out")
			return
		case bodyAborted:
			f.log.upstreamError(rq, "client", err)
			return // the client is gone or broke its body: nobody to answer
		}
	}
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return // the client went away
	}
	kind := upstreamErrorKind(err)
	f.log.upstreamError(rq, kind, err)
	if kind == "timeout" {
		writeError(w, http.StatusGatewayTimeout, errUnknown, "Upstream timed out")
		return
	}
	writeError(w, http.StatusBadGateway, errUnknown, "Upstream unavailable")
}

// upstreamErrorKind names an upstream failure for logs and metrics.
func upstreamErrorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}
