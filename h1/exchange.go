package h1

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Interim (1xx) responses before the final one are read and dropped, at most
// maxInterim of them and maxHead bytes in all: an upstream that sends them
// without end on a route without a header timeout cannot make mxedge read
// forever. (net/http's client allows 5 and 10 MB.)
const maxInterim = 5

// RoundTrip sends req over a pooled connection and reads the final response
// head. The caller reads the body with Response.WriteBody (or not) and must
// call Response.Close.
//
// A request that failed on a reused connection before any byte of the answer
// came back is sent again, once, on a fresh connection when repeating it is
// safe: when no byte of it was written, or when the upstream closed or reset
// the connection and the request is idempotent (GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE; RFC 9110 §9.2.2) and went out whole in one write (no body, or
// a body that fitted with the head). The connection was checked before use,
// so this covers only a close that crossed the request on the wire.
//
// Errors: ErrRequestField (nothing sent), *BodyError (the client's body
// failed; the upstream saw an aborted request), ProtocolError (the upstream
// broke HTTP/1.1), or the network error. Kind names them.
func (p *Pool) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.busy.Add(1)
	res, err := p.roundTrip(ctx, req)
	if err != nil {
		p.busy.Add(-1)
	}
	return res, err
}

func (p *Pool) roundTrip(ctx context.Context, req *Request) (*Response, error) {
	var body io.Reader
	cl := int64(0)
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		body, cl = req.Body, req.ContentLength
	}
	idempotent := idempotentMethod(req.Method)
	// The copy buffer carries the head and the first body bytes. It is given
	// back before the answer is awaited, unless the request may have to be
	// sent again from it.
	wbp := copyBufs.Get().(*[]byte)
	defer func() {
		if wbp != nil {
			copyBufs.Put(wbp)
		}
	}()
	s := sender{wb: *wbp, body: body, chunked: cl < 0, remain: cl}
	var named connNames
	pending, err := appendHead(s.wb[:0], req, cl, &named)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		var c *conn
		reused := false
		if attempt == 0 {
			c, reused, err = p.get(ctx)
		} else {
			c, err = p.connect(ctx)
		}
		if err != nil {
			return nil, err
		}
		stop := context.AfterFunc(ctx, c.abortFn)
		retry := false
		rest, wrote, werr := s.send(c, pending)
		switch {
		case werr == nil:
			// A bodiless request is written again from its head; one with a
			// body only from the buffer it went out whole in, which is then
			// kept until the answer starts (never for a long-poll).
			replay := idempotent && reused && attempt == 0
			keep := replay && body != nil && s.whole != nil && !req.LongPoll
			if !keep {
				copyBufs.Put(wbp)
				wbp = nil
			}
			var h head
			var raw []byte
			raw, h, err = c.readFinal(req.HeaderTimeout, req.LongPoll)
			if err == nil {
				if h.status == http.StatusSwitchingProtocols && !switchTo(raw, &h, req.Upgrade) {
					err = ErrSwitch
					break
				}
				return p.newResponse(c, stop, req, raw, h), nil
			}
			// Nothing came back: the upstream closed or reset the connection.
			if retry = replay && (body == nil || keep) && c.w == 0 && closedByPeer(err); retry {
				if body == nil {
					wbp = copyBufs.Get().(*[]byte)
					s.wb = *wbp
					named = connNames{}
					pending, _ = appendHead(s.wb[:0], req, cl, &named)
				} else {
					pending = s.whole
				}
			}
		case isBodyErr(werr):
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
				if raw, h, herr := c.readFinal(req.HeaderTimeout, false); herr == nil && h.status != http.StatusSwitchingProtocols {
					h.close = true
					return p.newResponse(c, stop, req, raw, h), nil
				}
			}
		}
		stop()
		c.close()
		if !retry || ctx.Err() != nil {
			if cerr := ctx.Err(); cerr != nil && !isBodyErr(err) {
				err = cerr
			}
			return nil, err
		}
	}
}

func isBodyErr(err error) bool {
	_, ok := err.(*BodyError)
	return ok || err == ErrBodyTooLong
}

// idempotentMethod reports the methods RFC 9110 §9.2.2 calls idempotent.
func idempotentMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// readFinal reads response heads until a final one (1xx interim answers are
// dropped, within maxInterim and maxHead bytes), within timeout (0: none). A
// long-poll waits for the first byte without holding a buffer; other
// requests read straight into the pooled buffer (one read fewer).
func (c *conn) readFinal(timeout time.Duration, longPoll bool) ([]byte, head, error) {
	if timeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(timeout))
		defer c.nc.SetReadDeadline(time.Time{})
	}
	if !longPoll {
		c.takeBuf()
	}
	interimBytes := 0
	for n := 0; ; n++ {
		raw, h, err := c.readHead(maxHead - interimBytes)
		switch {
		case err != nil:
			return nil, h, err
		case h.status >= 200 || h.status == http.StatusSwitchingProtocols:
			return raw, h, nil
		case n == maxInterim:
			return nil, h, ErrTooManyInterim
		}
		interimBytes += len(raw)
	}
}

// readHead reads and parses one response head of at most limit bytes. With
// nothing buffered it waits for the first byte in a one-byte array, and takes
// the pooled buffer only when the answer starts: a held long-poll holds no
// buffer.
func (c *conn) readHead(limit int) ([]byte, head, error) {
	if c.bufp == nil {
		n, err := c.nc.Read(c.one[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, head{}, err
		}
		c.takeBuf()
		c.buf[0] = c.one[0]
		c.w = 1
	}
	for {
		if end := headEnd(c.buf[c.r:c.w]); end >= 0 {
			if end > limit {
				return nil, head{}, ErrHeadTooLarge
			}
			raw := c.buf[c.r : c.r+end]
			c.r += end
			h, err := parseHead(raw)
			return raw, h, err
		}
		if c.w-c.r >= limit {
			return nil, head{}, ErrHeadTooLarge
		}
		if err := c.fill(maxHead); err != nil {
			if err == io.EOF && c.w > c.r {
				err = io.ErrUnexpectedEOF
			}
			return nil, head{}, err
		}
	}
}

// switchTo reports whether a 101 head raw switches to proto, the protocol
// the request asked for: Connection names upgrade and Upgrade is proto.
func switchTo(raw []byte, h *head, proto string) bool {
	if proto == "" || !h.upgrade {
		return false
	}
	hdr := http.Header{}
	fillHeaderAll(hdr, raw, h)
	return EqualFold(hdr.Get("Upgrade"), proto)
}
