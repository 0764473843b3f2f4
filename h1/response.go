package h1

import (
	"bytes"
	"net/http"
)

// head is what an exchange needs of a parsed response head.
type head struct {
	status        int
	minor         int   // HTTP/1.minor
	contentLength int64 // -1: not given
	chunked       bool
	close         bool // Connection: close, or HTTP/1.0
	connTokens    bool // Connection names other fields
	upgrade       bool // Connection: upgrade
	fields        int  // field lines
}

// headEnd returns the length of the head at the start of b (through the empty
// line ending it), or -1 when b does not hold a whole head yet. Lines end in
// CRLF or, as net/http accepts in heads, a bare LF.
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
// (CRLF or LF) is not part of line. A CR elsewhere stays in line (and is
// refused by the callers' byte checks).
func nextLine[T string | []byte](b T) (line, rest T) {
	i := -1
	for k := 0; k < len(b); k++ {
		if b[k] == '\n' {
			i = k
			break
		}
	}
	if i < 0 {
		return b, b[len(b):]
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseHead checks a response head strictly and canonicalises its field
// names in place (as net/http presents them). Refused, whatever net/http
// would do: obsolete line folding, a field name that is not a token or is
// followed by white space, control bytes (other than HTAB) in values, a CR
// not followed by LF, several differing Content-Length values, a
// Content-Length that is not all digits, any Transfer-Encoding other than a
// single "chunked", Content-Length together with Transfer-Encoding, chunked
// in HTTP/1.0, a status outside 100-999, a protocol other than HTTP/1.0 or
// HTTP/1.1. Accepted like net/http: bare LF line ends, repeated identical
// Content-Length values, an empty reason phrase, obs-text (bytes >= 0x80) in
// values.
func parseHead(b []byte) (head, error) {
	h := head{contentLength: -1}
	line, rest := nextLine(b)
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return h, ErrStatusLine
	}
	h.minor = int(line[7] - '0')
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return h, ErrStatusLine
		}
		h.status = h.status*10 + int(d-'0')
	}
	if h.status < 100 || (len(line) > 12 && line[12] != ' ') || !ValidFieldValue(line[12:]) {
		return h, ErrStatusLine
	}
	h.close = h.minor == 0
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h, ErrObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return h, ErrHeaderLine
		}
		key, val := line[:colon], TrimOWS(line[colon+1:])
		if !ValidToken(key) {
			return h, ErrHeaderLine
		}
		if !ValidFieldValue(val) {
			return h, ErrHeaderBytes
		}
		canonicalKeyInPlace(key)
		h.fields++
		switch string(key) {
		case "Content-Length":
			n, ok := parseDecimal(val)
			if !ok {
				return h, ErrContentLength
			}
			if h.contentLength >= 0 && h.contentLength != n {
				return h, ErrMultipleCL
			}
			h.contentLength = n
		case "Transfer-Encoding":
			if h.chunked || !EqualFold(val, "chunked") {
				return h, ErrTransferEnc
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
				switch tok = TrimOWS(tok); {
				case len(tok) == 0:
				case EqualFold(tok, "close"):
					h.close = true
				case EqualFold(tok, "keep-alive"):
				case EqualFold(tok, "upgrade"):
					h.upgrade = true
				default:
					h.connTokens = true
				}
			}
		}
	}
	if h.chunked && h.contentLength >= 0 {
		return h, ErrCLAndTE
	}
	if h.chunked && h.minor == 0 {
		return h, ErrTransferEnc
	}
	return h, nil
}

// hopField reports the response fields never passed on.
func hopField(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings":
		return true
	}
	return false
}

// fillHeaderAll copies every field of a parsed head into dst, hop-by-hop
// ones included (to read a 101's Upgrade).
func fillHeaderAll(dst http.Header, b []byte, h *head) {
	_, rest := nextLine(string(b))
	for {
		var line string
		line, rest = nextLine(rest)
		if line == "" {
			return
		}
		c := indexColon(line)
		dst[line[:c]] = append(dst[line[:c]], TrimOWS(line[c+1:]))
	}
}

// fillHeader copies a parsed, canonicalised head into dst, minus hop-by-hop
// fields and those named in Connection. All values are substrings of one
// string made from the head; common names are interned. Linear in the head.
func fillHeader(dst http.Header, b []byte, h *head) {
	s := string(b)
	_, rest := nextLine(s) // status line
	slab := make([]string, h.fields)
	var conn []string
	for i := 0; ; i++ {
		var line string
		line, rest = nextLine(rest)
		if line == "" {
			break
		}
		c := indexColon(line)
		k, v := line[:c], TrimOWS(line[c+1:])
		if ik, ok := internedKeys[k]; ok {
			k = ik
		}
		if hopField(k) {
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
		for tok := range ListTokens(conn) {
			delete(dst, CanonicalKey(tok, false))
		}
	}
}

func indexColon(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

// internedKeys are the canonical forms of common response field names, so
// that they are shared rather than cut from each head.
var internedKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Allow", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Range", "Content-Security-Policy",
		"Content-Type", "Cross-Origin-Resource-Policy", "Date", "Etag", "Expires", "Keep-Alive",
		"Last-Modified", "Location", "Pragma", "Referrer-Policy", "Retry-After", "Sec-Websocket-Accept",
		"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Synapse-Trace-Id", "Trailer", "Transfer-Encoding", "Upgrade", "Vary",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id", "X-Robots-Tag",
		"X-Xss-Protection",
	} {
		m[k] = k
	}
	return m
}()
