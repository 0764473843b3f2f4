package workers

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func allRoles() map[string]string {
	m := map[string]string{}
	for _, r := range Roles {
		m[r] = r + "-pool"
	}
	return m
}

func mustRouter(t testing.TB, roles map[string]string) *Router {
	t.Helper()
	tab, err := Synapse()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(tab, roles)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func role(r *Router, method, path string) string {
	i, ok := r.Route(method, path)
	if !ok {
		return Main
	}
	return r.Targets()[i].Role
}

// instances turns a segment pattern into concrete paths: alternatives
// expanded, * an ID as clients send it (percent-encoded), x* x plus more,
// ** one segment, two segments, and a trailing slash.
func instances(t *testing.T, p string) []string {
	t.Helper()
	plain, err := expand(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range plain {
		variants := []string{""}
		segs := strings.Split(q[1:], "/")
		for si, seg := range segs {
			var next []string
			for _, v := range variants {
				switch {
				case seg == "**" && si == len(segs)-1:
					next = append(next, v+"/a", v+"/a/b", v+"/")
				case seg == "**":
					next = append(next, v+"/a", v+"/a/b")
				case seg == "*":
					next = append(next, v+"/%21room%3Aexample.org")
				case strings.HasSuffix(seg, "*"):
					next = append(next, v+"/"+strings.TrimSuffix(seg, "*")+"x")
				default:
					next = append(next, v+"/"+seg)
				}
			}
			variants = next
		}
		out = append(out, variants...)
	}
	return out
}

// Every documented endpoint, instantiated, reaches the role of the first rule
// whose workers.md regular expression matches it: the compiled segment
// matcher and the documentation agree, for GET and for PUT.
func TestDocumentedEndpoints(t *testing.T) {
	tab, err := Synapse()
	if err != nil {
		t.Fatal(err)
	}
	if tab.Synapse == "" || len(tab.Commit) != 40 {
		t.Fatalf("the data file names no Synapse version and commit: %q %q", tab.Synapse, tab.Commit)
	}
	r := mustRouter(t, allRoles())
	type compiled struct {
		role    string
		getOnly bool
		res     []*regexp.Regexp
		paths   []string
	}
	var rules []compiled
	n := 0
	for _, rule := range tab.Rules {
		c := compiled{role: rule.Role, getOnly: slices.Equal(rule.Methods, []string{"GET"})}
		for _, p := range rule.Patterns {
			if p.Regex != "" {
				c.res = append(c.res, regexp.MustCompile(p.Regex))
			} else {
				// mxedge's own entries: the pattern itself, as a regular expression.
				c.res = append(c.res, patternRegexp(t, p.Path))
			}
			c.paths = append(c.paths, p.Path)
		}
		rules = append(rules, c)
	}
	expect := func(method, path string) string {
		for _, c := range rules {
			if c.getOnly && method != "GET" {
				continue
			}
			for _, re := range c.res {
				if re.MatchString(path) {
					return c.role
				}
			}
		}
		return Main
	}
	for _, c := range rules {
		for i, p := range c.paths {
			for _, path := range instances(t, p) {
				n++
				if !c.res[i].MatchString(path) {
					t.Errorf("%s: example %q of %q does not match its documented expression %s", c.role, path, p, c.res[i])
				}
				for _, method := range []string{"GET", "PUT"} {
					if got, want := role(r, method, path), expect(method, path); got != want {
						t.Errorf("%s %s: routed to %s, workers.md says %s", method, path, got, want)
					}
				}
			}
		}
	}
	if n < 300 {
		t.Errorf("only %d examples checked", n)
	}
	t.Logf("%d documented endpoint examples checked against Synapse %s", n, tab.Synapse)
}

// patternRegexp is the regular expression a segment pattern stands for.
func patternRegexp(t *testing.T, p string) *regexp.Regexp {
	plain, err := expand(p)
	if err != nil {
		t.Fatal(err)
	}
	var alts []string
	for _, q := range plain {
		var b strings.Builder
		for seg := range strings.SplitSeq(q[1:], "/") {
			switch {
			case seg == "**":
				b.WriteString("/.*")
			case seg == "*":
				b.WriteString("/[^/]+")
			case strings.HasSuffix(seg, "*"):
				b.WriteString("/" + regexp.QuoteMeta(strings.TrimSuffix(seg, "*")) + "[^/]*")
			default:
				b.WriteString("/" + regexp.QuoteMeta(seg))
			}
		}
		alts = append(alts, b.String())
	}
	return regexp.MustCompile("^(" + strings.Join(alts, "|") + ")$")
}

// Requests as clients and servers send them, to the role they must reach
// with every role configured.
func TestRouteExamples(t *testing.T) {
	r := mustRouter(t, allRoles())
	tests := []struct{ method, path, want string }{
		{"GET", "/_matrix/client/v3/sync", "synchrotron"},
		{"GET", "/_matrix/client/r0/sync", "synchrotron"},
		{"GET", "/_matrix/client/v3/events", "synchrotron"},
		{"GET", "/_matrix/client/v3/rooms/%21r%3Ax/initialSync", "synchrotron"},
		{"POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", "synchrotron"},
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1", "event_creator"},
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Ax/state/m.room.topic/", "event_creator"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Ax/join", "event_creator"},
		{"POST", "/_matrix/client/v3/join/%23a%3Ax", "event_creator"},
		{"POST", "/_matrix/client/v3/knock/%21r%3Ax", "event_creator"},
		{"POST", "/_matrix/client/v3/createRoom", "event_creator"},
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Ax/typing/%40u%3Ax", "typing"},
		{"PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/t1", "to_device"},
		{"PUT", "/_matrix/client/v3/user/%40u%3Ax/account_data/m.direct", "account_data"},
		{"PUT", "/_matrix/client/v3/user/%40u%3Ax/rooms/%21r%3Ax/tags/u.work", "account_data"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Ax/receipt/m.read/%24e", "receipts"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Ax/read_markers", "receipts"},
		{"PUT", "/_matrix/client/v3/presence/%40u%3Ax/status", "presence"},
		{"PUT", "/_matrix/client/v3/pushrules/global/override/r", "push_rules"},
		{"POST", "/_matrix/client/v3/keys/upload", "device_lists"},
		{"GET", "/_matrix/client/v3/devices", "device_lists"},
		{"POST", "/_matrix/client/v3/keys/query", "client_reader"},
		{"GET", "/_matrix/client/v3/rooms/%21r%3Ax/messages", "client_reader"},
		{"GET", "/_matrix/client/versions", "client_reader"},
		{"POST", "/_matrix/client/v3/login", "client_reader"},
		{"GET", "/_matrix/client/v3/login/sso/redirect/oidc", "client_reader"},
		{"GET", "/_synapse/client/oidc/callback", "client_reader"},
		{"PUT", "/_matrix/federation/v1/send/txn1", "federation_inbound"},
		{"GET", "/_matrix/federation/v1/event/%24e", "federation_reader"},
		{"PUT", "/_matrix/federation/v2/send_join/%21r%3Ax/%24e", "federation_reader"},
		{"POST", "/_matrix/key/v2/query", "federation_reader"},
		{"GET", "/_matrix/media/v3/download/x/abc", "media_repository"},
		{"GET", "/_matrix/client/v1/media/thumbnail/x/abc", "media_repository"},
		{"GET", "/_matrix/federation/v1/media/download/abc", "media_repository"},
		{"POST", "/_synapse/admin/v1/purge_media_cache", "media_repository"},
		{"POST", "/_synapse/admin/v1/room/%21r%3Ax/media/quarantine", "media_repository"},
		// Main only, and not listed at all.
		{"POST", "/_matrix/client/v3/rooms/%21r%3Ax/upgrade", Main},
		{"POST", "/_matrix/client/v3/account/password", Main},
		{"POST", "/_matrix/client/v3/pushers/set", Main},
		{"GET", "/_matrix/client/v3/thirdparty/protocols", Main},
		{"GET", "/_synapse/admin/v1/users/%40u%3Ax", Main},
		// Keywords compared decoded, as mxedge's classifier reads them.
		{"GET", "/_matrix/client/v3/%73ync", "synchrotron"},
	}
	for _, tt := range tests {
		if got := role(r, tt.method, tt.path); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
}

// A rule whose role is not configured is skipped: the request goes to the
// next rule that matches (GET push rules to the generic client reader, as
// workers.md allows), else to the main process.
func TestUnconfiguredRolesSkipped(t *testing.T) {
	r := mustRouter(t, map[string]string{"client_reader": "readers"})
	for _, tt := range []struct{ method, path, want string }{
		{"GET", "/_matrix/client/v3/pushrules/", "client_reader"},
		{"PUT", "/_matrix/client/v3/pushrules/global/override/r", Main},
		{"GET", "/_matrix/client/v3/sync", Main},
		{"POST", "/_matrix/client/v3/keys/upload", "client_reader"},
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1", Main},
	} {
		if got := role(r, tt.method, tt.path); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.method, tt.path, got, tt.want)
		}
	}
	if _, err := NewRouter(mustTable(t), map[string]string{"synchrotrons": "x"}); err == nil {
		t.Error("an unknown role was accepted")
	}
}

func mustTable(t *testing.T) *Table {
	tab, err := Synapse()
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestKeys(t *testing.T) {
	a, ok1 := RoomKey("/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1")
	b, ok2 := RoomKey("/_matrix/client/v3/rooms/!r:x/typing/@u:x")
	if !ok1 || !ok2 || a != b {
		t.Errorf("one room, two spellings: %x %x", a, b)
	}
	if _, ok := RoomKey("/_matrix/client/v3/createRoom"); ok {
		t.Error("createRoom names a room")
	}
	o1, ok1 := OriginKey(`X-Matrix origin="Remote.example",destination="example.org",key="ed25519:a",sig="s"`)
	o2, ok2 := OriginKey(`X-Matrix origin=remote.example,key="ed25519:b",sig="t"`)
	if !ok1 || !ok2 || o1 != o2 {
		t.Errorf("one origin: %x %v %x %v", o1, ok1, o2, ok2)
	}
	if _, ok := OriginKey("Bearer syt_x"); ok {
		t.Error("a bearer token named an origin")
	}
	for _, tt := range []struct {
		path, query string
		want        bool
	}{
		{"/_matrix/client/v3/sync", "", true},
		{"/_matrix/client/v3/sync", "timeout=30000", true},
		{"/_matrix/client/v3/sync", "since=s1&timeout=30000", false},
		{"/_matrix/client/v3/sync", "since=s1&full_state=true", true},
		{"/_matrix/client/v3/sync", "since=", true},
		{"/_matrix/client/v3/events", "from=s1", false},
		{"/_matrix/client/v3/events", "", true},
		{"/_matrix/client/v3/initialSync", "", true},
		{"/_matrix/client/v3/rooms/%21r%3Ax/initialSync", "", true},
		{"/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", "pos=1", false},
		{"/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", "", true},
	} {
		if got := Initial(tt.path, tt.query); got != tt.want {
			t.Errorf("Initial(%s?%s) = %v, want %v", tt.path, tt.query, got, tt.want)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	r := mustRouter(b, allRoles())
	paths := []string{
		"/_matrix/client/v3/sync",
		"/_matrix/client/v3/rooms/%21abcdefgh%3Aexample.org/send/m.room.message/m1234567",
		"/_matrix/client/v3/user/%40u%3Ax/rooms/%21r%3Ax/account_data/m.fully_read",
		"/_matrix/client/v3/thirdparty/protocols",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Route("PUT", paths[i%len(paths)])
	}
}
