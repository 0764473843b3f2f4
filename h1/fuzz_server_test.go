package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The rule of the server side: mxedge's request parser accepts nothing that
// net/http's server refuses, and frames every request it accepts as net/http
// does. FuzzServerRequests serves each input (one or more pipelined
// requests, possibly malformed) to an h1.Server and to a net/http server
// over a loopback connection each, half-closes the connection and reads
// until the server closes it. Both handlers record every request they get
// (method, request-URI, URL parts, proto, Host, header, length, transfer
// coding, body) and answer 200. The requests h1 handed on must be a prefix
// of those net/http handed on, record for record: h1 may refuse more, and
// stop earlier, never accept more or frame differently. A body read that
// failed is compared only as failed: h1 may fail where net/http reads (and
// must then hand nothing more), not read where net/http fails. h1 may hand
// on no more requests than the input holds heads, and its connection
// goroutine must end with the connection.
func FuzzServerRequests(f *testing.F) {
	for _, s := range serverSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkServerRequests(t, expandRuns(in))
	})
}

// An input may hold runs: the bytes 0, 0, hi, lo stand for hi<<8|lo more
// copies of the byte before them. Long lines (a head that outgrows the
// read buffer, the 4 KiB trailer and chunk-line limits) stay short inputs,
// which the fuzzer mutates, and minimizes, as fast as any other. A run
// expands to at most maxExpanded bytes in all.
const maxExpanded = 64 << 10

func expandRuns(in []byte) []byte {
	i := bytes.Index(in, []byte{0, 0})
	if i < 0 {
		return in
	}
	out := make([]byte, 0, len(in))
	for i >= 0 && i+4 <= len(in) {
		out = append(out, in[:i]...)
		prev := byte('a')
		if len(out) > 0 {
			prev = out[len(out)-1]
		}
		n := min(int(in[i+2])<<8|int(in[i+3]), max(maxExpanded-len(out), 0))
		out = append(out, bytes.Repeat([]byte{prev}, n)...)
		in = in[i+4:]
		i = bytes.Index(in, []byte{0, 0})
	}
	return append(out, in...)
}

// run is n copies of c, as a run in a seed.
func run(c byte, n int) string {
	return string([]byte{c, 0, 0, byte((n - 1) >> 8), byte(n - 1)})
}

const (
	seedGet     = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	seedPost    = "POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
	seedChunked = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)

var serverSeeds = []string{
	// Valid, one and pipelined.
	seedGet,
	seedPost,
	seedChunked,
	seedGet + seedGet,
	seedPost + seedGet,
	seedChunked + seedPost,
	seedGet + "GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + seedGet,
	"HEAD /h HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi" + seedGet,
	"DELETE /d HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" + seedGet,
	"PUT /x?y HTTP/1.1\r\nHost: a:8448\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"n\":1}",
	"GET /a/../b//c?x=1&y=%20#f HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	"GET /a%2Fb%20c HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //x/y HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /_matrix/client/v3/rooms/!r:hs/send/m.room.message/1?a=!b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a'(b)*[c]|{d}^`\\\"<> HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT /p HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
	// Line ends.
	"\r\n" + seedGet,
	seedPost + "\r\n" + seedGet,
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
	// Folding, names.
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
	"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\nx-LOWER-case: v\r\n\r\nhi",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 2\r\n\r\nhi",
	"GET / HTTP/1.1\r\nHost: a\r\nX\t: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\nX-Y: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\nx: 3\r\n\r\n",
	// Connection: net/http closes on "close" between spaces too (found by
	// the fuzzer: h1 went on to the second request).
	"0 * HTTP/1.1\r\nHost:0\r\nConneCtion:0 Close\r\n\r\n0 * HTTP/1.0\r\n0000:0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\tclose\r\n\r\n" + seedGet,
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: x, close\r\n\r\n" + seedGet,
	"GET / HTTP/1.1\r\nHost: a\r\nX:  \t v \t \r\nY:\r\nZ: \r\n\r\n",
	// Framing.
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 002\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1;q=\"x\"\r\nhello\r\n0;last\r\n\r\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X-T\r\nContent-Length: 1\r\n\r\na",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + run('t', 5000) + "\r\n\r\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + run('t', 4096-7) + "\r\n\r\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + run('t', 4096-6) + "\r\n\r\n" + seedGet,
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nab",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000002\r\nab\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + run('e', 4092) + "\r\na\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabxx0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTrailer: x, content-length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTrailer:\r\nTrailer: X-A, X-B\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n\r\n" + seedGet,
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
	// Versions.
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / http/1.1\r\nHost: a\r\n\r\n",
	"GET /\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	// Targets.
	"GET http://a/b HTTP/1.1\r\nHost: c\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\xc3\xa9?\xff HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
	// Values.
	"GET / HTTP/1.1\r\nHost: a\r\nX: \xe2\x82\xac \x80\xff\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: No-Cache\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + run('v', 9000) + "\r\n\r\n" + seedGet,
	// Host.
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
	// Expect.
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi" + seedGet,
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi",
	// Empty, truncated.
	"",
	"GET / HTTP/1.1\r\nHost: a\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\r",
}

// reqRecord is what a handler saw of one request.
type reqRecord struct {
	Method, RequestURI, Proto, Host string
	Path, RawPath, RawQuery         string
	ForceQuery                      bool
	Header                          string // sorted "Key: [values]" lines
	ContentLength                   int64
	TransferEncoding                string
	Body                            string
	BodyErr                         bool
}

// head is the record without its body.
func (r reqRecord) head() reqRecord {
	r.Body, r.BodyErr = "", false
	return r
}

func (r reqRecord) String() string {
	return fmt.Sprintf("%s %q %s Host=%q URL{Path:%q RawPath:%q RawQuery:%q ForceQuery:%v}\n%sContentLength=%d TransferEncoding=%s Body=%q BodyErr=%v",
		r.Method, r.RequestURI, r.Proto, r.Host, r.Path, r.RawPath, r.RawQuery, r.ForceQuery,
		r.Header, r.ContentLength, r.TransferEncoding, r.Body, r.BodyErr)
}

func headerString(h http.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		fmt.Fprintf(&b, "  %s: %q\n", k, h[k])
	}
	return b.String()
}

// recorder is the handler of both servers: it records requests per client
// connection (by remote address) and answers 200 with a small body.
type recorder struct {
	mu     sync.Mutex
	byConn map[string][]reqRecord
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	rec := reqRecord{
		Method: r.Method, RequestURI: r.RequestURI, Proto: r.Proto, Host: r.Host,
		Header:           headerString(r.Header),
		ContentLength:    r.ContentLength,
		TransferEncoding: fmt.Sprintf("%q", r.TransferEncoding),
		Body:             string(body),
		BodyErr:          err != nil,
	}
	if u := r.URL; u != nil {
		rec.Path, rec.RawPath, rec.RawQuery, rec.ForceQuery = u.Path, u.RawPath, u.RawQuery, u.ForceQuery
	}
	rc.mu.Lock()
	if l, ok := rc.byConn[r.RemoteAddr]; ok {
		rc.byConn[r.RemoteAddr] = append(l, rec)
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "ok\n")
}

func (rc *recorder) start(key string) {
	rc.mu.Lock()
	rc.byConn[key] = []reqRecord{}
	rc.mu.Unlock()
}

func (rc *recorder) take(key string) []reqRecord {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l := rc.byConn[key]
	delete(rc.byConn, key)
	return l
}

// fuzzServers are the two servers, started once per process and shared by
// all inputs (each input has its own connections).
var fuzzServers struct {
	once          sync.Once
	err           error
	h1            *Server
	h1Addr, hAddr string
	h1Rec, hRec   *recorder
}

func startFuzzServers() error {
	s := &fuzzServers
	s.once.Do(func() {
		quiet := log.New(io.Discard, "", 0)
		s.h1Rec = &recorder{byConn: map[string][]reqRecord{}}
		s.hRec = &recorder{byConn: map[string][]reqRecord{}}
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.err = err
			return
		}
		l2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			l1.Close()
			s.err = err
			return
		}
		s.h1 = &Server{Handler: s.h1Rec, ErrorLog: quiet, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
		hs := &http.Server{Handler: s.hRec, ErrorLog: quiet, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second,
			// OPTIONS * goes to the handler, as with h1.
			DisableGeneralOptionsHandler: true}
		s.h1Addr, s.hAddr = l1.Addr().String(), l2.Addr().String()
		go s.h1.Serve(l1)
		go hs.Serve(l2)
	})
	return s.err
}

// Deadlines: an input normally completes in well under a millisecond; one
// that hits the short deadline (a slow machine) is served again with the
// long one before it counts as a server that does not finish.
const (
	serveWait = 200 * time.Millisecond
	slowWait  = 5 * time.Second
)

// serveRaw writes in on a new connection to addr, half-closes it, reads
// until the server closes it, and returns what rec recorded for it.
func serveRaw(addr string, rec *recorder, in []byte, wait time.Duration) (recs []reqRecord, local string, timedOut bool, err error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return nil, "", false, err
	}
	defer c.Close()
	local = c.LocalAddr().String()
	rec.start(local)
	c.SetDeadline(time.Now().Add(wait))
	read := make(chan error, 1)
	go func() {
		// Read while writing: many pipelined answers must not fill the
		// socket buffers while the input is still being written.
		_, err := io.Copy(io.Discard, c)
		read <- err
	}()
	if len(in) > 0 {
		c.Write(in) // the server may close early: its error is not ours
	}
	c.(*net.TCPConn).CloseWrite()
	rerr := <-read
	timedOut = errors.Is(rerr, os.ErrDeadlineExceeded)
	return rec.take(local), local, timedOut, nil
}

// h1ConnGone waits until s no longer tracks the connection from remote (its
// goroutine has ended).
func h1ConnGone(s *Server, remote string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		found := false
		for sc := range s.conns {
			if sc.remote == remote {
				found = true
				break
			}
		}
		s.mu.Unlock()
		if !found {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// serveBoth serves in to both servers at once.
func serveBoth(t *testing.T, in []byte, wait time.Duration) (h1Recs, hRecs []reqRecord, h1Local string, timedOut bool) {
	s := &fuzzServers
	type out struct {
		recs     []reqRecord
		timedOut bool
		err      error
	}
	ch := make(chan out, 1)
	go func() {
		r, _, to, err := serveRaw(s.hAddr, s.hRec, in, wait)
		ch <- out{r, to, err}
	}()
	h1Recs, h1Local, to1, err := serveRaw(s.h1Addr, s.h1Rec, in, wait)
	o := <-ch
	if err != nil {
		t.Fatalf("h1 server: %v", err)
	}
	if o.err != nil {
		t.Fatalf("net/http server: %v", o.err)
	}
	return h1Recs, o.recs, h1Local, to1 || o.timedOut
}

// countHeads bounds the number of requests in b: each head ends with its
// own CRLF CRLF, and heads do not overlap.
func countHeads(b []byte) int { return bytes.Count(b, []byte("\r\n\r\n")) }

func checkServerRequests(t *testing.T, in []byte) {
	if err := startFuzzServers(); err != nil {
		t.Fatalf("starting servers: %v", err)
	}
	h1Recs, hRecs, h1Local, timedOut := serveBoth(t, in, serveWait)
	if timedOut {
		h1Recs, hRecs, h1Local, timedOut = serveBoth(t, in, slowWait)
		if timedOut {
			t.Fatalf("%q: a server did not close the half-closed connection within %v", in, slowWait)
		}
	}
	if !h1ConnGone(fuzzServers.h1, h1Local, slowWait) {
		t.Fatalf("%q: h1's connection goroutine still runs after the connection closed", in)
	}
	if n := countHeads(in); len(h1Recs) > n {
		t.Fatalf("%q: h1 handed on %d requests, the input holds at most %d", in, len(h1Recs), n)
	}
	for i, a := range h1Recs {
		if i >= len(hRecs) {
			t.Fatalf("%q: h1 handed on request %d, net/http did not (it handed on %d):\nh1:       %v", in, i, len(hRecs), a)
		}
		b := hRecs[i]
		if a.head() != b.head() {
			t.Fatalf("%q: request %d framed differently:\nh1:       %v\nnet/http: %v", in, i, a, b)
		}
		switch {
		case !a.BodyErr && b.BodyErr:
			t.Fatalf("%q: request %d: h1 read a body net/http refuses:\nh1:       %v\nnet/http: %v", in, i, a, b)
		case a.BodyErr && i != len(h1Recs)-1:
			t.Fatalf("%q: request %d: h1 went on after a failed body read:\nh1:       %v\nnet/http: %v", in, i, a, b)
		case !a.BodyErr && a.Body != b.Body:
			t.Fatalf("%q: request %d: body differs:\nh1:       %v\nnet/http: %v", in, i, a, b)
		}
	}
}

func TestExpandRuns(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"abc", "abc"},
		{"x" + run('t', 5) + "y", "xttttty"},
		{run('t', 1), "t"},
		{"\x00\x00\x00\x02z", "aaz"},
		{"a\x00\x00\x00", "a\x00\x00\x00"},
		{"a\x00b", "a\x00b"},
		{"X: " + run('v', 300) + "\r\n", "X: " + strings.Repeat("v", 300) + "\r\n"},
	} {
		if got := string(expandRuns([]byte(tt.in))); got != tt.want {
			t.Errorf("expandRuns(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if n := len(expandRuns(bytes.Repeat([]byte("a\x00\x00\xff\xff"), 8))); n > maxExpanded+8 {
		t.Errorf("expanded to %d bytes", n)
	}
}
