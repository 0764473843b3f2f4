package proxy

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/mxedge/mxedge/ratelimit"
)

func TestClassify(t *testing.T) {
	rl := ratelimit.Of
	tests := []struct {
		method, path string
		gate         Gate
		wantClass    Class
		wantLimits   ratelimit.Categories
		wantLongPoll bool
		wantJSON     bool
	}{
		{"GET", "/_matrix/client/v3/sync", GateMatrix, ClassSync, 0, true, true},
		{"GET", "/_matrix/client/r0/sync", GateMatrix, ClassSync, 0, true, true},
		{"GET", "/_matrix/client/%76%33/%73ync", GateMatrix, ClassSync, 0, true, true},
		{"GET", "/_matrix/client/v3/events", GateMatrix, ClassSync, 0, true, true},
		{"GET", "/_matrix/client/v3/initialSync", GateMatrix, ClassSync, 0, true, true},
		{"GET", "/_matrix/client/v3/rooms/%21a%3Ab/initialSync", GateMatrix, ClassSync, 0, true, true},
		{"POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", GateMatrix, ClassSync, 0, true, true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/state/sync", GateMatrix, ClassState, rl(ratelimit.Message), false, true},
		{"GET", "/_matrix/client/v3/rooms/%21a%3Ab/events", GateMatrix, ClassClient, 0, false, true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t1", GateMatrix, ClassSend, rl(ratelimit.Message), false, true},
		{"PUT", "/_matrix/client/r0/rooms/!a:b/send/m.room.message/t1", GateMatrix, ClassSend, rl(ratelimit.Message), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message", GateMatrix, ClassSend, rl(ratelimit.Message), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/send/requestToken", GateMatrix, ClassSend, rl(ratelimit.Message), false, true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/redact/%24e/t", GateMatrix, ClassSend, rl(ratelimit.Message), false, true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/%73end/m.room.message/t1", GateMatrix, ClassSend, rl(ratelimit.Message), false, true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/state/m.room.topic/", GateMatrix, ClassState, rl(ratelimit.Message), false, true},
		{"GET", "/_matrix/client/v3/rooms/%21a%3Ab/state/m.room.topic/", GateMatrix, ClassState, 0, false, true},
		{"POST", "/_matrix/client/v3/createRoom", GateMatrix, ClassClient, rl(ratelimit.Message, ratelimit.RoomCreation), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/upgrade", GateMatrix, ClassClient, rl(ratelimit.RoomCreation), false, true},
		{"POST", "/_matrix/client/v3/login", GateMatrix, ClassLogin, rl(ratelimit.LoginAddress, ratelimit.LoginAccount, ratelimit.LoginFailedAttempts), false, true},
		{"GET", "/_matrix/client/v3/login", GateMatrix, ClassLogin, 0, false, true},
		{"POST", "/_matrix/client/v3/logout/all", GateMatrix, ClassLogin, 0, false, true},
		{"POST", "/_matrix/client/v3/register", GateMatrix, ClassRegister, rl(ratelimit.Registration), false, true},
		{"GET", "/_matrix/client/v3/register/available", GateMatrix, ClassRegister, 0, false, true},
		{"POST", "/_matrix/client/v3/register/email/requestToken", GateMatrix, ClassRegister, rl(ratelimit.ThreePIDValidation), false, true},
		{"POST", "/_matrix/client/v3/account/3pid/email/requestToken", GateMatrix, ClassClient, rl(ratelimit.ThreePIDValidation), false, true},
		{"POST", "/_matrix/client/v3/account/password/msisdn/requestToken", GateMatrix, ClassClient, rl(ratelimit.ThreePIDValidation), false, true},
		{"GET", "/_matrix/client/v1/register/m.login.registration_token/validity", GateMatrix, ClassRegister, rl(ratelimit.RegistrationTokenValidity), false, true},
		{"POST", "/_matrix/client/v3/join/%23room%3Ab", GateMatrix, ClassClient, rl(ratelimit.JoinsLocal, ratelimit.JoinsPerRoom), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/join", GateMatrix, ClassClient, rl(ratelimit.JoinsLocal, ratelimit.JoinsPerRoom), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/invite", GateMatrix, ClassClient, rl(ratelimit.InvitesPerIssuer, ratelimit.InvitesPerUser, ratelimit.InvitesPerRoom), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/report/%24e", GateMatrix, ClassClient, rl(ratelimit.Reports), false, true},
		{"POST", "/_matrix/client/v3/rooms/%21a%3Ab/report", GateMatrix, ClassClient, rl(ratelimit.Reports), false, true},
		{"POST", "/_matrix/client/v3/users/%40u%3Ab/report", GateMatrix, ClassClient, rl(ratelimit.Reports), false, true},
		{"PUT", "/_matrix/client/v3/presence/%40u%3Ab/status", GateMatrix, ClassClient, rl(ratelimit.PresencePerUser), false, true},
		{"GET", "/_matrix/client/v3/presence/%40u%3Ab/status", GateMatrix, ClassClient, 0, false, true},
		{"POST", "/_matrix/client/v3/user_directory/search", GateMatrix, ClassClient, rl(ratelimit.UserDirectory), false, true},
		{"POST", "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/abc", GateMatrix, ClassClient, rl(ratelimit.DelayedEventMgmt), false, true},
		{"POST", "/_matrix/media/v3/upload", GateMatrix, ClassMediaUpload, 0, false, false},
		{"PUT", "/_matrix/media/v3/upload/b/abc", GateMatrix, ClassMediaUpload, 0, false, false},
		{"POST", "/_matrix/media/v1/create", GateMatrix, ClassMediaUpload, rl(ratelimit.MediaCreate), false, false},
		{"GET", "/_matrix/media/v3/download/b/abc", GateMatrix, ClassMediaDownload, 0, true, false},
		{"GET", "/_matrix/media/r0/thumbnail/b/abc", GateMatrix, ClassMediaDownload, 0, true, false},
		{"GET", "/_matrix/client/v1/media/download/b/abc/name.png", GateMatrix, ClassMediaDownload, 0, true, false},
		{"GET", "/_matrix/client/v1/media/config", GateMatrix, ClassMedia, 0, false, false},
		{"GET", "/_matrix/media/v3/config", GateMatrix, ClassMedia, 0, false, false},
		{"PUT", "/_matrix/federation/v1/send/t", GateFederation, ClassFederation, 0, false, false},
		{"GET", "/_matrix/key/v2/server", GateFederation, ClassFederation, 0, false, false},
		{"GET", "/_matrix/client/versions", GateMatrix, ClassClient, 0, false, true},
		{"OPTIONS", "/_matrix/client/v3/login", GateMatrix, ClassPreflight, 0, false, true},
		{"GET", "/_synapse/admin/v1/users", GateAdmin, ClassAdmin, 0, false, false},
		{"GET", "/_synapse/client/pick_idp", GateSynapseClient, ClassSynapseClient, 0, false, false},
		{"GET", "/.well-known/matrix/client", GateWellKnown, ClassWellKnown, 0, false, false},
		{"GET", "/_synapse/metrics", GateRefused, ClassRefused, 0, false, false},
	}
	for _, tt := range tests {
		gate, ok := CheckPath(tt.path, nil)
		if !ok || gate != tt.gate {
			t.Errorf("CheckPath(%q) = %v, %v; want %v, true", tt.path, gate, ok, tt.gate)
			continue
		}
		r := classify(tt.method, tt.path, gate)
		if r.Class != tt.wantClass || r.Limits != tt.wantLimits || r.LongPoll != tt.wantLongPoll || r.JSONBody != tt.wantJSON {
			t.Errorf("%s %s: got class %v limits %b longpoll %v json %v; want %v %b %v %v",
				tt.method, tt.path, r.Class, r.Limits, r.LongPoll, r.JSONBody, tt.wantClass, tt.wantLimits, tt.wantLongPoll, tt.wantJSON)
		}
	}
}

// TestClassifyMatchesRateLimitTable checks the route table against the
// method+path → categories cases the ratelimit package documents.
func TestClassifyMatchesRateLimitTable(t *testing.T) {
	b, err := os.ReadFile("../ratelimit/testdata/routes.json")
	if err != nil {
		t.Fatalf("ratelimit route cases: %v", err)
	}
	var doc struct {
		Cases []struct {
			Method string   `json:"method"`
			Path   string   `json:"path"`
			Want   []string `json:"want"`
			Note   string   `json:"note"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	cases := doc.Cases
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		want, err := ratelimit.ParseCategories(c.Want)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := Classify(c.Method, c.Path, nil)
		if got := r.Limits; got != want {
			t.Errorf("%s %s (%s): categories %v, want %v", c.Method, c.Path, c.Note, got, want)
		}
	}
}

func TestSegEq(t *testing.T) {
	tests := []struct {
		seg, lit string
		want     bool
	}{
		{"sync", "sync", true}, {"%73ync", "sync", true}, {"%73YNC", "sync", false},
		{"syn", "sync", false}, {"%7", "sync", false}, {"%zzync", "sync", false}, {"sync%", "sync", false},
	}
	for _, tt := range tests {
		if got := segEqDecoded(tt.seg, tt.lit); got != tt.want {
			t.Errorf("segEqDecoded(%q, %q) = %v, want %v", tt.seg, tt.lit, got, tt.want)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	paths := []string{
		"/_matrix/client/v3/sync",
		"/_matrix/client/v3/rooms/%21abcdefgh%3Aexample.org/send/m.room.message/m1234567",
		"/_matrix/client/v3/login",
		"/_matrix/media/v3/download/example.org/abcdef",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := paths[i%len(paths)]
		Classify("PUT", p, nil)
	}
}

// A path whose normalised views (dot segments resolved, ';' cut, '\\' as a
// separator, escapes decoded) would get other rate-limit categories than the
// raw path is refused: an upstream that normalises it must not see a login
// the edge did not limit as one.
func TestClassifyViewsMustAgree(t *testing.T) {
	tests := []struct {
		method, path string
		wantOK       bool
	}{
		{"POST", "/_matrix/client/v3/./login", false},
		{"POST", "/_matrix/client/v3/%2e/login", false},
		{"POST", "/_matrix/client/v3/login;x", false},
		{"POST", "/_matrix/client/v3/login%3Bx", false},
		{"POST", "/_matrix/client/v3/x/../login", false},
		{"POST", "/_matrix/client/v3/register/.", false},
		{"POST", "/_matrix/client/v3//login", true}, // empty segments skipped: limited as a login
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/./send/m.room.message/t1", false},
		{"POST", "/_matrix/client/v3/createRoom/.", true}, // limited as createRoom either way
		{"POST", "/_matrix/client/v3/x\\..\\login", false},
		{"POST", "/_matrix/client/v3/x%5C..%5Clogin", false},
		{"POST", "/_matrix/client/v3/login\\x", true},  // "login/x" is no login either
		{"GET", "/_matrix/client/v3/./sync", true},     // the same long-poll either way
		{"GET", "/_matrix/client/v3/./versions", true}, // no category either way
		{"POST", "/_matrix/client/v3/login", true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t%2F1", true},
		{"PUT", "/_matrix/client/v3/rooms/%21a%3Ab/state/m.type/a%2Fb", true},
		{"POST", "/_matrix/client/v3/join/%23a%2Fb%3As", true},
		{"GET", "/_matrix/client/v3/profile/%40a%2Fb%3As/displayname", true},
	}
	for _, tt := range tests {
		r, ok := Classify(tt.method, tt.path, nil)
		if ok != tt.wantOK {
			t.Errorf("Classify(%s %q) ok = %v (route %+v), want %v", tt.method, tt.path, ok, r, tt.wantOK)
		}
		if !ok && (r.Gate != GateRefused || r.Limits != 0) {
			t.Errorf("Classify(%s %q) refused with route %+v, want refused and no categories", tt.method, tt.path, r)
		}
	}
}
