package h1

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request is one request as RoundTrip sends it: an explicit head and a body.
// The caller validates Method (a token), Path and Query (visible ASCII) and
// Host before; RoundTrip refuses a field value with a control byte.
type Request struct {
	// Method is the request method, a token.
	Method string
	// Path is the raw path, byte-exact as the client sent it.
	Path string
	// Query is the raw query without '?'; "" for none.
	Query string
	// Host is sent as the first field.
	Host string
	// Header holds the client's fields. Not sent: hop-by-hop fields and those
	// named in Connection, framing (Content-Length, Transfer-Encoding, set
	// from the body), Expect, Host, names with '_' unless AllowUnderscore,
	// and those Strip reports.
	Header http.Header
	// Strip reports more fields (canonical names) the client may not send:
	// those the caller sets itself. Nil: none.
	Strip func(canonicalKey string) bool
	// Fields appends the caller's own fields ("Name: value\r\n" each) after
	// the client's. Nil: none.
	Fields FieldAppender
	// AllowUnderscore sends field names containing '_' (nginx's
	// underscores_in_headers). Even then a name that reads as a field that is
	// stripped or set once '_' is taken for '-' (X_Forwarded_For,
	// Transfer_Encoding) is dropped.
	AllowUnderscore bool
	// Body is the request body; nil for none.
	Body io.Reader
	// ContentLength is the body's length, or -1 when unknown (sent chunked).
	// Ignored without Body.
	ContentLength int64
	// HeaderTimeout bounds the wait for the response head; 0: none.
	HeaderTimeout time.Duration
	// LongPoll holds no buffer while waiting for the answer (held requests
	// cost no memory beyond the connection).
	LongPoll bool
	// Upgrade, when set (a token such as "websocket"), asks the upstream to
	// switch protocols: the request carries Connection: Upgrade and Upgrade,
	// and a 101 answer naming the same protocol is returned (see
	// Response.Upgraded). Empty: a 101 is a protocol error.
	Upgrade string
}

// FieldAppender appends header fields, each "Name: value\r\n".
type FieldAppender interface {
	AppendFields(b []byte) []byte
}

// skipField reports the client fields never sent whatever the caller says:
// hop-by-hop fields (RFC 9110 §7.6.1 and the usual non-standard ones),
// framing (set from the body), Expect (the server side answers 100 Continue
// itself) and Host (written first).
func skipField(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings",
		"Content-Length", "Expect", "Host":
		return true
	}
	return false
}

// connNames is the set of field names a Connection header lists, built once
// per request so that filtering is linear in fields plus names. A short list
// is scanned; a long one marks the request's fields it names in a map keyed
// by those fields, with no allocation per name.
type connNames struct {
	small  [8]string
	n      int
	big    map[string]bool // the request's field names; true: named in Connection
	probes int             // comparisons and lookups made by has (tests)
}

func (s *connNames) build(vals []string, h http.Header) {
	for tok := range ListTokens(vals) {
		if s.big == nil && s.n < len(s.small) {
			s.small[s.n] = tok
			s.n++
			continue
		}
		if s.big == nil {
			s.big = make(map[string]bool, len(h))
			for k := range h {
				s.big[k] = false
			}
			for _, t := range s.small[:s.n] {
				s.mark(t)
			}
		}
		s.mark(tok)
	}
}

// mark records that the field tok names, if the request has it.
func (s *connNames) mark(tok string) {
	var buf [64]byte
	var b []byte
	if len(tok) <= len(buf) {
		b = buf[:len(tok)]
	} else {
		b = make([]byte, len(tok))
	}
	copy(b, tok)
	if !ValidToken(b) {
		return
	}
	canonicalKeyInPlace(b)
	if _, ok := s.big[string(b)]; ok {
		s.big[string(b)] = true
	}
}

func (s *connNames) has(k string) bool {
	if s.big != nil {
		s.probes++
		return s.big[k]
	}
	for _, t := range s.small[:s.n] {
		s.probes++
		if EqualFold(t, k) {
			return true
		}
	}
	return false
}

// appendHead appends the request line and fields sent upstream (see Request)
// and the framing of the body: cl > 0 Content-Length, cl < 0 chunked, 0 none
// (Content-Length: 0 for methods that expect a body). named is scratch space
// for the names Connection lists.
func appendHead(b []byte, r *Request, cl int64, named *connNames) ([]byte, error) {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.Path...)
	if r.Query != "" {
		b = append(b, '?')
		b = append(b, r.Query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	if conn := r.Header["Connection"]; len(conn) > 0 {
		named.build(conn, r.Header)
	}
	for k, vs := range r.Header {
		if r.dropField(k, named) {
			continue
		}
		for _, v := range vs {
			if !ValidFieldValue(v) {
				return b, ErrRequestField
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if r.Fields != nil {
		b = r.Fields.AppendFields(b)
	}
	if r.Upgrade != "" {
		b = append(b, "Connection: Upgrade\r\nUpgrade: "...)
		b = append(b, r.Upgrade...)
		b = append(b, "\r\n"...)
	}
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

// dropField reports whether the client field k is not sent.
func (r *Request) dropField(k string, named *connNames) bool {
	if !ValidToken(k) || skipField(k) || (r.Strip != nil && r.Strip(k)) || named.has(k) {
		return true
	}
	if strings.IndexByte(k, '_') < 0 {
		return false
	}
	if !r.AllowUnderscore {
		return true
	}
	// A server that reads '_' as '-' must not see a field mxedge strips or sets.
	f := CanonicalKey(k, true)
	return skipField(f) || (r.Strip != nil && r.Strip(f)) || named.has(f)
}
