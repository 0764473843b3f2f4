package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// forwarder carries requests to the homeserver over mxedge's own HTTP/1.1
// client (upstream.go): the raw path and query byte-exact, Host preserved,
// forwarding headers built from the one client address mxedge trusts, bodies
// streamed both ways, Matrix JSON for every failure.
type forwarder struct {
	pool *upPool
	// headerTimeout bounds the wait for the response head, except on
	// long-polls and media downloads (0: none).
	headerTimeout time.Duration
	defaultHost   string // Host sent when the client sent none
	log           logger
}

// logger is the part of the server the forwarder reports to.
type logger interface {
	upstreamError(rq *request, kind string, err error)
}

// newForwarder builds the forwarder for upstream (an http(s) URL, or a unix
// socket path when socket is non-empty).
func newForwarder(target *url.URL, socket string, headerTimeout time.Duration, log logger) *forwarder {
	return &forwarder{pool: newUpPool(target, socket), headerTimeout: headerTimeout, defaultHost: target.Host, log: log}
}

func (f *forwarder) close() { f.pool.close() }

// forward sends the request upstream and copies the answer back.
func (snap *snapshot) forward(w *responseWriter, r *http.Request, rq *request) {
	rq.fwd = true
	snap.fwd.serve(w, r, rq)
}

// serve is one exchange with the upstream. Before the response head, a
// failure is answered by errorHandler; after it, a failed copy aborts the
// client's response (panic http.ErrAbortHandler) so that a truncated answer
// never looks complete. The connection goes back to the pool only when the
// body was read to its end and the upstream allowed keep-alive.
func (f *forwarder) serve(w *responseWriter, r *http.Request, rq *request) {
	ctx := r.Context()
	if err := ctx.Err(); err != nil {
		f.errorHandler(w, r, err)
		return
	}
	timeout := f.headerTimeout
	if rq.route.LongPoll {
		timeout = 0
	}
	c, stop, head, hd, err := f.exchange(ctx, r, rq, timeout)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		f.errorHandler(w, r, err)
		return
	}
	rq.upstream = time.Since(rq.start)
	fillHeader(w.Header(), head, &hd)
	br := bodyReader{c: c}
	switch {
	case r.Method == http.MethodHead || hd.status == http.StatusNoContent || hd.status == http.StatusNotModified:
		br.mode = modeNone
	case hd.chunked:
		br.mode = modeChunked
		c.chunkLeft, c.chunkState = 0, chunkSize
	case hd.contentLength >= 0:
		br.mode, br.remain = modeLength, hd.contentLength
	default:
		br.mode = modeClose
	}
	w.WriteHeader(hd.status)
	copyErr := copyBody(w, &br)
	reusable := copyErr == nil && !hd.close && br.mode != modeClose && c.r == c.w
	if stop() && reusable {
		c.releaseBuf()
		f.pool.put(c)
	} else {
		c.close()
	}
	if copyErr != nil {
		panic(http.ErrAbortHandler)
	}
}

// exchange sends the request and reads the final response head (1xx interim
// answers are skipped; 101 is refused). The head lies in c's buffer until the
// next read. A request is sent again, once, on a fresh connection when the
// pooled connection it was given turned out dead and repeating it is safe:
// nothing was written, or it is a bodiless GET, HEAD or OPTIONS that got no
// byte back.
func (f *forwarder) exchange(ctx context.Context, r *http.Request, rq *request, timeout time.Duration) (c *upConn, stop func() bool, head []byte, hd upHead, err error) {
	var body io.Reader
	cl := int64(0)
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body, cl = r.Body, r.ContentLength
	}
	idempotent := body == nil && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions)
	// The buffer is not held while a long-poll waits: a bodiless request
	// gives it back before reading the head.
	wbp := copyBufs.Get().(*[]byte)
	defer func() {
		if wbp != nil {
			copyBufs.Put(wbp)
		}
	}()
	s := reqSender{wb: *wbp, body: body, chunked: cl < 0, remain: cl}
	pending, err := appendRequestHead(s.wb[:0], r, rq, f.defaultHost, cl)
	if err != nil {
		return nil, nil, nil, hd, err
	}
	for attempt := 0; ; attempt++ {
		reused := false
		if attempt == 0 {
			c, reused, err = f.pool.get(ctx)
		} else {
			c, err = f.pool.dial(ctx)
		}
		if err != nil {
			return nil, nil, nil, hd, err
		}
		stop = context.AfterFunc(ctx, c.abortFn)
		retry := false
		rest, wrote, werr := s.send(c, pending)
		switch {
		case werr == nil:
			if body == nil {
				copyBufs.Put(wbp)
				wbp = nil
			}
			head, hd, err = readFinalHead(c, timeout, rq.route.LongPoll)
			if err == nil {
				return c, stop, head, hd, nil
			}
			// A dead pooled connection: nothing came back.
			if retry = attempt == 0 && reused && idempotent && c.w == 0 && !isTimeout(err); retry {
				wbp = copyBufs.Get().(*[]byte)
				s.wb = *wbp
				pending, _ = appendRequestHead(s.wb[:0], r, rq, f.defaultHost, cl)
			}
		case s.bodyErr != nil || werr == errUpBodyTooLong:
			err = werr // the client's body failed: the upstream request is aborted
		default:
			err = werr
			if retry = attempt == 0 && reused && !wrote; retry {
				pending = rest
				break
			}
			if wrote {
				// The upstream may have answered before taking the whole
				// body (refusing it) and closed: pass that answer on.
				if h, d, herr := readFinalHead(c, timeout, false); herr == nil {
					d.close = true
					return c, stop, h, d, nil
				}
			}
		}
		stop()
		c.close()
		if !retry || ctx.Err() != nil {
			return nil, nil, nil, hd, err
		}
	}
}

// readFinalHead reads response heads until a final one, within timeout
// (0: none) when set. A long-poll waits for the first byte without holding a
// buffer; other requests read straight into the pooled buffer (one read
// fewer).
func readFinalHead(c *upConn, timeout time.Duration, longPoll bool) ([]byte, upHead, error) {
	if timeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(timeout))
	}
	if !longPoll {
		c.takeBuf()
	}
	for {
		head, hd, err := c.readHead()
		switch {
		case err != nil:
			return nil, hd, err
		case hd.status == http.StatusSwitchingProtocols:
			return nil, hd, errUpSwitch
		case hd.status >= 200:
			if timeout > 0 {
				c.nc.SetReadDeadline(time.Time{})
			}
			return head, hd, nil
		}
		// 1xx interim answers (100, 103) are read and dropped.
	}
}

// readHead reads and parses one response head. With nothing buffered it
// waits for the first byte in a one-byte array, and takes the pooled buffer
// only when the answer starts: a held long-poll holds no buffer.
func (c *upConn) readHead() ([]byte, upHead, error) {
	if c.bufp == nil {
		n, err := c.nc.Read(c.one[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, upHead{}, err
		}
		c.takeBuf()
		c.buf[0] = c.one[0]
		c.w = 1
	}
	for {
		if end := headEnd(c.buf[c.r:c.w]); end >= 0 {
			head := c.buf[c.r : c.r+end]
			c.r += end
			hd, err := parseResponseHead(head)
			return head, hd, err
		}
		if c.w-c.r >= upMaxHead {
			return nil, upHead{}, errUpHeadTooLarge
		}
		if err := c.fill(upMaxHead); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, upHead{}, err
		}
	}
}

// copyBody copies the response body to the client: a body already in the
// read buffer is written from there; otherwise through a pooled 32 KiB
// buffer, flushing whenever the upstream pauses (streaming answers).
func copyBody(w *responseWriter, br *bodyReader) error {
	c := br.c
	if br.mode == modeNone {
		return nil
	}
	if br.mode == modeLength && int64(c.w-c.r) >= br.remain {
		n := int(br.remain)
		br.remain = 0
		_, err := w.Write(c.buf[c.r : c.r+n])
		c.r += n
		return err
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, drained, err := br.read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if drained {
			w.FlushError()
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errorHandler answers when the upstream could not be reached or the request
// could not be carried: the client's faults are 4xx, the upstream's 502/504,
// always Matrix JSON. The cause is logged without the URL (it may hold tokens).
func (f *forwarder) errorHandler(w *responseWriter, r *http.Request, err error) {
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
