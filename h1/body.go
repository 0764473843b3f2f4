package h1

import (
	"io"
	"net"
	"net/http"
)

// Response is an upstream's final answer while its body is read. It is used
// by one goroutine; Close must be called exactly once.
type Response struct {
	// Status is the response status code.
	Status int

	pool   *Pool
	c      *conn
	stop   func() bool // the cancellation hook's stop
	raw    []byte      // the head, in c's buffer until the body is read
	h      head
	mode   uint8
	remain int64 // modeLength
	ck     chunked
	done   bool // the body was read to its end
}

// Body framing of a response.
const (
	modeNone uint8 = iota
	modeLength
	modeChunked
	modeClose
	modeUpgrade // a 101: the connection now carries another protocol
)

func (p *Pool) newResponse(c *conn, stop func() bool, req *Request, raw []byte, h head) *Response {
	r := &Response{Status: h.status, pool: p, c: c, stop: stop, raw: raw, h: h}
	switch {
	case h.status == http.StatusSwitchingProtocols:
		r.mode = modeUpgrade
	case req.Method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified:
		r.mode = modeNone
	case h.chunked:
		r.mode = modeChunked
	case h.contentLength >= 0:
		r.mode, r.remain = modeLength, h.contentLength
	default:
		r.mode = modeClose
	}
	return r
}

// Header copies the response's fields into dst, minus hop-by-hop fields and
// those named in Connection. Call it before WriteBody.
func (r *Response) Header(dst http.Header) {
	fillHeader(dst, r.raw, &r.h)
}

// FlushWriter is where a body goes: a writer that can push what it buffered
// to the client (an http.ResponseWriter behind http.ResponseController).
type FlushWriter interface {
	io.Writer
	FlushError() error
}

// WriteError wraps the error of writing the body to the client.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "writing the response: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// WriteBody copies the response body to w: a body already in the read buffer
// is written from there; otherwise through a pooled 32 KiB buffer, flushing
// whenever the upstream pauses (streaming answers). It returns a *WriteError
// when w failed, or the upstream's error (a ProtocolError, a network error)
// when the body could not be read whole.
func (r *Response) WriteBody(w FlushWriter) error {
	c := r.c
	if r.mode == modeNone {
		r.done = true
		return nil
	}
	if r.mode == modeUpgrade {
		return ErrSwitch // the body is another protocol: use Upgraded
	}
	if r.mode == modeLength && int64(c.w-c.r) >= r.remain {
		n := int(r.remain)
		r.remain = 0
		_, err := w.Write(c.buf[c.r : c.r+n])
		c.r += n
		r.done = true
		if err != nil {
			return &WriteError{err}
		}
		return nil
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, drained, err := r.read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return &WriteError{werr}
			}
		}
		if err == io.EOF {
			r.done = true
			return nil
		}
		if err != nil {
			return err
		}
		if drained {
			if ferr := w.FlushError(); ferr != nil && ferr != http.ErrNotSupported {
				return &WriteError{ferr}
			}
		}
	}
}

// Read reads body bytes into p, as io.Reader (io.EOF at the end). It may be
// mixed with WriteBody, which carries on where Read stopped.
func (r *Response) Read(p []byte) (int, error) {
	if r.mode == modeUpgrade {
		return 0, ErrSwitch
	}
	n, _, err := r.read(p)
	if err == io.EOF {
		r.done = true
	}
	return n, err
}

// read fills p with body bytes. It returns io.EOF with the last bytes or
// after them. drained says the upstream had nothing more to give at once
// (the place to flush a streaming answer).
func (r *Response) read(p []byte) (n int, drained bool, err error) {
	c := r.c
	switch r.mode {
	case modeNone:
		return 0, false, io.EOF
	case modeLength:
		return c.readLength(p, &r.remain)
	case modeClose:
		return c.readRaw(p)
	}
	return c.readChunked(p, &r.ck)
}

// readLength reads the rest of a body of known length (*remain bytes).
func (c *conn) readLength(p []byte, remain *int64) (n int, drained bool, err error) {
	if *remain == 0 {
		return 0, false, io.EOF
	}
	if int64(len(p)) > *remain {
		p = p[:*remain]
	}
	n, drained, err = c.readRaw(p)
	*remain -= int64(n)
	if *remain == 0 {
		return n, false, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, drained, err
}

// readChunked reads the data of a chunked body (the request's on the server
// side, the answer's on the client side), framing consumed as it comes.
func (c *conn) readChunked(p []byte, k *chunked) (n int, drained bool, err error) {
	if k.left == 0 {
		if c.buf == nil {
			c.takeBuf() // the server gives its buffer back between reads
		}
		if err := k.framing(c, true); err != nil {
			return 0, false, err
		}
		if k.state == chunkDone {
			return 0, false, io.EOF
		}
	}
	if int64(len(p)) > k.left {
		p = p[:k.left]
	}
	n, drained, err = c.readRaw(p)
	k.left -= int64(n)
	if err == io.EOF {
		return n, false, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, false, err
	}
	if k.left == 0 {
		// The end is often in the same packet: see it now, without waiting,
		// so that a complete answer is not flushed before its end.
		if err := k.framing(c, false); err != nil {
			return n, false, err
		}
		if k.state == chunkDone {
			return n, false, io.EOF
		}
		// Nothing more buffered: the next read may wait on the upstream.
		drained = c.r == c.w
	}
	return n, drained, nil
}

// readRaw reads body bytes: buffered ones first, else straight from the
// connection into p.
func (c *conn) readRaw(p []byte) (n int, drained bool, err error) {
	if c.r < c.w {
		n = copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, c.r == c.w, nil
	}
	n, err = c.nc.Read(p)
	if n == 0 && err == nil {
		err = io.ErrNoProgress
	}
	return n, n < len(p), err
}

// Upgraded returns, for a 101 answer, the connection now speaking the new
// protocol and the bytes of it already read after the head. The connection
// is never pooled again; Close closes it. Call it after Header.
func (r *Response) Upgraded() (net.Conn, []byte) {
	c := r.c
	if r.mode != modeUpgrade || c == nil {
		return nil, nil
	}
	rest := append([]byte(nil), c.buf[c.r:c.w]...)
	c.r = c.w
	c.releaseBuf()
	return c.nc, rest
}

// Close ends the exchange. The connection goes back to the pool only when
// the body was read to its end, the upstream allowed keep-alive, nothing
// follows the answer in the buffer, and the request was not cancelled;
// otherwise it is closed.
func (r *Response) Close() {
	if r.c == nil {
		return
	}
	c := r.c
	r.c = nil
	r.pool.busy.Add(-1)
	reusable := r.done && !r.h.close && r.mode != modeClose && r.mode != modeUpgrade && c.r == c.w
	if r.stop() && reusable {
		r.pool.put(c)
		return
	}
	c.close()
}
