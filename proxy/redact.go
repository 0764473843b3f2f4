package proxy

import (
	"strings"

	"github.com/mxedge/mxedge/h1"
)

// secretParams are the query parameters whose values never reach a log line:
// Matrix access and login tokens, the 3PID validation secrets, and OAuth 2.0
// codes and tokens (MAS's endpoints).
var secretParams = [...]string{
	"access_token", "loginToken", "login_token", "token", "client_secret", "password", "sid",
	"code", "refresh_token", "id_token", "device_code",
}

// redactTarget returns path?query for logs, with the values of secret query
// parameters replaced by "REDACTED".
func redactTarget(path, query string) string {
	if query == "" {
		return path
	}
	return path + "?" + redactQuery(query)
}

// redactQuery replaces the values of secret query parameters with
// "REDACTED". A name is judged as the homeserver reads it: percent-decoded,
// '+' as a space, ASCII case ignored, so "access%5Ftoken" is access_token.
// Parameters are split on '&' and on ';' (which some servers still take as a
// separator); a name with a malformed escape hides its value too, since no
// one can say how the homeserver reads it.
func redactQuery(q string) string {
	var b strings.Builder
	last := 0 // q[:last] is copied to b (when b is in use)
	for i := 0; i < len(q); {
		j := i
		for j < len(q) && q[j] != '&' && q[j] != ';' {
			j++
		}
		if eq := strings.IndexByte(q[i:j], '='); eq >= 0 && eq+1 < j-i && secretName(q[i:i+eq]) {
			if b.Len() == 0 {
				b.Grow(len(q) + 8)
			}
			b.WriteString(q[last : i+eq+1])
			b.WriteString("REDACTED")
			last = j
		}
		i = j + 1
	}
	if last == 0 {
		return q
	}
	b.WriteString(q[last:])
	return b.String()
}

// secretName reports whether the raw parameter name k, decoded, is a secret,
// or cannot be decoded.
func secretName(k string) bool {
	var buf [32]byte
	name := buf[:0]
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(k) || !h1.IsHex(k[i+1]) || !h1.IsHex(k[i+2]) {
				return true
			}
			c = unhexValid(k[i+1])<<4 | unhexValid(k[i+2])
			i += 2
		}
		if len(name) == cap(name) {
			return false // longer than every secret name
		}
		name = append(name, c)
	}
	for _, s := range secretParams {
		if h1.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// redactError returns err's text with any URL query cut off (network errors
// may quote a URL, which may carry an access token).
func redactError(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '?'); i >= 0 {
		j := strings.IndexAny(s[i:], "\" ")
		if j < 0 {
			return s[:i] + "?REDACTED"
		}
		return s[:i] + "?REDACTED" + s[i+j:]
	}
	return s
}
