package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// serverConn is one client connection of a Server. Its goroutine reads a
// request, runs the handler, writes the answer, and waits for the next; the
// request, header map, URL and response state are reused from one request to
// the next. While it waits between requests it holds no buffer.
type serverConn struct {
	s        *Server
	c        conn // the read side: socket, TLS, the pooled read buffer
	state    atomic.Int32
	remote   string
	tlsState *tls.ConnectionState
	rawRead  func(fd uintptr) bool // sc.readRaw, made once
	rn       int
	rerr     error

	tmpl   *http.Request // carries ctx; each request starts as a copy
	req    http.Request
	url    url.URL
	hdr    http.Header
	fields []field
	head   reqHead
	body   reqBody
	res    response
	ctx    peerCtx

	hijacked bool
	stash    [1]byte // a byte the peer watch read ahead (TLS)
	stashed  bool
}

// maxHeaderBytes is net/http's default cap on a request head.
const maxHeaderBytes = 1 << 20

func newServerConn(s *Server, nc net.Conn) *serverConn {
	sc := &serverConn{s: s, c: conn{nc: nc}, hdr: make(http.Header, 16)}
	if tc, ok := nc.(syscall.Conn); ok {
		sc.c.raw, _ = tc.SyscallConn()
	}
	sc.remote = nc.RemoteAddr().String()
	sc.rawRead = sc.readRaw
	sc.ctx.sc = sc
	sc.tmpl = (&http.Request{}).WithContext(&sc.ctx)
	sc.res.sc = sc
	sc.res.header = make(http.Header, 16)
	sc.body.sc = sc
	return sc
}

func (sc *serverConn) serve() {
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			sc.s.logf("http: panic serving %v: %v\n%s", sc.remote, p, buf)
		}
		if !sc.hijacked {
			sc.c.close()
			sc.res.release()
			sc.s.untrack(sc)
		}
	}()
	if sc.s.tlsConf != nil && !sc.handshake() {
		return
	}
	first := true
	for {
		if !sc.readRequest(first) {
			return
		}
		first = false
		sc.handle()
		if sc.hijacked || sc.res.closeAfter || sc.ctx.canceled.Load() {
			return
		}
		if !sc.state.CompareAndSwap(stateActive, stateIdle) || sc.s.shutting.Load() {
			return
		}
	}
}

// handshake runs the TLS handshake within ReadHeaderTimeout and dispatches
// by ALPN: h2 to the HTTP/2 server, http/1.1 (or none) here; any other
// protocol (acme-tls/1: the handshake was the whole exchange) is closed.
func (sc *serverConn) handshake() bool {
	tc := tls.Server(sc.c.nc, sc.s.tlsConf)
	if d := sc.s.ReadHeaderTimeout; d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	if err := tc.Handshake(); err != nil {
		if !errors.Is(err, io.EOF) {
			sc.s.logf("http: TLS handshake error from %s: %v", sc.remote, err)
		}
		return false
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	sc.tlsState = &st
	sc.c.nc, sc.c.tls = tc, tc
	switch st.NegotiatedProtocol {
	case "", "http/1.1":
		return true
	case "h2":
		if sc.s.h2ln != nil && sc.state.CompareAndSwap(stateIdle, stateClosed) {
			sc.hijacked = true // the h2 server owns it now
			sc.s.untrack(sc)
			sc.s.h2ln.hand(tc)
		}
	}
	return false
}

// readRequest waits for the next request head (IdleTimeout, or
// ReadHeaderTimeout before the first), parses it into sc.req and marks the
// connection active. A malformed head is answered and false returned.
func (sc *serverConn) readRequest(first bool) bool {
	c := &sc.c
	wait := sc.s.IdleTimeout
	if first || wait <= 0 {
		wait = sc.s.ReadHeaderTimeout
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
		if wait > 0 {
			c.nc.SetReadDeadline(time.Now().Add(wait))
		}
		if err := sc.waitFirst(); err != nil {
			return false
		}
	}
	if !sc.state.CompareAndSwap(stateIdle, stateActive) {
		return false // Shutdown closed it while idle
	}
	limit := sc.s.MaxHeaderBytes
	if limit <= 0 {
		limit = maxHeaderBytes
	}
	scanned, deadline := 0, false
	for {
		n, perr := requestHeadEnd(c.buf[c.r:c.w], &scanned)
		if perr != nil {
			sc.refuse(perr)
			return false
		}
		if n > 0 {
			if n > limit {
				sc.refuse(errHeadTooBig)
				return false
			}
			return sc.parse(c.buf[c.r : c.r+n])
		}
		if c.w-c.r > limit {
			sc.refuse(errHeadTooBig)
			return false
		}
		if !deadline && sc.s.ReadHeaderTimeout > 0 {
			// The head did not come whole: bound the rest of it.
			c.nc.SetReadDeadline(time.Now().Add(sc.s.ReadHeaderTimeout))
			deadline = true
		}
		if err := c.fill(limit + 4); err != nil {
			if err == ErrHeadTooLarge {
				sc.refuse(errHeadTooBig)
			}
			return false
		}
	}
}

// waitFirst waits for the first bytes of a request without holding a
// buffer: on a plain socket the read happens inside the poller's callback,
// into a pooled buffer taken only once the socket is readable; over TLS a
// one-byte read waits (crypto/tls holds the record), then the buffer is
// taken.
func (sc *serverConn) waitFirst() error {
	c := &sc.c
	if sc.stashed {
		c.takeBuf()
		c.buf[0], c.w, sc.stashed = sc.stash[0], 1, false
		return nil
	}
	if c.tls != nil || c.raw == nil {
		n, err := c.nc.Read(sc.stash[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return err
		}
		c.takeBuf()
		c.buf[0], c.w = sc.stash[0], 1
		return nil
	}
	sc.rn, sc.rerr = 0, nil
	if err := c.raw.Read(sc.rawRead); err != nil {
		c.releaseBuf()
		return err
	}
	if sc.rn <= 0 {
		c.releaseBuf()
		if sc.rerr == nil {
			sc.rerr = io.EOF
		}
		return sc.rerr
	}
	c.w = sc.rn
	return nil
}

// readRaw is the poller callback of waitFirst: false means "not readable
// yet, wait", and the buffer goes back to the pool meanwhile.
func (sc *serverConn) readRaw(fd uintptr) bool {
	c := &sc.c
	c.takeBuf()
	for {
		n, err := syscall.Read(int(fd), c.buf)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			c.releaseBuf()
			return false
		}
		sc.rn, sc.rerr = n, err
		return true
	}
}

// parse fills sc.req from a whole head at the start of the read buffer.
func (sc *serverConn) parse(b []byte) bool {
	r := &sc.req
	*r = *sc.tmpl
	clear(sc.hdr)
	r.Header = sc.hdr
	var perr *parseError
	sc.head, sc.fields, perr = parseRequestHead(b, r, &sc.url, sc.fields)
	c := &sc.c
	c.r += len(b)
	if perr != nil {
		sc.refuse(perr)
		return false
	}
	r.RemoteAddr = sc.remote
	r.TLS = sc.tlsState
	if r.ContentLength != 0 {
		sc.body.reset(&sc.head)
		r.Body = &sc.body
		// The idle or head deadline no longer applies: the handler bounds
		// its body reads itself.
		c.nc.SetReadDeadline(time.Time{})
	} else {
		sc.body.active = false
		r.Body = http.NoBody
	}
	if c.r == c.w {
		c.releaseBuf()
	}
	return true
}

// handle runs the handler for sc.req and completes its answer.
func (sc *serverConn) handle() {
	r := &sc.req
	sc.res.reset(r, &sc.head)
	sc.ctx.begin()
	defer sc.ctx.end()
	sc.s.Handler.ServeHTTP(&sc.res, r)
	if sc.hijacked {
		return
	}
	sc.ctx.end()
	sc.res.finish()
	if sc.body.active && !sc.body.eof {
		// Not read to its end: the rest cannot be told from a next request.
		sc.res.closeAfter = true
		sc.linger()
	}
}

// refuse answers a malformed head (Matrix JSON, Connection: close) and lets
// the connection close.
func (sc *serverConn) refuse(perr *parseError) {
	var b []byte
	b = appendStatusLine(b, 1, perr.status)
	body := `{"errcode":"M_UNKNOWN","error":"` + perr.msg + `"}`
	b = append(b, "Content-Type: application/json\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	sc.c.nc.SetWriteDeadline(time.Now().Add(refuseTimeout))
	sc.c.nc.Write(b)
	sc.linger()
}

// refuseTimeout bounds writing a refusal and the lingering close after it.
const refuseTimeout = 500 * time.Millisecond

// linger half-closes the connection and reads what the client still sends
// for a moment, so that the kernel does not answer those bytes with a reset
// that would destroy the answer before the client read it.
func (sc *serverConn) linger() {
	nc := sc.c.nc
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(refuseTimeout))
	var buf [512]byte
	for total := 0; total < 256<<10; {
		n, err := nc.Read(buf[:])
		total += n
		if err != nil {
			return
		}
	}
}

// reqBody is the request body of sc.req: Content-Length or chunked, read
// from the connection's buffer first, then straight into the caller's slice.
type reqBody struct {
	sc      *serverConn
	active  bool
	chunked bool
	expect  bool // send 100 Continue before the first read
	eof     bool
	remain  int64
	ck      chunked
	err     error
}

func (b *reqBody) reset(h *reqHead) {
	*b = reqBody{sc: b.sc, active: true, chunked: h.chunked, expect: h.expect, remain: h.contentLength}
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func (b *reqBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	sc := b.sc
	if b.expect {
		b.expect = false
		if !sc.res.committed && sc.res.err == nil {
			if _, err := sc.c.nc.Write(continueLine); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.err = err
	}
	c := &sc.c
	if c.r == c.w && c.bufp != nil {
		c.releaseBuf()
	}
	return n, err
}

func (b *reqBody) read(p []byte) (int, error) {
	c := &b.sc.c
	if !b.chunked {
		if b.remain == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, _, err := c.readRaw(p)
		b.remain -= int64(n)
		if b.remain == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	k := &b.ck
	if k.left == 0 {
		if c.bufp == nil && c.buf == nil {
			c.takeBuf()
		}
		if err := k.framing(c, true); err != nil {
			return 0, err
		}
		if k.state == chunkDone {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > k.left {
		p = p[:k.left]
	}
	n, _, err := c.readRaw(p)
	k.left -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, err
	}
	if k.left == 0 && c.r < c.w {
		// The end is often in the same packet.
		if err := k.framing(c, false); err != nil {
			return n, err
		}
		if k.state == chunkDone {
			return n, io.EOF
		}
	}
	return n, nil
}

func (b *reqBody) Close() error { return nil }

// hijack hands the connection to the handler (a WebSocket tunnel), with the
// bytes already read after the request head.
func (sc *serverConn) hijack() (net.Conn, *bufio.ReadWriter, error) {
	if sc.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if sc.res.committed {
		return nil, nil, errors.New("h1: hijack after the response was written")
	}
	sc.ctx.end()
	sc.hijacked = true
	sc.state.Store(stateClosed)
	sc.s.untrack(sc)
	c := &sc.c
	rest := append([]byte(nil), c.buf[c.r:c.w]...)
	c.releaseBuf()
	sc.res.release()
	nc := c.nc
	nc.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), nc), max(len(rest), 16))
	if len(rest) > 0 {
		br.Peek(len(rest))
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriter(nc)), nil
}

// peerCtx is the context of a connection's requests: it is cancelled when
// the client goes away while a request is served. Nothing watches the
// connection for short requests; one that is still running after
// watchDelay and waits on it (context.AfterFunc, Done: a long-poll, a slow
// upstream) gets a read on the idle connection, as net/http's background
// read, which ends with the request. A byte read ahead is kept for the next
// request.
type peerCtx struct {
	sc        *serverConn
	mu        sync.Mutex
	canceled  atomic.Bool
	done      chan struct{}
	fns       []afterFn
	nextID    uint64
	active    bool // a request is being served
	armed     bool // it waits on the context: watch it after watchDelay
	watching  bool
	watchDone chan struct{}
	timer     *time.Timer
}

type afterFn struct {
	id uint64
	f  func()
}

// watchDelay is how long a request runs before the connection is watched.
const watchDelay = 100 * time.Millisecond

var aLongTimeAgo = time.Unix(1, 0)

func (c *peerCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *peerCtx) Value(any) any               { return nil }

func (c *peerCtx) Err() error {
	if c.canceled.Load() {
		return context.Canceled
	}
	return nil
}

func (c *peerCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.canceled.Load() {
			close(c.done)
		}
	}
	c.armLocked()
	return c.done
}

// AfterFunc is what context.AfterFunc uses on this context (no goroutine).
func (c *peerCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.canceled.Load() {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	id := c.nextID
	c.nextID++
	c.fns = append(c.fns, afterFn{id, f})
	c.armLocked()
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, a := range c.fns {
			if a.id == id {
				c.fns = append(c.fns[:i], c.fns[i+1:]...)
				return true
			}
		}
		return false
	}
}

func (c *peerCtx) armLocked() {
	if !c.active || c.armed {
		return
	}
	c.armed = true
	if c.timer == nil {
		c.timer = time.AfterFunc(watchDelay, c.watch)
	} else {
		c.timer.Reset(watchDelay)
	}
}

func (c *peerCtx) begin() {
	c.mu.Lock()
	c.active = true
	c.mu.Unlock()
}

// end stops watching: the request is done. Registered functions are
// dropped (their stop reports false).
func (c *peerCtx) end() {
	c.mu.Lock()
	if !c.active {
		c.mu.Unlock()
		return
	}
	c.active, c.armed = false, false
	clear(c.fns)
	c.fns = c.fns[:0]
	w := c.watching
	c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if w {
		nc := c.sc.c.nc
		nc.SetReadDeadline(aLongTimeAgo)
		<-c.watchDone
		nc.SetReadDeadline(time.Time{})
		c.mu.Lock()
		c.watching = false
		c.mu.Unlock()
	}
}

// watch runs on the timer's goroutine: a read on the idle connection until
// the client closes it (cancel), sends a byte (kept), or end stops it.
func (c *peerCtx) watch() {
	sc := c.sc
	c.mu.Lock()
	if !c.armed || c.watching || c.canceled.Load() || (sc.body.active && !sc.body.eof) {
		c.mu.Unlock()
		return
	}
	c.watching = true
	c.watchDone = make(chan struct{})
	sc.c.nc.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	defer close(c.watchDone)
	n, err := sc.c.nc.Read(sc.stash[:])
	if n > 0 {
		sc.stashed = true
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return // end stopped it
	}
	c.cancel()
}

func (c *peerCtx) cancel() {
	c.mu.Lock()
	if c.canceled.Swap(true) {
		c.mu.Unlock()
		return
	}
	if c.done != nil {
		close(c.done)
	}
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for _, a := range fns {
		a.f()
	}
}
