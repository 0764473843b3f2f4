package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mxedge/mxedge/ratelimit"
)

// Matrix error codes mxedge answers with.
const (
	errUnknown        = "M_UNKNOWN"
	errUnrecognized   = "M_UNRECOGNIZED"
	errTooLarge       = "M_TOO_LARGE"
	errLimitExceeded  = "M_LIMIT_EXCEEDED"
	errInvalidParam   = "M_INVALID_PARAM"
	msgTooManyRequest = "Too many requests"
)

var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
)

// writeError writes a Matrix error {"errcode","error"} with status. It is the
// one writer of errors a client sees: CORS, request id and HSTS are added by
// the response writer when the header is written. msg is a constant written
// for clients; the cause, if any, is logged separately by the caller.
func writeError(w http.ResponseWriter, status int, errcode, msg string) {
	writeErrorBody(w, status, appendError(make([]byte, 0, 64+len(msg)), errcode, msg, -1))
}

// writeLimitExceeded writes the 429 answer: retry_after_ms exact from the
// bucket (rounded up to the millisecond) and Retry-After in whole seconds,
// rounded up. A 503 (shared store failing with on_error: deny) is M_UNKNOWN.
func writeLimitExceeded(w http.ResponseWriter, status int, retry time.Duration) {
	if status != http.StatusTooManyRequests {
		w.Header()["Retry-After"] = []string{ratelimit.RetryAfterHeader(ratelimit.RetryAfterMillis(retry))}
		writeError(w, status, errUnknown, "Rate limiter unavailable")
		return
	}
	ms := max(ratelimit.RetryAfterMillis(retry), 1)
	w.Header()["Retry-After"] = []string{ratelimit.RetryAfterHeader(ms)}
	writeErrorBody(w, status, appendError(make([]byte, 0, 96), errLimitExceeded, msgTooManyRequest, ms))
}

func writeErrorBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	delete(h, "Content-Encoding")
	w.WriteHeader(status)
	w.Write(body)
}

// appendError appends {"errcode":…,"error":…[,"retry_after_ms":N]} to b.
func appendError(b []byte, errcode, msg string, retryMS int64) []byte {
	b = append(b, `{"errcode":`...)
	b = appendJSONString(b, errcode)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, msg)
	if retryMS >= 0 {
		b = append(b, `,"retry_after_ms":`...)
		b = strconv.AppendInt(b, retryMS, 10)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, escaping what JSON requires.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
