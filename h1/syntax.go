package h1

import (
	"iter"
	"strings"
)

// This file holds the byte-level rules of HTTP field syntax (RFC 9110), one
// copy each, for the parsers here and the callers' own checks.

// IsTokenByte reports whether c is a tchar (RFC 9110 §5.6.2).
func IsTokenByte(c byte) bool {
	return tokenTable[c]
}

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidToken reports whether s is a non-empty token (a method, a field name).
func ValidToken[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenTable[s[i]] {
			return false
		}
	}
	return true
}

// ValidFieldValue reports whether s holds no control byte other than HTAB
// (no CR, LF, NUL or DEL). Bytes >= 0x80 (obs-text) are allowed, as net/http
// allows them.
func ValidFieldValue[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidTarget reports whether s is a request-target of visible ASCII only
// (0x21-0x7e): no space, tab, control byte or raw byte >= 0x80 that a
// request line could be split on or read differently by the next server.
func ValidTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return len(s) > 0
}

// TrimOWS removes optional white space (SP, HTAB) from both ends.
func TrimOWS[T string | []byte](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Unhex returns the value of the hex digit c.
func Unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// IsHex reports whether c is a hex digit.
func IsHex(c byte) bool {
	_, ok := Unhex(c)
	return ok
}

// EqualFold reports whether a and b are equal ignoring ASCII case.
func EqualFold[A, B string | []byte](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ListTokens yields the trimmed, non-empty elements of comma-separated field
// values, in order (the elements of a Connection or Expose-Headers list).
func ListTokens(vals []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range vals {
			for v != "" {
				var tok string
				if i := strings.IndexByte(v, ','); i >= 0 {
					tok, v = v[:i], v[i+1:]
				} else {
					tok, v = v, ""
				}
				if tok = TrimOWS(tok); tok != "" && !yield(tok) {
					return
				}
			}
		}
	}
}

// parseDecimal parses a Content-Length: 1 to 18 ASCII digits, nothing else.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// canonicalKeyInPlace gives a token its net/http canonical form (first letter
// and letters after '-' upper case, the others lower case).
func canonicalKeyInPlace(b []byte) {
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
}

// CanonicalKey returns k in net/http's canonical form, with '_' read as '-'
// when fold is set ("x_forwarded_for" → "X-Forwarded-For"): the name a
// server that folds the two would see. It allocates only when k changes.
func CanonicalKey(k string, fold bool) string {
	change := false
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !tokenTable[c] {
			return k // not a token: net/http leaves it as is
		}
		if (upper && 'a' <= c && c <= 'z') || (!upper && 'A' <= c && c <= 'Z') || (fold && c == '_') {
			change = true
		}
		upper = c == '-' || (fold && c == '_')
	}
	if !change {
		return k
	}
	return canonicalSlow(k, fold)
}

func canonicalSlow(k string, fold bool) string {
	b := []byte(k)
	if fold {
		for i, c := range b {
			if c == '_' {
				b[i] = '-'
			}
		}
	}
	canonicalKeyInPlace(b)
	return string(b)
}
