package proxy

import "math/rand/v2"

// requestIDAlphabet is Crockford's base32 in lower case: URL-safe, no
// look-alike letters, and within ValidRequestID's alphabet.
const requestIDAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewRequestID fills buf with a fresh request id, 20 characters of
// [0-9a-z] carrying 100 random bits from math/rand/v2's per-thread ChaCha8
// source, and returns it as a string (the one allocation). Ids are unique in
// practice, not secret. NewRequestID is safe for concurrent use.
func NewRequestID(buf *[20]byte) string {
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 10 {
		buf[i] = requestIDAlphabet[a&31]
		buf[10+i] = requestIDAlphabet[b&31]
		a >>= 5
		b >>= 5
	}
	return string(buf[:])
}

// ValidRequestID reports whether s may be taken as a request id from a
// trusted proxy's X-Request-Id: 1 to 64 characters of [A-Za-z0-9._:-], so it
// is safe in logs and headers. Anything else is replaced by a fresh id.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}
