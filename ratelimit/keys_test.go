package ratelimit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestLoginTarget(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"m.id.user localpart", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"Alice"},"password":"x"}`, "alice"},
		{"m.id.user mxid", `{"identifier":{"type":"m.id.user","user":"@ALICE:Example.org"}}`, "alice"},
		{"legacy user", `{"type":"m.login.password","user":"@alice:example.org","password":"x"}`, "alice"},
		{"escaped", `{"identifier":{"type":"m.id.user","user":"\u0061lice"}}`, "alice"},
		{"identifier wins over legacy user", `{"identifier":{"type":"m.id.user","user":"bob"},"user":"alice"}`, "bob"},
		{"last duplicate wins, no merge", `{"identifier":{"type":"m.id.user","user":"bob"},"identifier":{"type":"m.id.user","user":"alice"}}`, "alice"},
		{"keys are case-sensitive", `{"identifier":{"type":"m.id.user","user":"alice"},"Identifier":{"type":"m.id.user","user":"bob"}}`, "alice"},
		{"field case-sensitive", `{"identifier":{"type":"m.id.user","user":"alice","User":"bob"}}`, "alice"},
		{"huge number elsewhere", `{"identifier":{"type":"m.id.user","user":"alice"},"n":1e999}`, "alice"},
		{"thirdparty", `{"identifier":{"type":"m.id.thirdparty","medium":"email","address":"Alice@Example.org"}}`, "3pid:email:alice@example.org"},
		{"legacy 3pid", `{"medium":"email","address":"a@b.c","password":"x"}`, "3pid:email:a@b.c"},
		{"phone", `{"identifier":{"type":"m.id.phone","country":"gb","phone":"07700 900 123"}}`, "phone:GB:07700900123"},
		{"token login", `{"type":"m.login.token","token":"abc"}`, ""},
		{"identifier not an object", `{"identifier":"alice"}`, ""},
		{"user not a string", `{"identifier":{"type":"m.id.user","user":7}}`, ""},
		{"unknown identifier type", `{"identifier":{"type":"m.id.other","user":"alice"}}`, ""},
		{"not json", `user=alice`, UnreadableKey},
		{"array", `["alice"]`, UnreadableKey},
		{"trailing data", `{"user":"alice"} {"user":"bob"}`, UnreadableKey},
		{"NaN", `{"user":"alice","x":NaN}`, UnreadableKey},
		{"empty", ``, UnreadableKey},
		{"null", `null`, UnreadableKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LoginTarget([]byte(tc.body)); got != tc.want {
				t.Fatalf("LoginTarget(%s): got %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func TestInvitee(t *testing.T) {
	for body, want := range map[string]string{
		`{"user_id":"@Bob:x","reason":"hi"}`:                            "@Bob:x",
		`{"id_server":"i","medium":"email","address":"a@b"}`:            "",
		`{"user_id":"@a:x","user_id":"@b:x"}`:                           "@b:x",
		`{"user_id":"@a:x","USER_ID":"@b:x"}`:                           "@a:x",
		`{"user_id":` + strings.Repeat("[", 5) + strings.Repeat("]", 5): UnreadableKey,
	} {
		if got := Invitee([]byte(body)); got != want {
			t.Errorf("Invitee(%s): got %q, want %q", body, got, want)
		}
	}
}

func TestQueryParam(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"access_token=abc", "abc"},
		{"x=1&access_token=abc&access_token=def", "abc"},
		{"access%5Ftoken=abc", "abc"},
		{"access_token=a%2Bb", "a+b"},
		{"access_token=a+b", "a b"},
		{"access_token", ""},
		{"access_tokens=abc", ""},
		{"access_token=%zz", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := QueryParam(tc.raw, "access_token"); got != tc.want {
			t.Errorf("QueryParam(%q): got %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestAccessToken(t *testing.T) {
	tests := []struct {
		auth, target, want string
	}{
		{"Bearer syt_a", "/x", "syt_a"},
		{"Bearer syt_a", "/x?access_token=syt_b", "syt_a"},
		{"", "/x?access_token=syt_b", "syt_b"},
		{"Basic dXNlcg==", "/x?access_token=syt_b", "syt_b"},
		{"bearer syt_a", "/x", ""},
		{"Bearer ", "/x", ""},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", tc.target, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if got := AccessToken(r); got != tc.want {
			t.Errorf("AccessToken(%q, %q): got %q, want %q", tc.auth, tc.target, got, tc.want)
		}
	}
}

func TestRoomFromPath(t *testing.T) {
	for p, want := range map[string]string{
		"/_matrix/client/v3/rooms/!r:x/invite":   "!r:x",
		"/_matrix/client/v3/rooms/!r:x/join":     "!r:x",
		"/_matrix/client/v3/join/!r:x":           "!r:x",
		"/_matrix/client/v3/join/#alias:x":       "#alias:x",
		"/_matrix/client/v3/createRoom":          "",
		"/_matrix/client/r0/rooms/%21r%3Ax/join": "%21r%3Ax",
	} {
		if got := roomFromPath(p); got != want {
			t.Errorf("roomFromPath(%q): got %q, want %q", p, got, want)
		}
	}
}

func TestAddrKey(t *testing.T) {
	tests := []struct {
		a, b string
		bits int
		same bool
	}{
		{"2001:db8::1", "2001:db8::ffff:1", 64, true},
		{"2001:db8::1", "2001:db8:0:1::1", 64, false},
		{"2001:db8::1", "2001:db8:0:1::1", 48, true},
		{"2001:db8::1", "2001:db8::2", 128, false},
		{"::ffff:192.0.2.1", "192.0.2.1", 64, true},
		{"192.0.2.1", "192.0.2.2", 0, false},
	}
	for _, tc := range tests {
		ka := AddrKey(netip.MustParseAddr(tc.a), tc.bits)
		kb := AddrKey(netip.MustParseAddr(tc.b), tc.bits)
		if got := ka == kb; got != tc.same {
			t.Errorf("AddrKey(%s) == AddrKey(%s) at /%d: got %v, want %v", tc.a, tc.b, tc.bits, got, tc.same)
		}
	}
}

func FuzzLoginTarget(f *testing.F) {
	for _, s := range []string{
		`{"identifier":{"type":"m.id.user","user":"Alice"}}`,
		`{"user":"@a:b","identifier":{"type":"m.id.thirdparty","medium":"email","address":"A@B"}}`,
		`{"identifier":{"type":"m.id.phone","country":"gb","phone":"+44 1"}}`,
		`{"type":"m.login.token"}`, `[]`, `{"user":1e999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := LoginTarget(body)
		if got == UnreadableKey || got == "" {
			return
		}
		// Same input, same key; user keys are already folded.
		if again := LoginTarget(body); again != got {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
		if !strings.HasPrefix(got, "3pid:") && !strings.HasPrefix(got, "phone:") && strings.ToLower(got) != got {
			t.Fatalf("account key %q is not lower-case", got)
		}
		// Re-encoding the account as a plain login must target the same key.
		if !strings.HasPrefix(got, "3pid:") && !strings.HasPrefix(got, "phone:") && !strings.ContainsAny(got, "@:") {
			b, _ := jsonString(got)
			if k := LoginTarget([]byte(`{"user":` + b + `}`)); k != got {
				t.Fatalf("user %q re-encoded: got key %q", got, k)
			}
		}
	})
}

func jsonString(s string) (string, error) {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

func FuzzQueryParam(f *testing.F) {
	for _, s := range []string{"access_token=a", "a=1&access%5Ftoken=b%20c", "access_token=a+b&access_token=c", "x=%zz&access_token=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := QueryParam(raw, "access_token")
		v, err := url.ParseQuery(raw)
		if err != nil {
			return // the proxy refuses queries that do not parse (proxy.ValidQuery)
		}
		if want := v.Get("access_token"); got != want {
			t.Fatalf("QueryParam(%q): got %q, want %q (url.ParseQuery)", raw, got, want)
		}
	})
}

// FuzzPeekBody checks that the replaced body yields the original bytes
// exactly, whatever the size and however the original delivers them.
func FuzzPeekBody(f *testing.F) {
	f.Add([]byte(`{"user":"a"}`), uint16(3), true)
	f.Add(bytes.Repeat([]byte("x"), PeekLimit+10), uint16(4096), false)
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16, withLength bool) {
		r := httptest.NewRequest("POST", "/_matrix/client/v3/login", nil)
		r.Body = io.NopCloser(&chunker{b: body, n: int(chunk%8192) + 1})
		r.ContentLength = -1
		if withLength {
			r.ContentLength = int64(len(body))
		}
		peek, complete := peekBody(r)
		if complete != (len(body) <= PeekLimit) {
			t.Fatalf("complete: got %v for %d bytes", complete, len(body))
		}
		if complete && !bytes.Equal(peek, body) {
			t.Fatal("peeked bytes differ")
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("replaced body: got %d bytes (%v), want the %d bytes, byte-exact", len(got), err, len(body))
		}
	})
}

// chunker delivers b n bytes at a time.
type chunker struct {
	b []byte
	n int
}

func (c *chunker) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

// TestRoutesTestdata checks that testdata/routes.json (loaded by the proxy's
// route table test) is well-formed: known categories, origin-form paths.
func TestRoutesTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/routes.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Method string   `json:"method"`
			Path   string   `json:"path"`
			Want   []string `json:"want"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 50 {
		t.Fatalf("got %d cases, want the full table", len(doc.Cases))
	}
	seen := Categories(0)
	for _, c := range doc.Cases {
		cats, err := ParseCategories(c.Want)
		if err != nil {
			t.Errorf("%s %s: %v", c.Method, c.Path, err)
		}
		if c.Method == "" || !strings.HasPrefix(c.Path, "/_matrix/") {
			t.Errorf("bad case %s %q", c.Method, c.Path)
		}
		seen |= cats
	}
	for c := range numBuiltin {
		if !seen.Has(c) && c != MASAddress { // MAS's host is not a /_matrix/ route
			t.Errorf("no route case for %s", c)
		}
	}
}

func FuzzAddrKey(f *testing.F) {
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(64), uint64(7))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, uint8(64), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, bits uint8, low uint64) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		ipv6Bits := 16 + int(bits)%113 // 16..128, as validation allows
		k := AddrKey(a, ipv6Bits)
		if k2 := AddrKey(a.Unmap(), ipv6Bits); k2 != k {
			t.Fatalf("%s and its unmapped form differ", a)
		}
		if a.Is4In6() {
			if k != a.As16() {
				t.Fatalf("IPv4 %s is not kept whole", a)
			}
			return
		}
		if ipv6Bits <= 64 {
			// Changing the interface identifier never changes the bucket.
			c := [16]byte(b)
			for i := range 8 {
				c[8+i] ^= byte(low >> (8 * i))
			}
			if m := netip.AddrFrom16(c); !m.Is4In6() && AddrKey(m, ipv6Bits) != k {
				t.Fatalf("%s and %s share a /%d but not a key", a, netip.AddrFrom16(c), ipv6Bits)
			}
		}
	})
}

func FuzzAccessToken(f *testing.F) {
	f.Add("Bearer syt_abc", "access_token=syt_abc")
	f.Add("", "a=1&access%5Ftoken=x+y")
	f.Fuzz(func(t *testing.T, auth, query string) {
		r := httptest.NewRequest("GET", "/x", nil)
		r.URL.RawQuery = query
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		tok := AccessToken(r)
		if strings.HasPrefix(auth, "Bearer ") && len(auth) > 7 {
			if tok != strings.TrimSpace(auth[7:]) {
				t.Fatalf("header token: got %q", tok)
			}
			return
		}
		if tok != QueryParam(query, "access_token") {
			t.Fatalf("query token: got %q, want %q", tok, QueryParam(query, "access_token"))
		}
	})
}
