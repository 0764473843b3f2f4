package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

const roomState = "/_matrix/client/v3/rooms/%21r%3Aexample.org/state/"

var pathCases = []struct {
	name     string
	raw      string
	extra    []string
	wantGate Gate
	wantOK   bool
}{
	// Ordinary paths.
	{"sync", "/_matrix/client/v3/sync", nil, GateMatrix, true},
	{"versions", "/_matrix/client/versions", nil, GateMatrix, true},
	{"matrix root slash", "/_matrix/", nil, GateMatrix, true},
	{"federation send", "/_matrix/federation/v1/send/txn1", nil, GateFederation, true},
	{"key server", "/_matrix/key/v2/server", nil, GateFederation, true},
	{"synapse client", "/_synapse/client/pick_idp", nil, GateSynapseClient, true},
	{"admin", "/_synapse/admin/v1/users/%40alice%3Aexample.org", nil, GateAdmin, true},
	{"admin root", "/_synapse/admin/", nil, GateAdmin, true},
	{"well-known client", "/.well-known/matrix/client", nil, GateWellKnown, true},
	{"well-known server", "/.well-known/matrix/server", nil, GateWellKnown, true},
	{"root", "/", nil, GateRefused, true},
	{"favicon", "/favicon.ico", nil, GateRefused, true},
	{"replication", "/_synapse/replication/send_event/x", nil, GateRefused, true},
	{"metrics", "/_synapse/metrics", nil, GateRefused, true},
	{"admin without slash", "/_synapse/admin", nil, GateRefused, true},
	{"matrix without slash", "/_matrix", nil, GateRefused, true},
	{"matrixfoo", "/_matrixfoo/x", nil, GateRefused, true},
	{"well-known other", "/.well-known/openid", nil, GateRefused, true},

	// Legitimate odd Matrix paths.
	{"state key %2F", roomState + "m.custom/a%2Fb", nil, GateMatrix, true},
	{"state key %2F..%2F", roomState + "m.custom/..%2F..%2F..", nil, GateMatrix, true},
	{"state key %25", roomState + "m.custom/100%25", nil, GateMatrix, true},
	{"state key %252e", roomState + "m.custom/%252e%252e", nil, GateMatrix, true},
	{"state key %3F", roomState + "m.custom/what%3F", nil, GateMatrix, true},
	{"state key %23", roomState + "m.custom/%23hash", nil, GateMatrix, true},
	{"state key %20", roomState + "m.custom/a%20b", nil, GateMatrix, true},
	{"state key utf-8 encoded", roomState + "m.custom/%E2%9C%93%F0%9F%98%80", nil, GateMatrix, true},
	{"state key utf-8 raw", roomState + "m.custom/\u2713", nil, GateMatrix, true},
	{"state key dotdot", roomState + "m.room.member/..", nil, GateMatrix, true},
	{"state key dot", roomState + "m.room.member/.", nil, GateMatrix, true},
	{"state key dotdot encoded", roomState + "m.room.member/%2E%2E", nil, GateMatrix, true},
	{"state key ...", roomState + "m.room.member/...", nil, GateMatrix, true},
	{"state key empty", roomState + "m.room.name/", nil, GateMatrix, true},
	{"state key empty double slash", roomState + "m.room.name//", nil, GateMatrix, true},
	{"state key semicolon", roomState + "m.custom/a;b", nil, GateMatrix, true},
	{"state key %3B", roomState + "m.custom/a%3Bb", nil, GateMatrix, true},
	{"state key backslash", roomState + "m.custom/a%5Cb", nil, GateMatrix, true},
	{"state key raw backslash", roomState + "m.custom/a\\b", nil, GateMatrix, true},
	{"state key upper case", roomState + "M.Custom/ABC", nil, GateMatrix, true},
	{"member state key", roomState + "m.room.member/%40alice%3Aexample.org", nil, GateMatrix, true},
	{"alias encoded", "/_matrix/client/v3/directory/room/%23alias%3Aexample.org", nil, GateMatrix, true},
	{"join alias", "/_matrix/client/v3/join/%23alias:example.org", nil, GateMatrix, true},
	{"event id $ +", "/_matrix/client/v3/rooms/!r:example.org/event/$abc+def_ghi-jk", nil, GateMatrix, true},
	{"event id encoded", "/_matrix/client/v3/rooms/%21r%3Aexample.org/redact/%24ev%2Bx%2Fy/txn1", nil, GateMatrix, true},
	{"room id upper", "/_matrix/client/v3/rooms/!AbCdEf:Example.ORG/messages", nil, GateMatrix, true},
	{"media download legacy", "/_matrix/media/v3/download/example.org/abcDEF123", nil, GateMatrix, true},
	{"media download auth", "/_matrix/client/v1/media/download/example.org/abc/file%20name.png", nil, GateMatrix, true},
	{"federation txn %2F", "/_matrix/federation/v1/send/txn%2F1", nil, GateFederation, true},
	{"federation state_ids", "/_matrix/federation/v1/state_ids/%21r%3Aexample.org", nil, GateFederation, true},
	{"federation make_join", "/_matrix/federation/v1/make_join/%21r%3Aexample.org/%40a%3Ab.org", nil, GateFederation, true},
	{"profile raw @:", "/_matrix/client/v3/profile/@alice:example.org/displayname", nil, GateMatrix, true},
	{"dotdot inside matrix", "/_matrix/client/v3/../r0/sync", nil, GateMatrix, true},
	{"well-known dotdot inside", "/.well-known/matrix/client/..", nil, GateWellKnown, true},
	{"double encoded dots stay", "/_matrix/%252e%252e/_synapse/admin/v1/users", nil, GateMatrix, true},
	{"double encoded admin", "/_synapse/%2561dmin/v1/users", nil, GateRefused, true},
	{"fullwidth A", "/_synapse/%EF%BC%A1dmin/v1", nil, GateRefused, true},
	{"trailing dot segment name", "/_synapse/admin./v1", nil, GateRefused, true},

	// Bypass attempts on the admin gate and the refused namespaces.
	{"dotdot to admin", "/_matrix/../_synapse/admin/v1/users", nil, GateRefused, false},
	{"dotdot to admin client", "/_synapse/client/../admin/v1/users", nil, GateRefused, false},
	{"%2e%2e", "/_matrix/%2e%2e/_synapse/admin/v1/users", nil, GateRefused, false},
	{"%2E%2E", "/_matrix/%2E%2E/_synapse/admin/v1/users", nil, GateRefused, false},
	{".%2e", "/_matrix/.%2e/_synapse/admin/v1/users", nil, GateRefused, false},
	{"%2e.", "/_synapse/client/%2e./admin/", nil, GateRefused, false},
	{"%61dmin", "/_synapse/%61dmin/v1/users", nil, GateRefused, false},
	{"%41dmin", "/_synapse/%41dmin/v1/users", nil, GateRefused, false},
	{"%5fsynapse", "/%5fsynapse/admin/v1/users", nil, GateRefused, false},
	{"double slash inside", "/_synapse//admin/v1/users", nil, GateRefused, false},
	{"dot segment", "/_synapse/./admin/v1/users", nil, GateRefused, false},
	{"upper case root", "/_SYNAPSE/admin/v1/users", nil, GateRefused, false},
	{"upper case admin", "/_synapse/ADMIN/v1/users", nil, GateRefused, false},
	{"upper case matrix", "/_Matrix/client/v3/sync", nil, GateRefused, false},
	{"upper case federation", "/_matrix/Federation/v1/send/x", nil, GateRefused, false},
	{"admin%2F", "/_synapse/admin%2Fv1/users", nil, GateRefused, false},
	{"admin%2f..", "/_synapse/admin%2f..%2f..%2fclient/x", nil, GateRefused, false},
	{"synapse%2Fadmin", "/_synapse%2Fadmin/v1/users", nil, GateRefused, false},
	{"client ..%2F", "/_synapse/client/..%2Fadmin/v1/users", nil, GateRefused, false},
	{"client ..%2f", "/_synapse/client/..%2fadmin/v1/users", nil, GateRefused, false},
	{"matrix ..%2F chain", roomState + "m.custom/..%2F..%2F..%2F..%2F..%2F..%2F..%2F_synapse%2Fadmin%2Fv1", nil, GateRefused, false},
	{"matrix %2e%2e%2f chain", roomState + "m.custom/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f_synapse%2fadmin%2f", nil, GateRefused, false},
	{"key ..%2f", "/_matrix/key/..%2f..%2f_synapse/admin/", nil, GateRefused, false},
	{"%5C dotdot", "/_matrix/client/..%5C..%5C_synapse%5Cadmin%5Cv1", nil, GateRefused, false},
	{"raw backslash dotdot", "/_matrix/client/..\\..\\_synapse\\admin\\v1", nil, GateRefused, false},
	{"raw backslash admin", "/_synapse\\admin/v1/users", nil, GateRefused, false},
	{"%5C admin", "/_synapse%5Cadmin/v1/users", nil, GateRefused, false},
	{"%5c admin", "/_synapse%5cadmin/v1/users", nil, GateRefused, false},
	{"jsessionid root", "/_synapse;x/admin/v1/users", nil, GateRefused, false},
	{"jsessionid admin", "/_synapse/admin;jsessionid=1/v1/users", nil, GateRefused, false},
	{"%3B params", "/_synapse/admin%3Bx/v1/users", nil, GateRefused, false},
	{"dotdot;", "/_matrix/..;/_synapse/admin/v1/users", nil, GateRefused, false},
	{"dotdot;x", "/_matrix/client/..;x/..;y/_synapse/admin/", nil, GateRefused, false},
	{"replication via dotdot", "/_matrix/client/../../_synapse/replication", nil, GateRefused, false},
	{"metrics via %2e", "/_matrix/%2e%2e/_synapse/metrics", nil, GateRefused, false},
	{"dotdot out of client", "/_matrix/client/v3/%2e%2e/%2e%2e/_synapse/admin/v1/users", nil, GateRefused, false},
	{"dotdot client to media", "/_matrix/client/../media/v3/upload", nil, GateRefused, false},
	{"dotdot federation to key", "/_matrix/federation/v1/../../key/v2/server", nil, GateRefused, false},
	{"dotdot to matrix root", "/_matrix/client/..", nil, GateRefused, false},
	{"state key dotdot chain", roomState + "m.custom/../../../../../..", nil, GateRefused, false},
	{"state key dotdot chain to api", roomState + "m.custom/../../../../..", nil, GateMatrix, true},
	{"event type dotdot", roomState + "../x", nil, GateMatrix, true},
	{"federation to client", "/_matrix/federation/../client/v3/login", nil, GateRefused, false},
	{"client to federation", "/_matrix/client/../federation/v1/send/x", nil, GateRefused, false},
	{"well-known escape", "/.well-known/matrix/../../_synapse/admin/v1", nil, GateRefused, false},
	{"%3F dotdot", "/_synapse/admin%3F/../../_matrix/client/x", nil, GateRefused, false},
	{"matrix %3F dotdot to admin", "/_matrix/client/%3F/../../../_synapse/admin/", nil, GateRefused, false},
	{"overlong dot", "/_matrix/%c0%ae%c0%ae/_synapse/admin/", nil, GateRefused, false},
	{"overlong dot upper", "/_matrix/client/%C0%AE", nil, GateRefused, false},
	{"overlong 3 byte", "/_matrix/%e0%80%ae%e0%80%ae/_synapse/admin/", nil, GateRefused, false},
	{"overlong slash", "/_matrix/..%c0%af_synapse/admin/", nil, GateRefused, false},
	{"raw overlong", "/_matrix/\xc0\xae\xc0\xae/_synapse/admin/", nil, GateRefused, false},
	{"lone %ff", "/_matrix/client/%ff", nil, GateRefused, false},
	{"surrogate", "/_matrix/client/%ed%a0%80", nil, GateRefused, false},
	{"truncated utf-8", "/_matrix/client/%e2%9c", nil, GateRefused, false},
	{"NUL encoded", "/_matrix/client/%00", nil, GateRefused, false},
	{"NUL encoded admin", "/_synapse/admin%00/v1", nil, GateRefused, false},
	{"NUL raw", "/_matrix/client/\x00", nil, GateRefused, false},
	{"LF encoded", "/_matrix/client/%0a", nil, GateRefused, false},
	{"CR encoded", "/_matrix/client/%0D%0AX-Injected:%201", nil, GateRefused, false},
	{"tab raw", "/_matrix/client/\t", nil, GateRefused, false},
	{"DEL encoded", "/_matrix/client/%7f", nil, GateRefused, false},
	{"DEL raw", "/_matrix/client/\x7f", nil, GateRefused, false},
	{"double slash start", "//_synapse/admin/v1/users", nil, GateRefused, false},
	{"double slash host", "//evil.example/x", nil, GateRefused, false},
	{"slash backslash start", "/\\_synapse/admin/v1/users", nil, GateRefused, false},
	{"%2F start", "/%2F_synapse/admin/v1/users", nil, GateRefused, false},
	{"%5c start", "/%5c_synapse/admin/v1/users", nil, GateRefused, false},
	{"empty", "", nil, GateRefused, false},
	{"asterisk", "*", nil, GateRefused, false},
	{"relative", "_matrix/client/v3/sync", nil, GateRefused, false},
	{"absolute form", "http://example.org/_synapse/admin/v1/users", nil, GateRefused, false},
	{"malformed %", "/_matrix/client/%", nil, GateRefused, false},
	{"malformed %4", "/_matrix/client/%4", nil, GateRefused, false},
	{"malformed %zz", "/_matrix/client/%zz", nil, GateRefused, false},
	{"malformed %g0", "/_matrix/%g0", nil, GateRefused, false},
	{"malformed %%", "/_matrix/%%32e", nil, GateRefused, false},
	{"raw hash", "/_matrix/client/#/../../_synapse/admin/", nil, GateRefused, false},
	{"raw hash alias", "/_matrix/client/v3/directory/room/#a:b", nil, GateRefused, false},
	{"raw question mark", "/_matrix/client/v3/sync?x", nil, GateRefused, false},
	{"dotdot above root", "/../_synapse/admin/v1", nil, GateRefused, false},
	{"dotdot above root stray", "/../x", nil, GateRefused, true},

	// forward.extra_prefixes.
	{"extra root page", "/index.html", []string{"/"}, GateExtra, true},
	{"extra root", "/", []string{"/"}, GateExtra, true},
	{"extra root keeps matrix", "/_matrix/client/v3/sync", []string{"/"}, GateMatrix, true},
	{"extra root keeps admin", "/_synapse/admin/v1/users", []string{"/"}, GateAdmin, true},
	{"extra root no metrics", "/_synapse/metrics", []string{"/"}, GateRefused, true},
	{"extra root no replication", "/_synapse/replication/x", []string{"/"}, GateRefused, true},
	{"extra root no _synapse", "/_synapse", []string{"/"}, GateRefused, true},
	{"extra root no _matrix", "/_matrix", []string{"/"}, GateRefused, true},
	{"extra root _synapsex", "/_synapsex/y", []string{"/"}, GateExtra, true},
	{"extra root upper admin", "/_SYNAPSE/admin/v1", []string{"/"}, GateRefused, false},
	{"extra root upper metrics", "/_Synapse/metrics", []string{"/"}, GateRefused, false},
	{"extra root dotdot admin", "/x/../_synapse/admin/v1", []string{"/"}, GateRefused, false},
	{"extra root %2e admin", "/x/%2e%2e/_synapse/admin/v1", []string{"/"}, GateRefused, false},
	{"extra root dotdot metrics", "/x/../_synapse/metrics", []string{"/"}, GateRefused, false},
	{"extra root %23 cut", "/_synapse%23/admin/x", []string{"/"}, GateRefused, false},
	{"extra root %3F cut", "/_synapse%3F/x", []string{"/"}, GateRefused, false},
	{"extra root dotdot harmless", "/a/../b", []string{"/"}, GateExtra, true},
	{"extra mas", "/_synapse/mas/x", []string{"/_synapse/mas/"}, GateExtra, true},
	{"extra mas not admin", "/_synapse/admin/x", []string{"/_synapse/"}, GateAdmin, true},
	{"extra static", "/static/app.js", []string{"/static/"}, GateExtra, true},
	{"extra static other", "/other", []string{"/static/"}, GateRefused, true},
	{"extra static upper", "/STATIC/app.js", []string{"/static/"}, GateRefused, false},
	{"extra static escape", "/static/../_synapse/admin/v1", []string{"/static/"}, GateRefused, false},
	{"extra static %2f escape", "/static/..%2f_synapse%2fadmin%2fv1", []string{"/static/"}, GateRefused, false},
	{"extra empty entry", "/x", []string{""}, GateRefused, true},
}

func TestCheckPath(t *testing.T) {
	for _, tc := range pathCases {
		t.Run(tc.name, func(t *testing.T) {
			g, ok := CheckPath(tc.raw, tc.extra)
			if g != tc.wantGate || ok != tc.wantOK {
				t.Errorf("CheckPath(%q, %q) = %v, %v; want %v, %v", tc.raw, tc.extra, g, ok, tc.wantGate, tc.wantOK)
			}
		})
	}
}

func TestCheckPathLong(t *testing.T) {
	long := "/_matrix/client/v3/rooms/%21r%3Aexample.org/state/m.custom/" + strings.Repeat("a%2F", 300)
	tests := []struct {
		name     string
		raw      string
		wantGate Gate
		wantOK   bool
	}{
		{"long ok", long, GateMatrix, true},
		{"long escape", long + strings.Repeat("/..", 10) + "/_synapse/admin/v1", GateRefused, false},
		{"long dot segments", "/_matrix/client/" + strings.Repeat("./", 400) + "sync", GateMatrix, true},
		{"long dotdot escape", "/_matrix/" + strings.Repeat("a/../", 200) + "../_synapse/admin/", GateRefused, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, ok := CheckPath(tc.raw, nil)
			if g != tc.wantGate || ok != tc.wantOK {
				t.Errorf("CheckPath(len %d) = %v, %v; want %v, %v", len(tc.raw), g, ok, tc.wantGate, tc.wantOK)
			}
		})
	}
}

func TestPathViews(t *testing.T) {
	tests := []struct {
		raw, wantB, wantC string
	}{
		{"/", "/", "/"},
		{"/a/b", "/a/b", "/a/b"},
		{"/a/b/", "/a/b/", "/a/b/"},
		{"/a//b", "/a/b", "/a/b"},
		{"/a/./b/../c", "/a/c", "/a/c"},
		{"/a/b/..", "/a/", "/a/"},
		{"/a/b/.", "/a/b/", "/a/b/"},
		{"/..", "/", "/"},
		{"/a%2Fb/..", "/", "/a/"},
		{"/a%2e%2E/b", "/a../b", "/a../b"},
		{"/x/%2e%2e/y", "/y", "/y"},
		{"/A%5Cb;c/d", "/A\\b;c/d", "/A/b/d"},
		{"/a;b/..;c/d", "/a;b/..;c/d", "/d"},
		{"/p%3Fq/..", "/", "/p"},
	}
	var segs [64]int32
	for _, tc := range tests {
		if got, _ := pathViewSegments(nil, segs[:0], tc.raw); string(got) != tc.wantB {
			t.Errorf("view B of %q = %q, want %q", tc.raw, got, tc.wantB)
		}
		if got, _ := pathViewLoose(nil, segs[:0], tc.raw, pathBackslash|pathSemicolon|pathCut); string(got) != tc.wantC {
			t.Errorf("view C of %q = %q, want %q", tc.raw, got, tc.wantC)
		}
	}
}

func TestCheckPathAllocs(t *testing.T) {
	extra := []string{"/static/"}
	for _, raw := range []string{
		"/_matrix/client/v3/sync",
		roomState + "m.room.member/..",
		"/_matrix/client/v3/rooms/%21r%3Aexample.org/state/m.custom/%E2%9C%93%2F%5C;x%3F" + strings.Repeat("a", 400),
		"/_matrix/../_synapse/admin/v1/users",
	} {
		if n := testing.AllocsPerRun(100, func() { CheckPath(raw, extra) }); n != 0 {
			t.Errorf("CheckPath(%.40q...) allocates %v times, want 0", raw, n)
		}
	}
}

// FuzzCheckPath checks CheckPath's invariants against independent
// reimplementations of the views on top of net/url and path.
func FuzzCheckPath(f *testing.F) {
	for _, tc := range pathCases {
		f.Add(tc.raw, strings.Join(tc.extra, ","))
	}
	f.Fuzz(func(t *testing.T, raw, extras string) {
		var extra []string
		if extras != "" {
			extra = strings.Split(extras, ",")
		}
		g, ok := CheckPath(raw, extra)
		if !ok {
			if g != GateRefused {
				t.Fatalf("CheckPath(%q) = %v, false; want GateRefused with ok false", raw, g)
			}
			return
		}
		if g == GateAdmin && !strings.HasPrefix(raw, "/_synapse/admin/") {
			t.Fatalf("CheckPath(%q) = admin for a path outside /_synapse/admin/", raw)
		}
		if rg := pathGate(raw, extra, false); rg != g {
			t.Fatalf("CheckPath(%q) = %v, raw gate is %v", raw, g, rg)
		}
		if strings.ContainsAny(raw, "\x00#?") || strings.HasPrefix(raw, "//") || !strings.HasPrefix(raw, "/") {
			t.Fatalf("CheckPath(%q) ok for a forbidden path", raw)
		}
		// View B, rebuilt with net/url: split on '/', unescape each segment.
		segs := strings.Split(raw[1:], "/")
		for i, s := range segs {
			u, err := url.PathUnescape(s)
			if err != nil {
				t.Fatalf("CheckPath(%q) ok with a malformed escape: %v", raw, err)
			}
			segs[i] = u
		}
		if b := fuzzResolve(segs); pathGate(b, extra, false) != g {
			t.Fatalf("CheckPath(%q) = %v, view B %q is %v", raw, g, b, pathGate(b, extra, false))
		}
		// Fully decoded and cleaned with package path, in several spellings.
		dec, _ := url.PathUnescape(raw)
		for _, v := range []struct {
			s    string
			fold bool
		}{
			{dec, false},
			{strings.ReplaceAll(dec, "\\", "/"), false},
			{fuzzLowerASCII(dec), true},
			{fuzzLowerASCII(strings.ReplaceAll(dec, "\\", "/")), true},
		} {
			c := path.Clean(v.s)
			if strings.HasSuffix(v.s, "/") || strings.HasSuffix(v.s, "/.") || strings.HasSuffix(v.s, "/..") {
				c = strings.TrimSuffix(c, "/") + "/"
			}
			if cg := pathGate(c, extra, v.fold); cg != g {
				t.Fatalf("CheckPath(%q) = %v, cleaned view %q is %v", raw, g, c, cg)
			}
		}
	})
}

// fuzzLowerASCII folds ASCII letters only, as CheckPath documents (Unicode
// folding would turn U+212A KELVIN SIGN into 'k').
func fuzzLowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// fuzzResolve joins decoded segments, dropping empty and dot segments.
func fuzzResolve(segs []string) string {
	var out []string
	dir := false
	for _, s := range segs {
		dir = true
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
			dir = false
		}
	}
	p := "/" + strings.Join(out, "/")
	if dir && p != "/" {
		p += "/"
	}
	return p
}

func TestValidQuery(t *testing.T) {
	corpus := []string{
		"", "a", "a=b", "a=b&c=d", "a=%41", "a=%4", "a=%", "%", "%%", "%zz", "a=%e2%9c%93",
		"a;b", "a=b;c=d", ";", "a=b&;", "&&", "=", "a==b", "a=+b", "access_token=abc&from=s1_2",
		"filter=%7B%22room%22%3A%7B%7D%7D", "since=s72594_4483_1934&timeout=30000", "a=%GG",
		"a=\x00", "a=%00", "a=b#c", "a=b?c", "%41%42=%43", "a%3Bb=c", "a=b%", "a=b%2",
		strings.Repeat("&", 9999), strings.Repeat("&", 10000), strings.Repeat("a&", 10000),
	}
	for _, q := range corpus {
		_, err := url.ParseQuery(q)
		if got, want := ValidQuery(q), err == nil; got != want {
			t.Errorf("ValidQuery(%.40q) = %v, want %v (ParseQuery: %v)", q, got, want, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ValidQuery("since=s1_2&timeout=30000&filter=%7B%7D") }); n != 0 {
		t.Errorf("ValidQuery allocates %v times, want 0", n)
	}
}

func FuzzValidQuery(f *testing.F) {
	for _, q := range []string{"", "a=b&c=%41", "a;b", "%4", "x=%zz&y"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		_, err := url.ParseQuery(q)
		if got, want := ValidQuery(q), err == nil; got != want {
			t.Fatalf("ValidQuery(%q) = %v, want %v (ParseQuery: %v)", q, got, want, err)
		}
	})
}

func BenchmarkCheckPath(b *testing.B) {
	extra := []string{"/static/"}
	for _, bc := range []struct{ name, raw string }{
		{"plain", "/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/txn123"},
		{"escaped", "/_matrix/client/v3/rooms/%21r%3Aexample.org/state/m.room.member/%40alice%3Aexample.org"},
		{"odd", roomState + "m.custom/a%2Fb%5Cc;d%3Fe/%E2%9C%93/.."},
		{"bypass", "/_matrix/../_synapse/admin/v1/users"},
		{"long500", "/_matrix/client/v3/rooms/%21r%3Aexample.org/state/m.custom/" + strings.Repeat("a%2F", 110)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				CheckPath(bc.raw, extra)
			}
		})
	}
}

func BenchmarkValidQuery(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ValidQuery("since=s72594_4483_1934&timeout=30000&filter=%7B%22room%22%3A%7B%7D%7D")
	}
}
