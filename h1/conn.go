package h1

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// Buffer sizes. Read buffers are pooled and held only while an answer is
// read; a head or chunk line longer than readBufSize gets a private larger
// buffer for that exchange.
const (
	readBufSize = 4 << 10
	copyBufSize = 32 << 10
	// maxHead caps one response head (status line and fields), and the
	// trailer section of a chunked body.
	maxHead = 64 << 10
)

// Buffers shared by all exchanges: 32 KiB for request heads and body copies
// both ways, 4 KiB for reading response heads and chunk framing.
var (
	copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
	readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
)

// conn is one upstream connection.
type conn struct {
	nc      net.Conn
	raw     syscall.RawConn // the socket, for the liveness peek; nil when not a socket
	tls     *tls.Conn       // nil: plain
	rec     *recordConn     // TLS: the record tracker under tls
	idleAt  time.Time
	abortFn func() // c.abort, made once: context.AfterFunc takes it per exchange
	// The read side, while an answer is read: buf is pooled, buf[r:w] unread.
	bufp *[]byte
	buf  []byte
	r, w int
	one  [1]byte
}

func newConn(nc net.Conn) *conn {
	c := &conn{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.abortFn = c.abort
	return c
}

func (c *conn) abort() { c.nc.Close() }

func (c *conn) close() {
	c.nc.Close()
	c.releaseBuf()
}

func (c *conn) takeBuf() {
	if c.bufp == nil {
		c.bufp = readBufs.Get().(*[]byte)
		c.buf = *c.bufp
		c.r, c.w = 0, 0
	}
}

// releaseBuf returns the read buffer to the pool (only a pooled one: a head
// that needed more room got a private, larger buffer).
func (c *conn) releaseBuf() {
	if c.bufp != nil {
		if len(c.buf) == readBufSize {
			*c.bufp = c.buf
			readBufs.Put(c.bufp)
		}
		c.bufp, c.buf, c.r, c.w = nil, nil, 0, 0
	}
}

// fill reads more bytes into buf, compacting it or growing it (up to limit)
// when full.
func (c *conn) fill(limit int) error {
	if c.w == len(c.buf) {
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		} else {
			if len(c.buf) >= limit {
				return ErrHeadTooLarge
			}
			nb := make([]byte, min(len(c.buf)*4, limit))
			copy(nb, c.buf[c.r:c.w])
			c.buf = nb // the pooled one is dropped, not returned resized
		}
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// reusable reports whether the connection may carry another exchange: no
// byte is left over from the last answer, in mxedge's buffer, in crypto/tls's
// or in the kernel's, and the upstream has not closed it. It does not block.
// Bytes nobody asked for are an answer to no request: the next client would
// receive them as its own.
func (c *conn) reusable() bool {
	if c.r != c.w {
		return false
	}
	if c.tls != nil {
		if c.rec.midRecord() {
			return false // part of a record was read: more of it is on the way
		}
		if !peekIdle(c.raw) {
			return false
		}
		return c.tlsDrained()
	}
	return peekIdle(c.raw)
}

// tlsDrained reports whether crypto/tls holds no unread record or plaintext:
// a read with an expired deadline returns buffered data (unsolicited), an
// alert (closed), or a timeout without touching the socket (nothing held;
// crypto/tls keeps the connection usable after a timeout).
func (c *conn) tlsDrained() bool {
	c.tls.SetReadDeadline(time.Unix(1, 0))
	n, err := c.tls.Read(c.one[:])
	c.tls.SetReadDeadline(time.Time{})
	if n > 0 {
		return false
	}
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// recordConn sits between crypto/tls and the socket and follows the TLS
// record framing of what crypto/tls reads, so that a connection is known to
// hold part of a record (bytes still on their way) after an answer ends.
type recordConn struct {
	net.Conn
	hdr    [5]byte
	hdrN   int // bytes of the current record header read
	remain int // bytes of the current record body still to come
}

func (r *recordConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.track(p[:n])
	return n, err
}

func (r *recordConn) track(b []byte) {
	for len(b) > 0 {
		if r.remain > 0 {
			k := min(r.remain, len(b))
			r.remain -= k
			b = b[k:]
			continue
		}
		k := copy(r.hdr[r.hdrN:], b)
		r.hdrN += k
		b = b[k:]
		if r.hdrN == len(r.hdr) {
			r.remain = int(r.hdr[3])<<8 | int(r.hdr[4])
			r.hdrN = 0
		}
	}
}

func (r *recordConn) midRecord() bool { return r.hdrN != 0 || r.remain != 0 }
