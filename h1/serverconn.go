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
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// serverConn is one client connection of a Server. Its goroutine reads a
// request, runs the handler, writes the answer, and waits for the next.
// Between requests it holds no buffer and no request state: the request,
// header maps, URL and response state (a srvExchange) come from a pool when a
// request arrives and go back after its answer, and the wait happens on a
// fresh goroutine whose stack did not grow serving a request.
type serverConn struct {
	s        *Server
	c        conn // the read side: socket, TLS, the pooled read buffer
	state    atomic.Int32
	remote   string
	tlsState *tls.ConnectionState
	rawRead  func(fd uintptr) bool // sc.readRaw, made once
	rn       int
	rerr     error
	x        *srvExchange // the request being served, nil between requests
	accepted time.Time

	hijacked bool
}

// srvExchange is the state of one request and its answer.
type srvExchange struct {
	tmpl   *http.Request // carries ctx; each request starts as a copy
	req    http.Request
	url    url.URL
	hdr    http.Header
	fields []field
	head   reqHead
	body   reqBody
	res    response
	ctx    peerCtx
}

var srvExchanges = sync.Pool{New: func() any {
	x := &srvExchange{hdr: make(http.Header)}
	x.ctx.x = x
	x.tmpl = (&http.Request{}).WithContext(&x.ctx)
	x.res.header = make(http.Header)
	return x
}}

// attach takes a srvExchange for sc's next request.
func (sc *serverConn) attach() *srvExchange {
	x := srvExchanges.Get().(*srvExchange)
	x.res.sc, x.body.sc = sc, sc
	x.ctx.mu.Lock()
	x.ctx.sc = sc
	x.ctx.canceled.Store(false)
	x.ctx.ended.Store(false)
	if x.ctx.done != nil {
		select {
		case <-x.ctx.done:
			x.ctx.done = nil // closed for its last connection
		default:
		}
	}
	x.ctx.mu.Unlock()
	sc.x = x
	return x
}

// detach returns sc's srvExchange to the pool.
func (sc *serverConn) detach() {
	if x := sc.x; x != nil {
		sc.x = nil
		x.res.release()
		if x.ctx.canceled.Load() {
			return // a late peer report may still be running its callbacks
		}
		x.req = http.Request{}
		srvExchanges.Put(x)
	}
}

// maxHeaderBytes is net/http's default cap on a request head.
const maxHeaderBytes = 1 << 20

func newServerConn(s *Server, nc net.Conn) *serverConn {
	sc := &serverConn{s: s, c: conn{nc: nc}, accepted: time.Now()}
	if tc, ok := nc.(syscall.Conn); ok {
		sc.c.raw, _ = tc.SyscallConn()
	}
	sc.remote = nc.RemoteAddr().String()
	sc.rawRead = sc.readRaw
	return sc
}

func (sc *serverConn) serve() {
	if sc.s.tlsConf != nil && !sc.handshake() {
		if !sc.hijacked {
			sc.c.close()
			sc.s.untrack(sc)
		}
		return
	}
	sc.loop(true)
}

// loop serves requests until the connection ends, or until it waits for
// the next with nothing buffered: that wait is handed to a fresh goroutine.
func (sc *serverConn) loop(first bool) {
	handedOff := false
	defer func() {
		if handedOff {
			return
		}
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			sc.s.logf("http: panic serving %v: %v\n%s", sc.remote, p, buf)
		}
		if sc.hijacked {
			return
		}
		if x := sc.x; x != nil {
			x.ctx.end()
			if p != nil {
				sc.x = nil // not pooled: the handler may have left it half-way
			}
		}
		sc.detach()
		sc.c.close()
		sc.s.untrack(sc)
	}()
	for {
		if !sc.readRequest(first) {
			return
		}
		first = false
		sc.handle()
		x := sc.x
		if sc.hijacked || x.res.closeAfter || x.ctx.canceled.Load() {
			return
		}
		sc.detach()
		if !sc.state.CompareAndSwap(stateActive, stateIdle) || sc.s.shutting.Load() {
			return
		}
		if sc.c.r == sc.c.w {
			switch sc.waitBriefly() {
			case waitData:
				continue
			case waitGone:
				return
			}
			handedOff = true
			go sc.loop(false)
			return
		}
	}
}

// handoffDelay is how long a connection waits for its next request on the
// goroutine that served the last one: a busy client's next request comes
// sooner, and is served without a new goroutine growing its stack again.
// After it, the wait moves to a fresh goroutine, so that an idle connection
// does not keep the stack a request grew.
const handoffDelay = 50 * time.Millisecond

const (
	waitData = iota
	waitIdle // nothing yet: hand the wait off
	waitGone // closed, or an error
)

func (sc *serverConn) waitBriefly() int {
	d := handoffDelay
	if idle := sc.s.IdleTimeout; idle > 0 && idle <= d {
		return waitIdle
	}
	sc.c.nc.SetReadDeadline(time.Now().Add(d))
	err := sc.waitFirst()
	if err == nil {
		return waitData
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return waitIdle
	}
	return waitGone
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
	sc.s.mu.Lock() // Shutdown and Close read sc.c.nc under it
	sc.c.nc, sc.c.tls = tc, tc
	sc.s.mu.Unlock()
	switch st.NegotiatedProtocol {
	case "", "http/1.1":
		return true
	case "h2":
		if sc.s.h2ln != nil && sc.state.CompareAndSwap(stateNew, stateClosed) {
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
	if first {
		wait = sc.s.ReadHeaderTimeout
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
		if wait > 0 {
			c.nc.SetReadDeadline(time.Now().Add(wait))
		} else {
			c.nc.SetReadDeadline(time.Time{}) // 0: none
		}
		if err := sc.waitFirst(); err != nil {
			return false
		}
	}
	if !sc.state.CompareAndSwap(stateIdle, stateActive) && !sc.state.CompareAndSwap(stateNew, stateActive) {
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
		if !deadline {
			// The head did not come whole: bound the rest of it (and
			// replace whatever deadline the wait for it left).
			if d := sc.s.ReadHeaderTimeout; d > 0 {
				c.nc.SetReadDeadline(time.Now().Add(d))
			} else {
				c.nc.SetReadDeadline(time.Time{})
			}
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
	if c.tls != nil || c.raw == nil {
		n, err := c.nc.Read(c.one[:])
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return err
		}
		c.takeBuf()
		c.buf[0], c.w = c.one[0], 1
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

// parse fills the request from a whole head at the start of the read buffer.
func (sc *serverConn) parse(b []byte) bool {
	x := sc.attach()
	r := &x.req
	*r = *x.tmpl
	clear(x.hdr)
	r.Header = x.hdr
	var perr *parseError
	x.head, x.fields, perr = parseRequestHead(b, r, &x.url, x.fields)
	c := &sc.c
	c.r += len(b)
	if perr != nil {
		sc.refuse(perr)
		return false
	}
	r.RemoteAddr = sc.remote
	r.TLS = sc.tlsState
	if r.ContentLength != 0 {
		x.body.reset(&x.head)
		r.Body = &x.body
		// The idle or head deadline no longer applies: the handler bounds
		// its body reads itself.
		c.nc.SetReadDeadline(time.Time{})
	} else {
		x.body.active = false
		r.Body = http.NoBody
	}
	if c.r == c.w {
		c.releaseBuf()
	}
	return true
}

// handle runs the handler for the parsed request and completes its answer.
func (sc *serverConn) handle() {
	x := sc.x
	r := &x.req
	x.res.reset(r, &x.head)
	x.ctx.begin()
	sc.s.Handler.ServeHTTP(&x.res, r)
	if sc.hijacked {
		return
	}
	x.ctx.end()
	x.res.finish()
	if x.body.active && !x.body.eof.Load() {
		// Not read to its end: the rest cannot be told from a next request.
		x.res.closeAfter = true
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
	expect  bool        // send 100 Continue before the first read
	eof     atomic.Bool // read by the peer watch
	remain  int64
	ck      chunked
	err     error
}

func (b *reqBody) reset(h *reqHead) {
	*b = reqBody{sc: b.sc, active: true, chunked: h.chunked, expect: h.expect, remain: h.contentLength}
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func (b *reqBody) Read(p []byte) (int, error) {
	if b.eof.Load() {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	sc := b.sc
	if b.expect {
		b.expect = false
		if res := &sc.x.res; !res.committed && res.err == nil {
			if _, err := sc.c.nc.Write(continueLine); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.eof.Store(true)
		sc.x.ctx.bodyDone()
	} else if err != nil {
		b.err = err
	}
	c := &sc.c
	if c.r == c.w && c.bufp != nil {
		c.releaseBuf()
	}
	return n, err
}

func (b *reqBody) read(p []byte) (n int, err error) {
	if b.chunked {
		n, _, err = b.sc.c.readChunked(p, &b.ck)
	} else {
		n, _, err = b.sc.c.readLength(p, &b.remain)
	}
	return n, err
}

func (b *reqBody) Close() error { return nil }

// hijack hands the connection to the handler (a WebSocket tunnel), with the
// bytes already read after the request head.
func (sc *serverConn) hijack() (net.Conn, *bufio.ReadWriter, error) {
	if sc.hijacked {
		return nil, nil, http.ErrHijacked
	}
	x := sc.x
	if x.res.committed {
		return nil, nil, errors.New("h1: hijack after the response was written")
	}
	sc.hijacked = true
	x.ctx.end()
	sc.state.Store(stateClosed)
	sc.s.untrack(sc)
	c := &sc.c
	rest := append([]byte(nil), c.buf[c.r:c.w]...)
	c.releaseBuf()
	x.res.release()
	nc := c.nc
	nc.SetDeadline(time.Time{})
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rest), nc), max(len(rest), 16))
	if len(rest) > 0 {
		br.Peek(len(rest))
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriter(nc)), nil
}

// peerCtx is the context of a request: it is cancelled when the client
// closes the connection while the request is served. Nothing watches the
// connection for short requests; one still running after watchDelay that
// waits on its context (context.AfterFunc, Done: a long-poll, a slow
// upstream) has its socket watched for the peer's close by peerWatcher
// (epoll), until it ends.
type peerCtx struct {
	x        *srvExchange
	sc       *serverConn // set under mu
	mu       sync.Mutex
	canceled atomic.Bool // the client went away
	ended    atomic.Bool // the handler returned (not for a hijack)
	done     chan struct{}
	fns      []afterFn
	nextID   uint64
	active   bool // a request is being served
	armed    bool // it waits on the context: watch it after watchDelay
	watching bool
	skipped  bool // the watch found the body still read: bodyDone starts it
	watchID  uint64
	timer    *time.Timer
}

type afterFn struct {
	id uint64
	f  func()
}

// testHookWatched, when set by a test, is called once a socket is watched.
var testHookWatched func()

// watchDelay is how long a request runs before its connection is watched.
const watchDelay = 100 * time.Millisecond

func (c *peerCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *peerCtx) Value(any) any               { return nil }

func (c *peerCtx) Err() error {
	if c.canceled.Load() || c.ended.Load() {
		return context.Canceled
	}
	return nil
}

func (c *peerCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.canceled.Load() || c.ended.Load() {
			close(c.done)
		}
	}
	c.armLocked()
	return c.done
}

// AfterFunc is what context.AfterFunc uses on this context (no goroutine).
func (c *peerCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.canceled.Load() || c.ended.Load() {
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
	c.active, c.armed, c.skipped = false, false, false
	var fns []afterFn
	if !c.sc.hijacked {
		// As net/http: a request's context ends with its handler, so that
		// nothing waits on it for ever (a hijacked one's lives on with the
		// tunnel; its registrations are dropped).
		c.ended.Store(true)
		if c.done != nil {
			select {
			case <-c.done: // the client's close closed it
			default:
				close(c.done)
			}
		}
		fns = slices.Clone(c.fns)
	}
	clear(c.fns)
	c.fns = c.fns[:0]
	id := uint64(0)
	if c.watching {
		c.watching, id = false, c.watchID
	}
	sc := c.sc
	c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if id != 0 {
		peers.remove(sc.c.raw, id)
	}
	for _, a := range fns {
		a.f()
	}
}

// watch runs on the timer's goroutine: it registers the socket with
// peerWatcher, unless the request ended or still reads its body (a body
// read notices a close itself).
func (c *peerCtx) watch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed || c.watching || c.canceled.Load() {
		return
	}
	if c.x.body.active && !c.x.body.eof.Load() {
		c.skipped = true // a close shows in the body read; watch once it ends
		return
	}
	if id, ok := peers.add(c.sc.c.raw, c); ok {
		c.watching, c.watchID = true, id
		if testHookWatched != nil {
			testHookWatched()
		}
	}
}

// bodyDone is called when the request body was read to its end: a watch
// put off for it starts now.
func (c *peerCtx) bodyDone() {
	c.mu.Lock()
	if c.skipped && c.active && c.armed {
		c.skipped = false
		c.timer.Reset(0)
	}
	c.mu.Unlock()
}

// peerGone is peerWatcher's report for registration id: the check and the
// cancellation are one critical section, so that a report that comes as its
// request ends can never cancel the exchange's next request.
func (c *peerCtx) peerGone(id uint64) {
	c.mu.Lock()
	if !c.watching || c.watchID != id || c.canceled.Swap(true) {
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
