package h1

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
)

// This file is the server side's request-head parser. It refuses whatever
// net/http's server refuses, and more (each refusal closes the connection):
//
//   - a line not ended by CRLF (bare LF), a CR anywhere else, an empty line
//     before the request line, obsolete line folding;
//   - a request line that is not exactly "method SP target SP HTTP/1.x":
//     a method that is not a token, a target with a byte outside visible
//     ASCII or obs-text, a target that is neither origin-form ("/…") nor "*";
//   - HTTP versions other than 1.0 and 1.1 (505);
//   - a field name that is not a token or is followed by white space, a
//     value with a control byte other than HTAB;
//   - HTTP/1.1 without exactly one Host, more than one Host, a Host with a
//     byte outside [A-Za-z0-9.:[]_-];
//   - more than one Content-Length line, one that is not all digits;
//   - Transfer-Encoding other than one "chunked" (501), together with
//     Content-Length, or in HTTP/1.0;
//   - Expect other than "100-continue" (417).
//
// Accepted as net/http does: field values with obs-text (bytes >= 0x80),
// empty values, repeated fields (values appended in order). The header is
// the one net/http's server gives a handler: without Host (r.Host),
// Transfer-Encoding (r.TransferEncoding) and, on a chunked request, Trailer
// (whose names net/http checks: not Transfer-Encoding, Trailer or
// Content-Length); with Expect; with "Cache-Control: no-cache" added to
// "Pragma: no-cache" when there is no Cache-Control. h1 sets no r.Trailer
// (trailer fields are dropped).

// parseError is a refused head: the status to answer and a short reason.
type parseError struct {
	status int
	msg    string
}

// field is one field line of a head: offsets into the head.
type field struct {
	name, nameEnd, val, valEnd int32
}

// reqHead is what the server needs of a parsed request head besides the
// http.Request fields.
type reqHead struct {
	minor         int
	contentLength int64 // -1: none
	chunked       bool
	close         bool // Connection: close, or HTTP/1.0 (mxedge answers 1.0 and closes)
	expect        bool // Expect: 100-continue on HTTP/1.1
}

var (
	errBareLF      = &parseError{http.StatusBadRequest, "line not ended by CRLF"}
	errFold        = &parseError{http.StatusBadRequest, "obsolete line folding"}
	errReqLine     = &parseError{http.StatusBadRequest, "malformed request line"}
	errMethod      = &parseError{http.StatusBadRequest, "invalid method"}
	errTarget      = &parseError{http.StatusBadRequest, "invalid request target"}
	errVersion     = &parseError{http.StatusHTTPVersionNotSupported, "unsupported HTTP version"}
	errFieldName   = &parseError{http.StatusBadRequest, "invalid header field name"}
	errFieldValue  = &parseError{http.StatusBadRequest, "invalid header field value"}
	errHost        = &parseError{http.StatusBadRequest, "missing, repeated or invalid Host"}
	errLength      = &parseError{http.StatusBadRequest, "invalid or repeated Content-Length"}
	errCoding      = &parseError{http.StatusNotImplemented, "unsupported Transfer-Encoding"}
	errFraming     = &parseError{http.StatusBadRequest, "Content-Length with Transfer-Encoding, or Transfer-Encoding in HTTP/1.0"}
	errExpect      = &parseError{http.StatusExpectationFailed, "unsupported Expect"}
	errHeadTooBig  = &parseError{http.StatusRequestHeaderFieldsTooLarge, "request head too large"}
	errTooManyTE   = &parseError{http.StatusNotImplemented, "repeated Transfer-Encoding"}
	errBadEncoding = &parseError{http.StatusBadRequest, "invalid percent-encoding in the path"}
	errTrailer     = &parseError{http.StatusBadRequest, "invalid Trailer field"}
)

// requestHeadEnd scans b from *scanned for the end of a request head and
// returns its length (through the empty line), 0 when more bytes are needed,
// or an error for a bare LF or a leading empty line. *scanned keeps the scan
// linear across reads.
func requestHeadEnd(b []byte, scanned *int) (int, *parseError) {
	i := *scanned
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			*scanned = len(b)
			return 0, nil
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			return 0, errBareLF
		}
		if i == 1 {
			return 0, errReqLine // an empty line before the request line
		}
		if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
			*scanned = i + 1
			return i + 1, nil
		}
		i++
	}
}

// hostTable holds the bytes mxedge accepts in Host: a subset of net/http's.
var hostTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range ".-_:[]" {
		t[c] = true
	}
	return t
}()

// parseRequestHead parses b (a whole head, CRLF line ends already checked by
// requestHeadEnd) into r, whose Header map must be empty. Field names are
// canonicalised in place; all strings of r share one copy of the head.
// fields is scratch space, returned for reuse.
func parseRequestHead(b []byte, r *http.Request, u *url.URL, fields []field) (reqHead, []field, *parseError) {
	h := reqHead{contentLength: -1}
	// Request line.
	eol := bytes.IndexByte(b, '\n') - 1 // at the CR
	line := b[:eol]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return h, fields, errReqLine
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return h, fields, errReqLine
	}
	sp2 += sp1 + 1
	method, target, version := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !ValidToken(method) {
		return h, fields, errMethod
	}
	switch string(version) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
		h.close = true
	default:
		if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			return h, fields, errVersion
		}
		return h, fields, errReqLine
	}
	for _, c := range target {
		// Raw bytes >= 0x80 pass, as net/http passes them: mxedge's handler
		// answers them 400 with CORS.
		if c <= ' ' || c == 0x7f {
			return h, fields, errTarget
		}
	}
	if len(target) == 0 || (target[0] != '/' && !(len(target) == 1 && target[0] == '*')) {
		return h, fields, errTarget
	}

	// Field lines: checked and their names canonicalised in place, offsets kept.
	fields = fields[:0]
	hosts, lengths, codings := 0, 0, 0
	var hostF, lengthF, codingF field
	var expectSeen, trailerSeen, pragmaSeen bool
	var expectF field
	p := eol + 2
	for p < len(b)-2 {
		e := p + bytes.IndexByte(b[p:], '\n') - 1
		l := b[p:e]
		if l[0] == ' ' || l[0] == '\t' {
			return h, fields, errFold
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !ValidToken(l[:colon]) {
			return h, fields, errFieldName
		}
		v := TrimOWS(l[colon+1:])
		if !ValidFieldValue(v) {
			return h, fields, errFieldValue
		}
		canonicalKeyInPlace(l[:colon])
		vs := p + colon + 1
		for vs < e && (b[vs] == ' ' || b[vs] == '\t') {
			vs++
		}
		f := field{int32(p), int32(p + colon), int32(vs), int32(vs + len(v))}
		switch string(l[:colon]) {
		case "Host":
			hosts++
			hostF = f
		case "Content-Length":
			lengths++
			lengthF = f
		case "Transfer-Encoding":
			codings++
			codingF = f
		case "Expect":
			if expectSeen {
				return h, fields, errExpect
			}
			expectSeen, expectF = true, f
		case "Connection":
			if hasWord(v, "close") {
				h.close = true
			}
		case "Trailer":
			trailerSeen = true
		case "Pragma":
			pragmaSeen = true
		}
		fields = append(fields, f)
		p = e + 2
	}

	// Framing.
	switch {
	case lengths > 1:
		return h, fields, errLength
	case codings > 1:
		return h, fields, errTooManyTE
	case codings == 1 && (lengths == 1 || h.minor == 0):
		return h, fields, errFraming
	case codings == 1:
		if !EqualFold(b[codingF.val:codingF.valEnd], "chunked") {
			return h, fields, errCoding
		}
		h.chunked = true
	case lengths == 1:
		n, ok := parseDecimal(b[lengthF.val:lengthF.valEnd])
		if !ok {
			return h, fields, errLength
		}
		h.contentLength = n
	}
	if hosts > 1 || (hosts == 0 && h.minor == 1) {
		return h, fields, errHost
	}
	if hosts == 1 {
		hv := b[hostF.val:hostF.valEnd]
		if len(hv) == 0 {
			return h, fields, errHost
		}
		for _, c := range hv {
			if !hostTable[c] {
				return h, fields, errHost
			}
		}
	}
	if trailerSeen && h.chunked {
		// As net/http: the fields it names may not frame the message.
		for _, f := range fields {
			if string(b[f.name:f.nameEnd]) != "Trailer" {
				continue
			}
			if namesFraming(string(b[f.val:f.valEnd])) {
				return h, fields, errTrailer
			}
		}
	}
	if expectSeen {
		if !EqualFold(b[expectF.val:expectF.valEnd], "100-continue") {
			return h, fields, errExpect
		}
		h.expect = h.minor == 1 && (h.chunked || h.contentLength > 0)
	}

	// One string for the whole head; every field of r is a part of it.
	s := string(b)
	r.Method = s[:sp1]
	r.RequestURI = s[sp1+1 : sp2]
	r.Proto = s[sp2+1 : eol]
	r.ProtoMajor, r.ProtoMinor = 1, h.minor
	if hosts == 1 {
		r.Host = s[hostF.val:hostF.valEnd]
	}
	if perr := fillURL(u, r.RequestURI); perr != nil {
		return h, fields, perr
	}
	r.URL = u
	vals := make([]string, len(fields))
	hdr := r.Header
	for i, f := range fields {
		k := s[f.name:f.nameEnd]
		if k == "Host" {
			continue // r.Host, as net/http
		}
		vals[i] = s[f.val:f.valEnd]
		if old, ok := hdr[k]; ok {
			hdr[k] = append(old, vals[i])
		} else {
			hdr[k] = vals[i : i+1 : i+1]
		}
	}
	r.Close = h.close
	switch {
	case h.chunked:
		r.ContentLength = -1
		r.TransferEncoding = chunkedCoding
	case h.contentLength > 0:
		r.ContentLength = h.contentLength
	}
	delete(hdr, "Transfer-Encoding") // r.TransferEncoding, as net/http
	if trailerSeen && h.chunked {
		delete(hdr, "Trailer") // as net/http (which moves it to r.Trailer)
	}
	if pragmaSeen {
		// As net/http (fixPragmaCacheControl).
		if hp := hdr["Pragma"]; len(hp) > 0 && hp[0] == "no-cache" {
			if _, ok := hdr["Cache-Control"]; !ok {
				hdr["Cache-Control"] = []string{"no-cache"}
			}
		}
	}

	return h, fields, nil
}

var chunkedCoding = []string{"chunked"}

// hasWord reports whether v holds tok (case insensitive) between spaces,
// tabs or commas: net/http's server closes after the answer when the
// Connection field has "close" so delimited ("Connection: x close"), a
// superset of the list rule of ListTokens.
func hasWord(v []byte, tok string) bool {
	for len(v) > 0 {
		i := bytes.IndexAny(v, " \t,")
		if i < 0 {
			return EqualFold(v, tok)
		}
		if EqualFold(v[:i], tok) {
			return true
		}
		v = v[i+1:]
	}
	return false
}

// namesFraming reports whether a Trailer value names a field net/http
// refuses there: Transfer-Encoding, Trailer or Content-Length.
func namesFraming(v string) bool {
	for tok := range ListTokens([]string{v}) {
		if EqualFold(tok, "Transfer-Encoding") || EqualFold(tok, "Trailer") || EqualFold(tok, "Content-Length") {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// pathPlain holds the bytes net/url leaves as they are when it escapes a
// path (taken from net/url itself).
var pathPlain = func() (t [256]bool) {
	for c := range 256 {
		s := "/" + string([]byte{byte(c)})
		t[c] = (&url.URL{Path: s}).EscapedPath() == s
	}
	return t
}()

// fillURL sets u from an origin-form target (or "*") as url.ParseRequestURI
// would: without a '%' the path is the raw path as is; with one, the
// standard parser decodes it (and refuses a bad escape).
func fillURL(u *url.URL, target string) *parseError {
	*u = url.URL{}
	path, query, _ := strings.Cut(target, "?")
	if strings.IndexByte(target, '?') >= 0 {
		u.ForceQuery = query == ""
	}
	u.RawQuery = query
	if strings.IndexByte(path, '%') < 0 {
		u.Path = path
		// The raw path is kept, as the standard parser keeps it, when its
		// default escaping would differ ("!", raw bytes >= 0x80, ...).
		if path != "*" {
			for i := 0; i < len(path); i++ {
				if !pathPlain[path[i]] {
					u.RawPath = path
					break
				}
			}
		}
		return nil
	}
	pu, err := url.ParseRequestURI(target)
	if err != nil {
		return errBadEncoding
	}
	*u = *pu
	return nil
}
