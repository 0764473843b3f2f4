// Package h1 is mxedge's HTTP/1.1: the server side for clients (Server:
// server.go, serverconn.go, reqhead.go, respwriter.go, peerwatch_*.go; it
// parses requests more strictly than net/http's server, hands HTTP/2 to Go's
// own server by ALPN, and holds neither buffer nor request state between
// requests) and the client to its upstreams: a connection pool
// per upstream address, a request writer that takes an explicit request head,
// a strict response-head parser, a chunked decoder, and the exchange that ties
// them together (RoundTrip). It replaces httputil.ReverseProxy over
// http.Transport, whose per-request copies and two goroutines plus two bufio
// buffers per upstream connection dominated the CPU profile and the memory of
// held long-polls.
//
// What http.Transport does and this package does again (each one tested, the
// parsers fuzzed against net/http's):
//
//   - A pooled connection is checked before every reuse: bytes that arrived
//     after the last response ended (a HEAD or 204 answered with a body, a
//     short Content-Length, an unsolicited response) or a close by the
//     upstream make it unusable. On TLS connections the record layer is
//     tracked so that bytes buffered inside crypto/tls count too.
//   - Idle connections expire before common upstream keep-alive limits do, and
//     a request that failed on a reused connection before any byte of the
//     answer came back is sent again on a fresh one when repeating it is safe.
//   - Interim (1xx) responses are capped in number and bytes.
//   - A response head is refused, and its connection dropped, for anything
//     net/http would refuse, and more: obs-fold, differing Content-Lengths,
//     Content-Length with Transfer-Encoding, codings other than one chunked,
//     control bytes, a 101 nobody asked for.
//   - Hop-by-hop fields and those named in Connection never cross, in linear
//     time whatever the number of names; header names with '_' are dropped by
//     default and never alias a field the caller sets or strips.
//
// A connection carries one exchange at a time on the caller's goroutine; no
// other goroutine touches it except a context-cancellation hook, which only
// closes it. While a long-poll waits for its answer the connection holds no
// buffer: the first byte is read into a one-byte array, and a pooled read
// buffer is taken only when the answer starts.
package h1
