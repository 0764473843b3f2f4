package h1

import (
	"net/http"
	"net/url"
	"testing"
)

var benchRequestHead = []byte("GET /_matrix/client/v3/sync?timeout=30000&since=s72594_4483_1934 HTTP/1.1\r\n" +
	"Host: matrix.example.org\r\nUser-Agent: Element/1.11.100 (Android 14)\r\nAccept: application/json\r\n" +
	"Authorization: Bearer syt_YWxpY2U_rtKqIBrazlsWVHxvtmAj_0Hmpsh\r\nAccept-Encoding: gzip\r\n" +
	"Connection: keep-alive\r\n\r\n")

// BenchmarkParseRequestHead is the server's head parser on a typical client
// request: two allocations (one string for the head, one slice of values).
func BenchmarkParseRequestHead(b *testing.B) {
	var r http.Request
	var u url.URL
	hdr := http.Header{}
	var fields []field
	buf := make([]byte, len(benchRequestHead))
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequestHead)))
	for b.Loop() {
		copy(buf, benchRequestHead)
		clear(hdr)
		r = http.Request{Header: hdr}
		var perr *parseError
		_, fields, perr = parseRequestHead(buf, &r, &u, fields)
		if perr != nil {
			b.Fatal(perr.msg)
		}
	}
}
