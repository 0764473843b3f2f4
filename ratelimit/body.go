package ratelimit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// PeekLimit is how much of a login or invite body the limiter reads to find
// the target account or invitee. Real bodies are far smaller; a larger body
// is keyed on the shared "unreadable" key of its category (see UnreadableKey).
const PeekLimit = 16 << 10

// UnreadableKey is the account/invitee key shared by every body the limiter
// cannot read: larger than PeekLimit, not JSON, or cut short. Padding a body
// therefore lands in one small shared bucket instead of escaping the limit.
const UnreadableKey = "\x00unreadable"

// peekBody reads up to PeekLimit bytes of r.Body and replaces r.Body with a
// reader that yields exactly the bytes of the original (the peeked ones, then
// the rest streamed from the original, then the original's error, if any).
// complete reports whether the whole body was read without error.
func peekBody(r *http.Request) (b []byte, complete bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	if r.ContentLength > PeekLimit {
		return nil, false
	}
	size := PeekLimit + 1
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1
	}
	buf := make([]byte, size)
	n := 0
	var err error
	for n < len(buf) && err == nil {
		var k int
		k, err = r.Body.Read(buf[n:])
		n += k
	}
	buf = buf[:n]
	p := &peekedBody{buf: buf, orig: r.Body}
	switch {
	case err == io.EOF && n <= PeekLimit:
		p.err = io.EOF
		complete = true
	case err == nil || err == io.EOF:
		// More than PeekLimit (or than Content-Length): stream the rest.
		p.rest = r.Body
	default:
		p.err = err
	}
	r.Body = p
	return buf, complete
}

// peekedBody replays a peeked prefix, then the rest of the original body.
type peekedBody struct {
	buf  []byte
	off  int
	rest io.Reader // nil when the original was read to its end or error
	err  error     // returned after buf when rest is nil
	orig io.ReadCloser
}

func (p *peekedBody) Read(b []byte) (int, error) {
	if p.off < len(p.buf) {
		n := copy(b, p.buf[p.off:])
		p.off += n
		return n, nil
	}
	if p.rest != nil {
		return p.rest.Read(b)
	}
	return 0, p.err
}

func (p *peekedBody) Close() error { return p.orig.Close() }

// decodeObject decodes a JSON object as Synapse's Python decoder reads it:
// keys are case-sensitive (encoding/json's struct matching is not, which
// would let "Identifier" shadow "identifier"), a repeated key keeps its last
// value, numbers of any size are accepted, nothing may follow the object.
func decodeObject(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

func str(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok && s != ""
}

// LoginTarget returns the account a login body targets, folded as Synapse
// folds it for rc_login.account: the lower-cased localpart of
// identifier.user (m.id.user) or the legacy user field ("@Alice:example.org"
// and "alice" are one account), "3pid:<medium>:<address>" lower-cased for
// m.id.thirdparty, "phone:<COUNTRY>:<digits>" for m.id.phone. It returns ""
// when the body names no account (m.login.token, …) and UnreadableKey when
// the body is not a JSON object.
func LoginTarget(body []byte) string {
	lb, ok := decodeObject(body)
	if !ok {
		return UnreadableKey
	}
	if raw, present := lb["identifier"]; present {
		id, _ := raw.(map[string]any)
		typ, _ := str(id["type"])
		switch typ {
		case "m.id.user":
			if u, ok := str(id["user"]); ok {
				return foldUser(u)
			}
		case "m.id.thirdparty":
			m, ok1 := str(id["medium"])
			a, ok2 := str(id["address"])
			if ok1 && ok2 {
				return "3pid:" + strings.ToLower(m) + ":" + strings.ToLower(a)
			}
		case "m.id.phone":
			c, ok1 := str(id["country"])
			p, ok2 := str(id["phone"])
			if ok1 && ok2 {
				return "phone:" + strings.ToUpper(c) + ":" + digits(p)
			}
		}
		return ""
	}
	// Legacy fields, as Synapse converts them when "identifier" is absent.
	m, ok1 := str(lb["medium"])
	a, ok2 := str(lb["address"])
	if ok1 && ok2 {
		return "3pid:" + strings.ToLower(m) + ":" + strings.ToLower(a)
	}
	if u, ok := str(lb["user"]); ok {
		return foldUser(u)
	}
	return ""
}

// foldUser returns the lower-cased localpart of a user id or localpart.
func foldUser(u string) string {
	if strings.HasPrefix(u, "@") {
		u = u[1:]
		if i := strings.IndexByte(u, ':'); i >= 0 {
			u = u[:i]
		}
	}
	return strings.ToLower(u)
}

func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Invitee returns the user_id of an invite body ("" for a 3pid invite,
// UnreadableKey when the body is not a JSON object). User ids are case
// sensitive: it is returned as is.
func Invitee(body []byte) string {
	ib, ok := decodeObject(body)
	if !ok {
		return UnreadableKey
	}
	u, _ := str(ib["user_id"])
	return u
}
