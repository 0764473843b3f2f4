package h1

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of a serverConn's request. The head
// is written lazily: body bytes written before a Flush are kept back in a
// pooled buffer, behind room for the head, so that an answer that fits goes
// out with its head in one write and gets a Content-Length; once the head is
// out, writes go straight to the connection (as chunks when the length is
// not known).
type response struct {
	sc         *serverConn
	req        *http.Request
	header     http.Header
	minor      int
	status     int
	wrote      bool // final status set
	committed  bool // head written
	headReq    bool
	noBody     bool  // HEAD, 204, 304: nothing after the head
	cl         int64 // Content-Length declared by the handler, -1: none
	written    int64
	chunked    bool
	closeAfter bool
	bufp       *[]byte // pooled (copyBufs); kept-back body at buf[headRoom:headRoom+n]
	buf        []byte
	n          int
	iov        [4][]byte
	bufs       net.Buffers
	err        error
	num        [20]byte
}

const (
	// writeBufSize is the part of an answer kept back to go out with its head.
	writeBufSize = 4 << 10
	// headRoom is the room for the head in front of the kept-back body.
	headRoom = 2 << 10
)

func (w *response) reset(r *http.Request, h *reqHead) {
	clear(w.header)
	*w = response{sc: w.sc, req: r, header: w.header, minor: h.minor, cl: -1,
		closeAfter: h.close, headReq: r.Method == http.MethodHead}
}

func (w *response) release() {
	if w.bufp != nil {
		copyBufs.Put(w.bufp)
		w.bufp, w.buf, w.n = nil, nil, 0
	}
}

func (w *response) take() []byte {
	if w.bufp == nil {
		w.bufp = copyBufs.Get().(*[]byte)
		w.buf = *w.bufp
	}
	return w.buf
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wrote || w.sc.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 {
		if code != http.StatusSwitchingProtocols { // 101 only through Hijack
			w.interim(code)
		}
		return
	}
	w.wrote, w.status = true, code
	w.noBody = w.headReq || code == http.StatusNoContent || code == http.StatusNotModified
	if v := w.header["Content-Length"]; len(v) == 1 {
		if n, ok := parseDecimal([]byte(v[0])); ok {
			w.cl = n
		}
	}
}

// interim writes a 1xx head at once, with the fields set so far.
func (w *response) interim(code int) {
	if w.committed || w.err != nil {
		return
	}
	b := w.take()[headRoom:headRoom]
	b = appendStatusLine(b, w.minor, code)
	b = appendFields(b, w.header)
	b = append(b, "\r\n"...)
	w.writeParts(b)
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.sc.hijacked {
		return 0, http.ErrHijacked
	}
	if w.noBody {
		if w.headReq {
			w.written += int64(len(p))
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.n+len(p) <= writeBufSize {
			b := w.take()
			w.n += copy(b[headRoom+w.n:], p)
			return len(p), nil
		}
		w.commit(false)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// writeBody writes p after the head: as one chunk when chunked.
func (w *response) writeBody(p []byte) {
	if len(p) == 0 || w.err != nil {
		return
	}
	if !w.chunked {
		w.writeParts(p)
		return
	}
	size := strconv.AppendInt(w.num[:0], int64(len(p)), 16)
	size = append(size, '\r', '\n')
	w.writeParts(size, p, crlf)
}

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte("0\r\n\r\n")
)

// writeParts writes parts in one system call: writev on a socket; over TLS
// one buffer (one record) when they fit the pooled one. It is not used
// while body bytes are kept back.
func (w *response) writeParts(parts ...[]byte) {
	if w.err != nil {
		return
	}
	nc := w.sc.c.nc
	if w.sc.c.tls == nil {
		if len(parts) == 1 {
			_, w.err = nc.Write(parts[0])
			return
		}
		w.bufs = append(w.iov[:0], parts...)
		_, w.err = w.bufs.WriteTo(nc)
		w.bufs = nil
		clear(w.iov[:])
		return
	}
	if len(parts) == 1 {
		_, w.err = nc.Write(parts[0])
		return
	}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	if total > copyBufSize {
		w.writeEach(parts...)
		return
	}
	b := w.take()[:0]
	for _, p := range parts {
		b = append(b, p...)
	}
	_, w.err = nc.Write(b)
}

// commit writes the head and the body bytes kept back; final says the
// handler has returned, so that a kept-back body gets its Content-Length.
func (w *response) commit(final bool) {
	if w.committed {
		return
	}
	w.committed = true
	sc := w.sc
	switch {
	case w.noBody:
	case w.cl >= 0:
	case final:
		w.cl = int64(w.n)
	case w.minor == 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if b := &sc.x.body; b.active && !b.eof.Load() {
		w.closeAfter = true // the rest of the request cannot be told from a next one
	}
	if sc.s.shutting.Load() {
		w.closeAfter = true
	}
	for tok := range ListTokens(w.header["Connection"]) {
		if EqualFold(tok, "close") {
			w.closeAfter = true
		}
	}
	b := w.take()
	off := headRoom + w.n
	h := b[off:off]
	h = appendStatusLine(h, w.minor, w.status)
	h = appendFields(h, w.header)
	if w.cl >= 0 && w.status != http.StatusNoContent && (!w.noBody || w.header["Content-Length"] != nil) {
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, w.cl, 10)
		h = append(h, "\r\n"...)
	}
	if w.chunked {
		h = append(h, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter {
		h = append(h, "Connection: close\r\n"...)
	}
	if _, ok := w.header["Date"]; !ok {
		h = appendDate(h)
	}
	h = append(h, "\r\n"...)
	if w.chunked && w.n > 0 {
		h = strconv.AppendInt(h, int64(w.n), 16)
		h = append(h, "\r\n"...)
	}
	n := w.n
	w.n = 0
	if n == 0 || w.noBody {
		w.writeParts(h)
		return
	}
	body := b[headRoom : headRoom+n]
	if len(h) > headRoom {
		if sc.c.tls != nil { // writeParts would assemble over the body
			w.writeEach(h, body)
			if w.chunked {
				w.writeEach(crlf)
			}
			return
		}
		if w.chunked {
			w.writeParts(h, body, crlf)
		} else {
			w.writeParts(h, body)
		}
		return
	}
	start := headRoom - copy(b[headRoom-len(h):headRoom], h)
	end := headRoom + n
	if w.chunked {
		end += copy(b[end:], crlf)
	}
	if w.err == nil {
		_, w.err = sc.c.nc.Write(b[start:end])
	}
}

// Flush writes the head and what is kept back.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.sc.hijacked {
		return http.ErrHijacked
	}
	w.commit(false)
	return w.err
}

// finish completes the answer after the handler returned.
func (w *response) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.commit(true)
	if w.chunked {
		w.writeParts(lastChunk)
	}
	if w.cl >= 0 && !w.noBody && w.written != w.cl {
		w.closeAfter = true // short: the client cannot find the end
	}
	if w.err != nil {
		w.closeAfter = true
	}
	w.release()
}

// Hijack takes the connection over (a WebSocket tunnel).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.sc.hijack() }

// SetReadDeadline and SetWriteDeadline, for http.ResponseController and
// mxedge's idle deadlines.
func (w *response) SetReadDeadline(t time.Time) error  { return w.sc.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.sc.c.nc.SetWriteDeadline(t) }

// appendFields writes the handler's fields, except those framing is made
// of (Content-Length, Transfer-Encoding, Connection: mxedge writes its own).
// A name that is not a token is skipped; CR and LF in a value become spaces,
// as net/http does.
func appendFields(b []byte, h http.Header) []byte {
	for k, vs := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if !ValidToken(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			v = TrimOWS(v)
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// statusLines holds "HTTP/1.1 NNN Reason\r\n" for the codes net/http names.
var statusLines = func() (t [600]string) {
	for c := 100; c < 600; c++ {
		if txt := http.StatusText(c); txt != "" {
			t[c] = "HTTP/1.1 " + strconv.Itoa(c) + " " + txt + "\r\n"
		}
	}
	return t
}()

func appendStatusLine(b []byte, minor, code int) []byte {
	if code < 600 && statusLines[code] != "" {
		n := len(b)
		b = append(b, statusLines[code]...)
		if minor == 0 {
			b[n+7] = '0'
		}
		return b
	}
	if minor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, " status code "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "\r\n"...)
}

// dateLine is the Date field of the current second, remade once a second.
type dateLine struct {
	sec  int64
	line []byte
}

var curDate atomic.Pointer[dateLine]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := curDate.Load()
	if d == nil || d.sec != now.Unix() {
		line := now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)
		d = &dateLine{sec: now.Unix(), line: append(line, "\r\n"...)}
		curDate.Store(d)
	}
	return append(b, d.line...)
}

// writeEach writes parts one call each.
func (w *response) writeEach(parts ...[]byte) {
	for _, p := range parts {
		if w.err != nil {
			return
		}
		_, w.err = w.sc.c.nc.Write(p)
	}
}
