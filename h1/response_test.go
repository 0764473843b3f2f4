package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	tests := []struct {
		name, head string
		want       error
		status     int
		cl         int64
		chunked    bool
		close      bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", nil, 200, 2, false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", nil, 200, -1, true, false},
		{"http/1.0 closes", "HTTP/1.0 200 OK\r\n\r\n", nil, 200, -1, false, true},
		{"connection close", "HTTP/1.1 204\r\nConnection: keep-alive, close\r\n\r\n", nil, 204, -1, false, true},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\n", nil, 200, 2, false, false},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", nil, 200, 2, false, false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ErrObsFold, 0, 0, false, false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", ErrMultipleCL, 0, 0, false, false},
		{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n", ErrContentLength, 0, 0, false, false},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", ErrCLAndTE, 0, 0, false, false},
		{"gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrTransferEnc, 0, 0, false, false},
		{"chunked in 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTransferEnc, 0, 0, false, false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n", ErrHeaderLine, 0, 0, false, false},
		{"NUL", "HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", ErrHeaderBytes, 0, 0, false, false},
		{"bare CR", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", ErrHeaderBytes, 0, 0, false, false},
		{"status 4 digits", "HTTP/1.1 2000 OK\r\n\r\n", ErrStatusLine, 0, 0, false, false},
		{"http/2", "HTTP/2.0 200 OK\r\n\r\n", ErrStatusLine, 0, 0, false, false},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n", ErrStatusLine, 0, 0, false, false},
	}
	for _, tt := range tests {
		h, err := parseHead([]byte(tt.head))
		if err != tt.want {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && (h.status != tt.status || h.contentLength != tt.cl || h.chunked != tt.chunked || h.close != tt.close) {
			t.Errorf("%s: %+v", tt.name, h)
		}
	}
}

// FuzzParseHead checks the response-head parser against net/http's: what
// mxedge accepts, net/http accepts too and frames the same way (status,
// chunked or length); no hop-by-hop field or bad byte passes.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 204 No Content\nX: y\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"HTTP/1.1 101 Switching\r\nConnection: upgrade, close\r\n\r\n",
		"HTTP/1.1 200 OK\r\nconnection: X-Foo\r\nx-foo: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		if end < 0 {
			return
		}
		head := append([]byte(nil), b[:end]...)
		orig := string(head)
		hd, err := parseHead(head)
		if err != nil {
			return
		}
		if hd.status < 100 || hd.status > 999 || (hd.chunked && hd.contentLength >= 0) {
			t.Fatalf("accepted %q as %+v", orig, hd)
		}
		h := http.Header{}
		fillHeader(h, head, &hd)
		for k, vs := range h {
			if hopField(k) || k != http.CanonicalHeaderKey(k) {
				t.Fatalf("%q: field %q passed", orig, k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("%q: value %q passed", orig, v)
				}
			}
		}
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(orig)), nil)
		if err != nil {
			t.Fatalf("accepted %q, net/http refuses it: %v", orig, err)
		}
		if res.StatusCode != hd.status {
			t.Fatalf("%q: status %d, net/http %d", orig, hd.status, res.StatusCode)
		}
		if hd.status >= 200 && hd.status != 204 && hd.status != 304 {
			if hd.chunked != (len(res.TransferEncoding) == 1) {
				t.Fatalf("%q: chunked %v, net/http %v", orig, hd.chunked, res.TransferEncoding)
			}
			if hd.contentLength >= 0 && res.ContentLength != hd.contentLength {
				t.Fatalf("%q: length %d, net/http %d", orig, hd.contentLength, res.ContentLength)
			}
		}
	})
}

// decodeChunked runs mxedge's chunked decoder over body (what follows a
// chunked response head).
func decodeChunked(body []byte) (string, error) {
	c := newConn(&memConn{r: bytes.NewReader(body)})
	r := &Response{c: c, mode: modeChunked}
	var s sink
	err := r.WriteBody(&s)
	return s.String(), err
}

// FuzzChunked checks the chunked decoder against net/http's: a body mxedge
// decodes, net/http decodes to the same bytes; a body net/http refuses,
// mxedge refuses.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: a\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\n",
		"2 \r\nok\r\n0\r\n\r\n",
		"2\nok\r\n0\r\n\r\n",
		"2\r\nok\n0\r\n\r\n",
		"1;" + strings.Repeat("x", 300) + "\r\na\r\n0\r\n\r\n",
		"0000000000000002\r\nok\r\n0\r\n\r\n",
		"2\r\nok\r\n0\r\n\n",
	} {
		f.Add([]byte(s))
	}
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeChunked(body)
		res, herr := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(head), bytes.NewReader(body))), nil)
		if herr != nil {
			t.Fatalf("net/http refused the head: %v", herr)
		}
		want, herr := io.ReadAll(res.Body)
		switch {
		case err == nil && herr != nil:
			t.Fatalf("%q: mxedge decoded %q, net/http refuses: %v", body, got, herr)
		case err == nil && got != string(want):
			t.Fatalf("%q: mxedge decoded %q, net/http %q", body, got, want)
		}
	})
}

var benchHead = []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 722\r\n" +
	"Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE, OPTIONS\r\n" +
	"Access-Control-Allow-Headers: X-Requested-With, Content-Type, Authorization, Date\r\n" +
	"Access-Control-Expose-Headers: Synapse-Trace-Id, Server\r\nDate: Fri, 27 Nov 2026 09:00:00 GMT\r\n\r\n")

// BenchmarkParseHead is the strict head check: no allocation.
func BenchmarkParseHead(b *testing.B) {
	buf := make([]byte, len(benchHead))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, benchHead)
		if _, err := parseHead(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFillHeader copies a parsed head into a header map: two
// allocations, one string for the whole head and one slab of values.
func BenchmarkFillHeader(b *testing.B) {
	buf := append([]byte(nil), benchHead...)
	hd, err := parseHead(buf)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		fillHeader(make(http.Header, 8), buf, &hd)
	}
}

func TestParseHeadAllocs(t *testing.T) {
	buf := make([]byte, len(benchHead))
	if n := testing.AllocsPerRun(100, func() {
		copy(buf, benchHead)
		parseHead(buf)
	}); n != 0 {
		t.Errorf("parseHead: %v allocs, want 0", n)
	}
}
