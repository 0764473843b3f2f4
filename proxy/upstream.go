package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file is mxedge's own HTTP/1.1 client to the homeserver: a connection
// pool, the request writer and a strict response reader. It replaces
// httputil.ReverseProxy over http.Transport, whose per-request copies and two
// goroutines plus two bufio buffers per upstream connection dominated both the
// CPU profile and the memory of held long-polls.
//
// A connection carries one exchange at a time on the handler's goroutine; no
// other goroutine touches it except the client-cancellation hook, which only
// closes it. While a long-poll waits for the upstream's head the connection
// holds no buffer: the first byte is read into a one-byte array, and the
// pooled 4 KiB read buffer is taken only when the answer starts.

const (
	upDialTimeout = 10 * time.Second
	upKeepAlive   = 30 * time.Second
	upIdleTimeout = 90 * time.Second
	upMaxIdle     = 1024
	// upMaxHead caps a response head (status line, headers, and the trailer
	// section of a chunked body).
	upMaxHead   = 64 << 10
	upReadBuf   = 4 << 10
	upCopyBuf   = 32 << 10
	upPeekAfter = time.Second // idle time after which a pooled connection is checked before reuse
)

// upError is a protocol violation by the upstream: the answer is a 502 and
// the connection is never reused.
type upError string

func (e upError) Error() string { return "upstream: " + string(e) }

const (
	errUpHeadTooLarge   = upError("response head too large")
	errUpStatusLine     = upError("malformed status line")
	errUpHeaderLine     = upError("malformed header line")
	errUpObsFold        = upError("obsolete line folding in response head")
	errUpHeaderBytes    = upError("invalid byte in response header")
	errUpContentLength  = upError("invalid Content-Length")
	errUpMultipleCL     = upError("several differing Content-Length values")
	errUpTransferEnc    = upError("unsupported Transfer-Encoding")
	errUpCLAndTE        = upError("both Content-Length and Transfer-Encoding")
	errUpSwitch         = upError("upstream tried to switch protocols")
	errUpChunked        = upError("malformed chunked encoding")
	errUpBodyTooLong    = upError("request body longer than its Content-Length")
	errUpExtraBytes     = upError("bytes after the response")
	errUpNoHead         = upError("connection closed before the response head")
	errUpLineTooLong    = upError("chunk framing line too long")
	errUpRequestHeadVal = upError("invalid request header value")
)

// Buffers shared by all exchanges: 32 KiB for request heads and body copies
// both ways, 4 KiB for reading response heads and chunk framing.
var (
	copyBufs = sync.Pool{New: func() any { b := make([]byte, upCopyBuf); return &b }}
	readBufs = sync.Pool{New: func() any { b := make([]byte, upReadBuf); return &b }}
)

// upPool is the connection pool to one upstream (tcp host:port, unix socket,
// or TLS over tcp). Idle connections are a LIFO stack capped at maxIdle; the
// number of busy ones is not capped (thousands of long-polls). Idle expiry
// needs no goroutine per connection: Get drops expired ones lazily and one
// timer (armed only while something is idle) sweeps the rest. Safe for
// concurrent use.
type upPool struct {
	network, addr string
	tlsConfig     *tls.Config // nil: plain
	dialer        net.Dialer
	maxIdle       int
	idleTimeout   time.Duration
	now           func() time.Time

	mu       sync.Mutex
	idle     []*upConn // oldest first
	timer    *time.Timer
	sweeping bool
	closed   bool

	dials atomic.Int64 // connections opened, for tests
}

// newUpPool builds the pool for target (http or https), or for the unix
// socket when socket is non-empty.
func newUpPool(target *url.URL, socket string) *upPool {
	p := &upPool{
		dialer:      net.Dialer{Timeout: upDialTimeout, KeepAlive: upKeepAlive},
		maxIdle:     upMaxIdle,
		idleTimeout: upIdleTimeout,
		now:         time.Now,
	}
	if socket != "" {
		p.network, p.addr = "unix", socket
		return p
	}
	port := target.Port()
	if port == "" {
		port = "80"
		if target.Scheme == "https" {
			port = "443"
		}
	}
	p.network, p.addr = "tcp", net.JoinHostPort(target.Hostname(), port)
	if target.Scheme == "https" {
		p.tlsConfig = &tls.Config{ServerName: target.Hostname(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	return p
}

// get returns an idle connection (reused = true) or a new one.
func (p *upPool) get(ctx context.Context) (c *upConn, reused bool, err error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		idleFor := p.now().Sub(c.idleAt)
		if idleFor >= p.idleTimeout {
			// Everything below it is older: expired too.
			for i, o := range p.idle {
				o.close()
				p.idle[i] = nil
			}
			p.idle = p.idle[:0]
			p.mu.Unlock()
			c.close()
			break
		}
		p.mu.Unlock()
		if idleFor >= upPeekAfter && !c.alive() {
			c.close()
			continue
		}
		return c, true, nil
	}
	c, err = p.dial(ctx)
	return c, false, err
}

func (p *upPool) dial(ctx context.Context) (*upConn, error) {
	nc, err := p.dialer.DialContext(ctx, p.network, p.addr)
	if err != nil {
		return nil, err
	}
	p.dials.Add(1)
	c := &upConn{nc: nc}
	if p.tlsConfig != nil {
		tc := tls.Client(nc, p.tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, upDialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, err
		}
		c.nc = tc
	} else if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.abortFn = c.abort
	return c, nil
}

// put returns a connection whose last exchange ended cleanly.
func (p *upPool) put(c *upConn) {
	c.idleAt = p.now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	if !p.sweeping {
		p.sweeping = true
		if p.timer == nil {
			p.timer = time.AfterFunc(p.idleTimeout, p.sweep)
		} else {
			p.timer.Reset(p.idleTimeout)
		}
	}
	p.mu.Unlock()
}

// sweep closes the connections idle longer than idleTimeout and re-arms the
// timer for the oldest remaining one.
func (p *upPool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	now := p.now()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleAt) >= p.idleTimeout {
		p.idle[i].close()
		i++
	}
	if i > 0 {
		n := copy(p.idle, p.idle[i:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
	}
	if len(p.idle) == 0 {
		p.sweeping = false
		return
	}
	p.timer.Reset(max(p.idle[0].idleAt.Add(p.idleTimeout).Sub(now), time.Second))
}

// idleCount reports the idle connections (tests).
func (p *upPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// close closes the idle connections and makes put close the busy ones when
// they finish.
func (p *upPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.close()
	}
	p.idle = nil
	if p.timer != nil {
		p.timer.Stop()
	}
}

// upConn is one upstream connection.
type upConn struct {
	nc      net.Conn
	raw     syscall.RawConn // for the liveness peek; nil for TLS
	idleAt  time.Time
	abortFn func() // c.abort, made once: context.AfterFunc takes it per exchange
	// The read side, while an answer is read: buf is pooled, buf[r:w] unread.
	bufp *[]byte
	buf  []byte
	r, w int
	one  [1]byte
	// Chunked response body state.
	chunkLeft  int64
	chunkState uint8
}

func (c *upConn) abort() { c.nc.Close() }

func (c *upConn) close() {
	c.nc.Close()
	c.releaseBuf()
}

func (c *upConn) takeBuf() {
	if c.bufp == nil {
		c.bufp = readBufs.Get().(*[]byte)
		c.buf = *c.bufp
		c.r, c.w = 0, 0
	}
}

// releaseBuf returns the read buffer to the pool (only a pooled one: a head
// that needed more room got a private, larger buffer).
func (c *upConn) releaseBuf() {
	if c.bufp != nil {
		if len(c.buf) == upReadBuf {
			*c.bufp = c.buf
			readBufs.Put(c.bufp)
		}
		c.bufp, c.buf, c.r, c.w = nil, nil, 0, 0
	}
}

// fill reads more bytes from the connection into buf, compacting or growing
// it (up to limit) when full.
func (c *upConn) fill(limit int) error {
	if c.w == len(c.buf) {
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		} else {
			if len(c.buf) >= limit {
				return errUpHeadTooLarge
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

// ---- the request ----

// skipRequestHeader reports the client headers never sent upstream:
// hop-by-hop headers, the client's forwarding headers (mxedge sets its own),
// framing (set from the body), Expect (net/http's server answers 100 Continue
// when the body is first read) and Host (written first).
func skipRequestHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"Content-Length", "Expect", "Host":
		return true
	}
	return false
}

// namedIn reports whether one of the comma-separated tokens of the
// Connection header values conn is k (case-insensitively).
func namedIn(conn []string, k string) bool {
	for tok := range listTokens(conn) {
		if equalFoldASCII(tok, k) {
			return true
		}
	}
	return false
}

// listTokens yields the trimmed, non-empty elements of comma-separated
// header values (the Connection header's list of names).
func listTokens(vals []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range vals {
			for v != "" {
				var tok string
				if i := indexByteString(v, ','); i >= 0 {
					tok, v = v[:i], v[i+1:]
				} else {
					tok, v = v, ""
				}
				if tok = trimOWS(tok); tok != "" && !yield(tok) {
					return
				}
			}
		}
	}
}

// appendRequestHead appends the request line and headers sent upstream: the
// raw path and query byte-exact, Host preserved, client headers minus the
// hop-by-hop ones (and those named in Connection), mxedge's forwarding
// headers, and the framing of the body (cl: Content-Length, -1 chunked, 0 none).
func appendRequestHead(b []byte, r *http.Request, rq *request, defaultHost string, cl int64) ([]byte, error) {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, rq.rawPath...)
	if rq.query != "" {
		b = append(b, '?')
		b = append(b, rq.query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if r.Host != "" {
		b = append(b, r.Host...)
	} else {
		b = append(b, defaultHost...)
	}
	b = append(b, "\r\n"...)
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if skipRequestHeader(k) || (len(conn) > 0 && namedIn(conn, k)) {
			continue
		}
		for _, v := range vs {
			if !validFieldValue(v) {
				return b, errUpRequestHeadVal
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	for _, k := range [...]string{"X-Forwarded-For: ", "X-Real-Ip: "} {
		b = append(b, k...)
		if rq.client.IsValid() {
			b = rq.client.AppendTo(b)
		} else {
			b = append(b, rq.client.String()...)
		}
		b = append(b, "\r\n"...)
	}
	for _, p := range rq.proto {
		b = append(b, "X-Forwarded-Proto: "...)
		b = append(b, p...)
		b = append(b, "\r\n"...)
	}
	if r.Host != "" {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, r.Host...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Request-Id: "...)
	b = append(b, rq.id...)
	b = append(b, "\r\n"...)
	switch {
	case cl < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case cl > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, cl, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

// reqSender streams a request upstream: the head and the first body bytes in
// one write, then the body as it is read, with Content-Length or chunked.
// A body read error stops it short: the connection is then closed without the
// rest of the body or the last chunk, so the upstream sees an aborted request.
type reqSender struct {
	wb      []byte // the 32 KiB buffer, full length
	body    io.Reader
	chunked bool
	remain  int64 // bytes of a Content-Length body still to send
	eof     bool  // the body has been read to its end
	bodyErr error // why reading the body failed
}

// send writes pending (a prefix of s.wb, or a head too large for it) and the
// rest of the body to c. When nothing at all could be written (wrote false)
// the exchange may be retried elsewhere with rest.
func (s *reqSender) send(c *upConn, pending []byte) (rest []byte, wrote bool, err error) {
	const room = 512 // least free space worth a body read behind pending
	for {
		if s.body != nil && !s.eof && len(pending)+room <= len(s.wb) {
			off := len(pending)
			pre := 0
			if s.chunked {
				pre = 6 // "xxxx\r\n": a chunk is under 64 KiB
			}
			space := s.wb[off+pre : len(s.wb)-7] // room for "\r\n0\r\n\r\n"
			n, rerr := s.body.Read(space)
			if n > 0 {
				if s.chunked {
					pending = s.appendChunk(pending, off, pre, n)
				} else {
					if int64(n) > s.remain {
						return pending, wrote, errUpBodyTooLong
					}
					s.remain -= int64(n)
					pending = s.wb[:off+n]
				}
			}
			switch {
			case rerr == io.EOF:
				s.eof = true
				if s.chunked {
					pending = append(pending, "0\r\n\r\n"...)
				} else if s.remain > 0 {
					s.bodyErr = io.ErrUnexpectedEOF
					return pending, wrote, s.bodyErr
				}
			case rerr != nil:
				s.bodyErr = rerr
				return pending, wrote, rerr
			}
		}
		if len(pending) > 0 {
			n, werr := c.nc.Write(pending)
			if n > 0 {
				wrote = true
			}
			if werr != nil {
				return pending[n:], wrote, werr
			}
			pending = s.wb[:0]
		}
		if s.body == nil || s.eof {
			return nil, wrote, nil
		}
	}
}

// appendChunk frames the n body bytes read at wb[off+pre:] as one chunk.
func (s *reqSender) appendChunk(pending []byte, off, pre, n int) []byte {
	var hex [8]byte
	h := strconv.AppendInt(hex[:0], int64(n), 16)
	start := off + len(h) + 2
	if start != off+pre {
		copy(s.wb[start:], s.wb[off+pre:off+pre+n])
	}
	copy(s.wb[off:], h)
	s.wb[off+len(h)], s.wb[off+len(h)+1] = '\r', '\n'
	end := start + n
	s.wb[end], s.wb[end+1] = '\r', '\n'
	return s.wb[:end+2]
}

// ---- the response head ----

// upHead is what the forwarder needs of a parsed response head.
type upHead struct {
	status        int
	minor         int   // HTTP/1.minor
	contentLength int64 // -1: not given
	chunked       bool
	close         bool // Connection: close, or HTTP/1.0
	connTokens    bool // Connection names other headers
	headers       int  // header lines
}

// headEnd returns the length of the head at the start of b (through the empty
// line ending it), or -1 when b does not hold a whole head yet. Lines end in
// CRLF or, as net/http accepts, a bare LF.
func headEnd(b []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i >= len(b):
			return -1
		case b[i] == '\n':
			return i + 1
		case b[i] == '\r':
			if i+1 >= len(b) {
				return -1
			}
			if b[i+1] == '\n' {
				return i + 2
			}
		}
	}
}

// nextLine splits the line at the start of b from the rest; the terminator
// (CRLF or LF) is not part of line. A CR elsewhere is left in line (and
// refused by the callers' byte checks).
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseResponseHead checks a response head strictly and canonicalises its
// header keys in place (as net/http presents them). Refused, whatever net/http
// would do: obsolete line folding, a header name that is not a token or is
// followed by white space, control bytes (other than HTAB) in values, a CR not
// followed by LF, several differing Content-Length values, a Content-Length
// that is not all digits, any Transfer-Encoding other than a single
// "chunked", Content-Length together with Transfer-Encoding, a status outside
// 100-999, a protocol other than HTTP/1.0 or HTTP/1.1. Accepted like
// net/http: bare LF line ends, repeated identical Content-Length values, an
// empty reason phrase, obs-text (bytes ≥ 0x80) in values.
func parseResponseHead(b []byte) (upHead, error) {
	h := upHead{contentLength: -1}
	line, rest := nextLine(b)
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return h, errUpStatusLine
	}
	h.minor = int(line[7] - '0')
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return h, errUpStatusLine
		}
		h.status = h.status*10 + int(d-'0')
	}
	if h.status < 100 || (len(line) > 12 && line[12] != ' ') || !validValueBytes(line[12:]) {
		return h, errUpStatusLine
	}
	h.close = h.minor == 0
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, errUpObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return h, errUpHeaderLine
		}
		key, val := line[:colon], trimOWSBytes(line[colon+1:])
		if !validKeyBytes(key) {
			return h, errUpHeaderLine
		}
		if !validValueBytes(val) {
			return h, errUpHeaderBytes
		}
		canonicalKeyInPlace(key)
		h.headers++
		switch string(key) {
		case "Content-Length":
			n, ok := parseDecimal(val)
			if !ok {
				return h, errUpContentLength
			}
			if h.contentLength >= 0 && h.contentLength != n {
				return h, errUpMultipleCL
			}
			h.contentLength = n
		case "Transfer-Encoding":
			if h.chunked || !equalFoldASCII(string(val), "chunked") {
				return h, errUpTransferEnc
			}
			h.chunked = true
		case "Connection":
			for v := val; len(v) > 0; {
				var tok []byte
				if i := bytes.IndexByte(v, ','); i >= 0 {
					tok, v = v[:i], v[i+1:]
				} else {
					tok, v = v, nil
				}
				tok = trimOWSBytes(tok)
				switch {
				case len(tok) == 0:
				case equalFoldASCII(string(tok), "close"):
					h.close = true
				case equalFoldASCII(string(tok), "keep-alive"):
				default:
					h.connTokens = true
				}
			}
		}
	}
	if h.chunked && h.contentLength >= 0 {
		return h, errUpCLAndTE
	}
	if h.chunked && h.minor == 0 {
		return h, errUpTransferEnc
	}
	return h, nil
}

// hopResponseHeader reports the response headers never passed to the client.
func hopResponseHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings":
		return true
	}
	return false
}

// fillHeader copies a parsed, canonicalised head into dst, minus hop-by-hop
// headers and those named in Connection. All values are substrings of one
// string made from the head; keys are interned where common.
func fillHeader(dst http.Header, head []byte, h *upHead) {
	s := string(head)
	_, rest := nextLineString(s) // status line
	slab := make([]string, h.headers)
	var conn []string
	for i := 0; ; i++ {
		var line string
		line, rest = nextLineString(rest)
		if line == "" {
			break
		}
		colon := indexByteString(line, ':')
		k, v := line[:colon], trimOWS(line[colon+1:])
		if ik, ok := internedKeys[k]; ok {
			k = ik
		}
		if hopResponseHeader(k) {
			if k == "Connection" {
				conn = append(conn, v)
			}
			continue
		}
		if old, ok := dst[k]; ok {
			if k == "Content-Length" {
				continue // repeated identical values (others were refused): send one
			}
			dst[k] = append(old, v)
			continue
		}
		slab[i] = v
		dst[k] = slab[i : i+1 : i+1]
	}
	if h.connTokens {
		for tok := range listTokens(conn) {
			delete(dst, http.CanonicalHeaderKey(tok))
		}
	}
}

func nextLineString(s string) (line, rest string) {
	i := indexByteString(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// internedKeys are the canonical forms of common response header names, so
// that they are shared rather than cut from each head.
var internedKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Allow", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Range", "Content-Security-Policy",
		"Content-Type", "Cross-Origin-Resource-Policy", "Date", "Etag", "Expires", "Keep-Alive",
		"Last-Modified", "Location", "Pragma", "Referrer-Policy", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Synapse-Trace-Id", "Trailer", "Transfer-Encoding", "Vary",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id", "X-Robots-Tag",
		"X-Xss-Protection",
	} {
		m[k] = k
	}
	return m
}()

// ---- the response body ----

// Chunked body parsing states.
const (
	chunkSize    uint8 = iota // expecting a chunk-size line
	chunkDataEnd              // expecting the CRLF after chunk data
	chunkTrailer              // in the trailer section
	chunkDone                 // the last chunk and trailers are read
)

// bodyReader reads one response body from c: by Content-Length, chunked
// (decoded), or until the connection closes.
type bodyReader struct {
	c       *upConn
	mode    uint8
	remain  int64 // modeLength
	trailer int   // bytes of trailer section seen
}

const (
	modeNone uint8 = iota
	modeLength
	modeChunked
	modeClose
)

// read fills p with body bytes. It returns io.EOF with the last bytes or
// after them. drained says the upstream had nothing more to give at once
// (the place to flush a streaming answer).
func (br *bodyReader) read(p []byte) (n int, drained bool, err error) {
	c := br.c
	switch br.mode {
	case modeNone:
		return 0, false, io.EOF
	case modeLength:
		if br.remain == 0 {
			return 0, false, io.EOF
		}
		if int64(len(p)) > br.remain {
			p = p[:br.remain]
		}
		n, drained, err = c.readRaw(p)
		br.remain -= int64(n)
		if br.remain == 0 {
			return n, false, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, drained, err
	case modeClose:
		n, drained, err = c.readRaw(p)
		return n, drained, err
	}
	// Chunked.
	if c.chunkLeft == 0 {
		if err := c.chunkFraming(true, &br.trailer); err != nil {
			return 0, false, err
		}
		if c.chunkState == chunkDone {
			return 0, false, io.EOF
		}
	}
	if int64(len(p)) > c.chunkLeft {
		p = p[:c.chunkLeft]
	}
	n, drained, err = c.readRaw(p)
	c.chunkLeft -= int64(n)
	if err == io.EOF {
		return n, false, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, false, err
	}
	if c.chunkLeft == 0 {
		// The end is often in the same packet: see it now, without waiting,
		// so that a complete answer is not flushed before its end.
		if err := c.chunkFraming(false, &br.trailer); err != nil {
			return n, false, err
		}
		if c.chunkState == chunkDone {
			return n, false, io.EOF
		}
		// Nothing more buffered: the next read may wait on the upstream.
		drained = c.r == c.w
	}
	return n, drained, nil
}

// readRaw reads body bytes: buffered ones first, else straight from the
// connection into p.
func (c *upConn) readRaw(p []byte) (n int, drained bool, err error) {
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

// chunkFraming consumes chunk framing (CRLF after data, size lines, trailers)
// until a chunk with data starts or the body ends. With block false it stops,
// without error, when the framing is not buffered yet.
func (c *upConn) chunkFraming(block bool, trailer *int) error {
	for c.chunkLeft == 0 && c.chunkState != chunkDone {
		line, ok, err := c.bufLine(block)
		if err != nil || !ok {
			return err
		}
		switch c.chunkState {
		case chunkDataEnd:
			if len(line) != 2 || line[0] != '\r' {
				return errUpChunked
			}
			c.chunkState = chunkSize
		case chunkSize:
			line = trimCRLF(line)
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				line = line[:i] // chunk extensions are ignored
			}
			line = trimOWSBytes(line)
			if len(line) == 0 || len(line) > 15 {
				return errUpChunked
			}
			var n int64
			for _, d := range line {
				v, ok := unhex(d)
				if !ok {
					return errUpChunked
				}
				n = n<<4 | int64(v)
			}
			if n == 0 {
				c.chunkState = chunkTrailer
			} else {
				c.chunkLeft, c.chunkState = n, chunkDataEnd
			}
		case chunkTrailer:
			*trailer += len(line)
			if *trailer > upMaxHead {
				return errUpHeadTooLarge
			}
			l := trimCRLF(line)
			if len(l) == 0 {
				c.chunkState = chunkDone
				break
			}
			// Trailers are checked like headers, then dropped.
			colon := bytes.IndexByte(l, ':')
			if colon <= 0 || !validKeyBytes(l[:colon]) || !validValueBytes(trimOWSBytes(l[colon+1:])) {
				return errUpChunked
			}
		}
	}
	return nil
}

// bufLine returns the next line in the buffer, terminator included, reading
// more when block is set.
func (c *upConn) bufLine(block bool) ([]byte, bool, error) {
	for {
		if i := bytes.IndexByte(c.buf[c.r:c.w], '\n'); i >= 0 {
			line := c.buf[c.r : c.r+i+1]
			c.r += i + 1
			return line, true, nil
		}
		if !block {
			return nil, false, nil
		}
		if c.w-c.r >= upReadBuf {
			return nil, false, errUpLineTooLong
		}
		if err := c.fill(upReadBuf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
	}
}

// ---- small byte helpers ----

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// tchar per RFC 9110.
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func validKeyBytes(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTokenByte(c) {
			return false
		}
	}
	return true
}

// validValueBytes refuses control bytes other than HTAB (CR, LF, NUL, DEL…).
func validValueBytes(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// canonicalKeyInPlace gives a token its net/http canonical form (first letter
// and letters after '-' upper case, the others lower case).
func canonicalKeyInPlace(b []byte) {
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
}

func trimOWSBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
