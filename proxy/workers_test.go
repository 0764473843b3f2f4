package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/testkit"
	"github.com/mxedge/mxedge/workers"
)

// workerDeployment is mxedge in front of a Synapse main process and its
// workers, every member a server that answers with its own name. The main
// process answers whoami for the resolver: a token "u<N>-<device>" belongs
// to @u<N>:example.org, "bad" is refused, "down" makes whoami fail.
type workerDeployment struct {
	front   *httptest.Server
	srv     *Server
	cfg     *config.Config
	members map[string]*echoPool // by member name: "sync-a", "homeserver", …
	whoami  map[string]*atomic.Int64
	client  *http.Client
	logs    *testkit.LogRecorder
	mu      sync.Mutex
}

// workerPools are the pools of the worker deployment and their members.
var workerPools = []struct{ pool, members string }{
	{"homeserver", "homeserver"},
	{"sync", "sync-a sync-b sync-c"},
	{"initial", "initial"},
	{"creators", "creators-a creators-b"},
	{"fedin", "fedin-a fedin-b"},
	{"fedread", "fedread"},
	{"readers", "readers"},
	{"media", "media"},
	{"writers", "writers"},
}

const workersYAML = `server_name: example.org
public_baseurl: https://matrix.example.org/
upstreams:
%s
workers:
  synchrotron: sync
  initial_synchrotron: initial
  event_creator: creators
  federation_inbound: fedin
  federation_reader: fedread
  client_reader: readers
  media_repository: media
  typing: homeserver
  to_device: writers
  receipts: writers
  resolver: {enabled: %t}
rate_limits: {enabled: false}
`

func newWorkerDeployment(t testing.TB, resolver bool, health string) *workerDeployment {
	return newWorkerDeploymentLimited(t, resolver, health, "")
}

// newWorkerDeploymentLimited is newWorkerDeployment with the rate_limits
// section given (and a limiter), "" for none.
func newWorkerDeploymentLimited(t testing.TB, resolver bool, health, limits string) *workerDeployment {
	t.Helper()
	d := &workerDeployment{members: map[string]*echoPool{}, whoami: map[string]*atomic.Int64{}, logs: &testkit.LogRecorder{}}
	var pools strings.Builder
	for _, p := range workerPools {
		var urls []string
		for _, name := range strings.Fields(p.members) {
			m := d.newMember(t, name)
			urls = append(urls, `"`+m.URL+`"`)
		}
		extra := ""
		if health != "" && len(urls) > 1 {
			extra = ", " + health
		}
		fmt.Fprintf(&pools, "  %s: {members: [%s]%s}\n", p.pool, strings.Join(urls, ", "), extra)
	}
	yaml := fmt.Sprintf(workersYAML, pools.String(), resolver)
	var limiter *ratelimit.Limiter
	if limits != "" {
		yaml = strings.Replace(yaml, "rate_limits: {enabled: false}\n", limits, 1)
	}
	d.cfg = loadFullConfig(t, yaml)
	if limits != "" {
		var err error
		if limiter, err = ratelimit.New(d.cfg.RateLimits, ratelimit.Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { limiter.Close() })
	}
	srv, err := New(d.cfg, Options{Logger: d.logs.Logger(), Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	d.srv = srv
	d.front = newFront(t, srv.Handler(ListenerClient, true))
	d.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(d.front.Close)
	t.Cleanup(srv.Close)
	t.Cleanup(d.client.CloseIdleConnections)
	return d
}

// newMember starts the member called name. Every member answers its health
// path and echoes its name; the main process also answers whoami.
func (d *workerDeployment) newMember(t testing.TB, name string) *echoPool {
	t.Helper()
	p := &echoPool{name: name}
	p.Server = httptest.NewServer(d.memberHandler(p))
	t.Cleanup(p.Close)
	d.members[name] = p
	return p
}

func (d *workerDeployment) memberHandler(p *echoPool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/health" {
			return
		}
		if p.name == "homeserver" && r.URL.Path == "/_matrix/client/v3/account/whoami" {
			token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			d.mu.Lock()
			n := d.whoami[token]
			if n == nil {
				n = new(atomic.Int64)
				d.whoami[token] = n
			}
			d.mu.Unlock()
			n.Add(1)
			user, _, _ := strings.Cut(token, "-")
			switch token {
			case "bad":
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token"}`)
			case "down":
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				fmt.Fprintf(w, `{"user_id":"@%s:example.org","device_id":"D"}`, user)
			}
			return
		}
		p.mu.Lock()
		p.seen = append(p.seen, r)
		p.mu.Unlock()
		fmt.Fprintf(w, "%s %s %s", p.name, r.Method, r.RequestURI)
	})
}

// send makes a request through mxedge and returns the member that answered
// ("" and the status when mxedge answered itself).
func (d *workerDeployment) send(t *testing.T, method, target, token string, header ...string) (string, int) {
	t.Helper()
	var body io.Reader
	if method == "POST" || method == "PUT" {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, d.front.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", res.StatusCode
	}
	name, _, _ := strings.Cut(string(b), " ")
	return name, res.StatusCode
}

// poolOf returns the pool a member belongs to.
func poolOf(member string) string {
	for _, p := range workerPools {
		for _, m := range strings.Fields(p.members) {
			if m == member {
				return p.pool
			}
		}
	}
	return ""
}

// Requests, as a client or a federating server sends them, reach the role
// Synapse's workers.md gives them, and the pool configured for it.
func TestWorkerRouting(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	const xm = `X-Matrix origin="remote.example",destination="example.org",key="ed25519:1",sig="s"`
	tests := []struct {
		method, target, token, auth string
		want                        string // pool
	}{
		// Sync: synchrotron, initial syncs to initial_synchrotron.
		{"GET", "/_matrix/client/v3/sync?since=s1&timeout=30000", "u1-d1", "", "sync"},
		{"GET", "/_matrix/client/r0/sync?since=s1", "u1-d1", "", "sync"},
		{"GET", "/_matrix/client/v3/sync", "u1-d1", "", "initial"},
		{"GET", "/_matrix/client/v3/sync?since=s1&full_state=true", "u1-d1", "", "initial"},
		{"GET", "/_matrix/client/v3/sync?since=", "u1-d1", "", "initial"},
		{"GET", "/_matrix/client/v3/events?from=x", "u1-d1", "", "sync"},
		{"GET", "/_matrix/client/v3/events", "u1-d1", "", "initial"},
		{"GET", "/_matrix/client/v3/initialSync", "u1-d1", "", "initial"},
		{"GET", "/_matrix/client/v3/rooms/%21r%3Aexample.org/initialSync", "u1-d1", "", "initial"},
		{"POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?pos=5", "u1-d1", "", "sync"},
		{"POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", "u1-d1", "", "initial"},
		{"GET", "/_matrix/client/v3/sync?since=s1&access_token=u1-d1", "", "", "sync"},
		// Event sending: event creators.
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Aexample.org/send/m.room.message/t1", "u1-d1", "", "creators"},
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Aexample.org/state/m.room.topic/", "u1-d1", "", "creators"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Aexample.org/redact/%24e/t2", "u1-d1", "", "creators"},
		{"POST", "/_matrix/client/v3/join/%23room%3Aexample.org", "u1-d1", "", "creators"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Aexample.org/invite", "u1-d1", "", "creators"},
		{"POST", "/_matrix/client/v3/knock/%21r%3Aexample.org", "u1-d1", "", "creators"},
		{"POST", "/_matrix/client/v3/createRoom", "u1-d1", "", "creators"},
		// Federation: inbound transactions by origin, the rest to the reader.
		{"PUT", "/_matrix/federation/v1/send/txn1", "", xm, "fedin"},
		{"GET", "/_matrix/federation/v1/event/%24e", "", xm, "fedread"},
		{"GET", "/_matrix/federation/v1/state_ids/%21r%3Aexample.org?event_id=%24e", "", xm, "fedread"},
		{"PUT", "/_matrix/federation/v2/send_join/%21r%3Aexample.org/%24e", "", xm, "fedread"},
		{"POST", "/_matrix/key/v2/query", "", "", "fedread"},
		{"GET", "/_matrix/federation/v1/version", "", "", "fedread"},
		// Media.
		{"GET", "/_matrix/media/v3/download/example.org/abc", "", "", "media"},
		{"GET", "/_matrix/client/v1/media/thumbnail/example.org/abc?width=32&height=32", "u1-d1", "", "media"},
		{"POST", "/_matrix/media/v3/upload", "u1-d1", "", "media"},
		{"GET", "/_matrix/federation/v1/media/download/abc", "", xm, "media"},
		// Client reader: reads, pagination, SSO, GET-only lists.
		{"GET", "/_matrix/client/v3/rooms/%21r%3Aexample.org/messages?dir=b", "u1-d1", "", "readers"},
		{"GET", "/_matrix/client/v3/profile/%40u1%3Aexample.org", "u1-d1", "", "creators"}, // workers.md lists profile/ with event sending
		{"GET", "/_matrix/client/v3/publicRooms", "", "", "readers"},
		{"POST", "/_matrix/client/v3/keys/query", "u1-d1", "", "readers"},
		{"GET", "/_matrix/client/v3/login/sso/redirect?redirectUrl=x", "", "", "readers"},
		{"GET", "/_synapse/client/oidc/callback?code=c", "", "", "readers"},
		{"GET", "/_matrix/client/v3/rooms/%21r%3Aexample.org/state", "u1-d1", "", "readers"},
		// Stream writers: typing is on the main process here; to_device and
		// receipts on their writer; account_data is not configured.
		{"PUT", "/_matrix/client/v3/rooms/%21r%3Aexample.org/typing/%40u1%3Aexample.org", "u1-d1", "", "homeserver"},
		{"PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/t3", "u1-d1", "", "writers"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Aexample.org/receipt/m.read/%24e", "u1-d1", "", "writers"},
		{"POST", "/_matrix/client/v3/rooms/%21r%3Aexample.org/read_markers", "u1-d1", "", "writers"},
		{"PUT", "/_matrix/client/v3/user/%40u1%3Aexample.org/account_data/m.direct", "u1-d1", "", "homeserver"},
		// Main only, and what no rule names.
		{"POST", "/_matrix/client/v3/rooms/%21r%3Aexample.org/upgrade", "u1-d1", "", "homeserver"},
		{"POST", "/_matrix/client/v3/account/password", "u1-d1", "", "homeserver"},
		{"POST", "/_matrix/client/v3/pushers/set", "u1-d1", "", "homeserver"},
		{"GET", "/_matrix/client/versions", "", "", "readers"},
		{"GET", "/_synapse/admin/v1/server_version", "", "", "homeserver"},
		{"GET", "/_matrix/client/v3/rooms/%21r%3Aexample.org/members", "u1-d1", "", "readers"},
		// GET-only entries: push_rules is not configured, so its GET goes to
		// the generic worker and its PUT to the main process.
		{"GET", "/_matrix/client/v3/pushrules/", "u1-d1", "", "readers"},
		{"PUT", "/_matrix/client/v3/pushrules/global/override/x", "u1-d1", "", "homeserver"},
	}
	for _, tc := range tests {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		member, status := d.send(t, tc.method, tc.target, tc.token, hdr...)
		if got := poolOf(member); got != tc.want {
			t.Errorf("%s %s: reached %q (pool %q, status %d), want pool %q", tc.method, tc.target, member, got, status, tc.want)
		}
	}
}

// One user's devices (tokens) always reach one synchrotron: the resolver
// asks whoami once per token and balances by the user behind it. Users
// spread over the members.
func TestWorkerStickyByUser(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	perMember := map[string]int{}
	for u := range 60 {
		var first string
		for dev := range 3 {
			token := fmt.Sprintf("u%d-%d", u, dev)
			for range 3 {
				m, status := d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", token)
				if poolOf(m) != "sync" {
					t.Fatalf("token %s: reached %q (status %d), want the sync pool", token, m, status)
				}
				if first == "" {
					first = m
				}
				if m != first {
					t.Fatalf("user u%d: token %s reached %s, its other devices %s", u, token, m, first)
				}
			}
		}
		perMember[first]++
	}
	if len(perMember) != 3 {
		t.Errorf("60 users on members %v, want all three members used", perMember)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for token, n := range d.whoami {
		if n.Load() != 1 {
			t.Errorf("whoami asked %d times for token %s, want once (cached)", n.Load(), token)
		}
	}
}

// Without the resolver, a token is its own key: each device is sticky,
// though one user's devices may land apart.
func TestWorkerStickyByTokenWithoutResolver(t *testing.T) {
	d := newWorkerDeployment(t, false, "")
	for dev := range 20 {
		token := fmt.Sprintf("u1-%d", dev)
		first, _ := d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", token)
		for range 3 {
			if m, _ := d.send(t, "GET", "/_matrix/client/v3/sync?since=s2", token); m != first {
				t.Fatalf("token %s reached %s then %s", token, first, m)
			}
		}
	}
	if len(d.whoami) != 0 {
		t.Errorf("whoami asked for %d tokens with the resolver off, want none", len(d.whoami))
	}
}

// A refused token is never taken for a user: whoami is asked once while the
// refusal is cached, and the request goes on keyed by the token alone (the
// worker answers it with its own 401). When whoami fails, the token is
// hashed too and asked again next time.
func TestWorkerInvalidToken(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	for range 3 {
		if m, _ := d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", "bad"); poolOf(m) != "sync" {
			t.Fatalf("bad token: reached %q, want the sync pool (which answers 401)", m)
		}
		if m, _ := d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", "down"); poolOf(m) != "sync" {
			t.Fatalf("token with whoami failing: reached %q, want the sync pool", m)
		}
	}
	d.mu.Lock()
	bad, down := d.whoami["bad"].Load(), d.whoami["down"].Load()
	d.mu.Unlock()
	if bad != 1 {
		t.Errorf("whoami for a refused token: asked %d times, want 1 (refusal cached)", bad)
	}
	if down != 3 {
		t.Errorf("whoami failing: asked %d times, want 3 (failures not cached)", down)
	}
	key, res, user := d.srv.snap.Load().resolver.User(t.Context(), "bad")
	if res != workers.Invalid || user != "" || key != workers.Hash("bad") {
		t.Errorf("resolver on a refused token: got (%x, %v, %q), want the token's own hash, Invalid, no user", key, res, user)
	}
}

// Event sending is sticky by room whoever sends; createRoom by the user;
// inbound federation by the origin server, whatever its key or signature.
func TestWorkerStickyByRoomAndOrigin(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	rooms := map[string]int{}
	for r := range 20 {
		room := fmt.Sprintf("%%21room%d%%3Aexample.org", r)
		var first string
		for u := range 5 {
			for _, path := range []string{"/send/m.room.message/t", "/state/m.room.topic/", "/redact/%24e/t"} {
				m, _ := d.send(t, "PUT", "/_matrix/client/v3/rooms/"+room+path+fmt.Sprint(u), fmt.Sprintf("u%d-0", u))
				if first == "" {
					first = m
				}
				if m != first {
					t.Fatalf("room %d: %s reached %s, the room's first event %s", r, path, m, first)
				}
			}
		}
		rooms[first]++
	}
	if len(rooms) != 2 {
		t.Errorf("20 rooms on %v, want both event creators used", rooms)
	}
	for u := range 10 {
		token := fmt.Sprintf("u%d-0", u)
		first, _ := d.send(t, "POST", "/_matrix/client/v3/createRoom", token)
		if m, _ := d.send(t, "POST", "/_matrix/client/v3/createRoom", fmt.Sprintf("u%d-1", u)); m != first {
			t.Errorf("createRoom of user u%d: devices reached %s and %s", u, first, m)
		}
	}
	origins := map[string]int{}
	for o := range 20 {
		var first string
		for k := range 4 {
			auth := fmt.Sprintf(`X-Matrix origin="s%d.example",destination="example.org",key="ed25519:%d",sig="sig%d"`, o, k, k)
			m, _ := d.send(t, "PUT", fmt.Sprintf("/_matrix/federation/v1/send/txn%d", k), "", "Authorization", auth)
			if first == "" {
				first = m
			}
			if m != first {
				t.Fatalf("origin s%d.example: reached %s then %s", o, first, m)
			}
		}
		origins[first]++
	}
	if len(origins) != 2 {
		t.Errorf("20 origins on %v, want both inbound federation workers used", origins)
	}
}

// usersOn sends one sync for each of n users and returns each user's member.
func (d *workerDeployment) usersOn(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for u := range n {
		out[u], _ = d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", fmt.Sprintf("u%d-0", u))
	}
	return out
}

// Removing a member (a reload without it) moves its users and no others:
// at most its share of 1,000 users, plus a margin for the hash's spread.
func TestWorkerMemberRemovedMovesOnlyItsShare(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	const users = 1000
	before := d.usersOn(t, users)
	count := map[string]int{}
	for _, m := range before {
		count[m]++
	}
	for _, m := range []string{"sync-a", "sync-b", "sync-c"} {
		if c := count[m]; c < users/3-users/10 || c > users/3+users/10 {
			t.Errorf("member %s holds %d of %d users, want about a third", m, c, users)
		}
	}
	// Reload with sync-b gone.
	yaml := strings.Replace(d.rawYAML(t), `"`+d.members["sync-b"].URL+`", `, "", 1)
	cfg := loadFullConfig(t, yaml)
	p, err := d.srv.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	d.client.CloseIdleConnections()
	after := d.usersOn(t, users)
	moved := 0
	for u := range users {
		if before[u] == after[u] {
			continue
		}
		moved++
		if before[u] != "sync-b" {
			t.Errorf("user u%d moved from %s (still a member) to %s", u, before[u], after[u])
		}
		if after[u] == "sync-b" {
			t.Errorf("user u%d still on the removed member", u)
		}
	}
	if max := users/3 + users/20; moved > max || moved != count["sync-b"] {
		t.Errorf("%d of %d users moved, want exactly the removed member's %d (at most %d)", moved, users, count["sync-b"], max)
	}
}

// rawYAML rebuilds the configuration text of d (for reload variants).
func (d *workerDeployment) rawYAML(t *testing.T) string {
	t.Helper()
	var pools strings.Builder
	for _, p := range workerPools {
		var urls []string
		for _, name := range strings.Fields(p.members) {
			urls = append(urls, `"`+d.members[name].URL+`"`)
		}
		fmt.Fprintf(&pools, "  %s: {members: [%s]}\n", p.pool, strings.Join(urls, ", "))
	}
	return fmt.Sprintf(workersYAML, pools.String(), true)
}

// A killed member's users move to the others once a health check finds it
// down (within one health interval), and come back to it, and only they,
// once a check finds it up again.
func TestWorkerKilledMemberUsersMoveAndReturn(t *testing.T) {
	d := newWorkerDeployment(t, true, "health: {path: /health, interval: 100ms, timeout: 100ms}")
	const users = 300
	before := d.usersOn(t, users)
	victim := d.members["sync-a"]
	addr := victim.Listener.Addr().String()
	victim.Close()
	d.waitLog(t, "upstream member unhealthy", victim.URL)

	during := d.usersOn(t, users)
	for u := range users {
		switch {
		case during[u] == "sync-a" || poolOf(during[u]) != "sync":
			t.Fatalf("user u%d reached %q with sync-a down", u, during[u])
		case before[u] != "sync-a" && during[u] != before[u]:
			t.Errorf("user u%d moved from %s to %s though its member is up", u, before[u], during[u])
		}
	}

	// The member comes back on the same address.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("relisten %s: %v", addr, err)
	}
	back := &echoPool{name: "sync-a"}
	back.Server = &httptest.Server{Listener: l, Config: &http.Server{Handler: d.memberHandler(back)}}
	back.Start()
	t.Cleanup(back.Close)
	d.waitLog(t, "upstream member healthy", victim.URL)

	after := d.usersOn(t, users)
	for u := range users {
		if after[u] != before[u] {
			t.Errorf("user u%d on %s after the member returned, was on %s", u, after[u], before[u])
		}
	}
}

// waitLog waits for a log line msg naming member.
func (d *workerDeployment) waitLog(t *testing.T, msg, member string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if len(d.logs.Find(testkit.Msg(msg, "member", member))) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no log line %q for %s within 10s", msg, member)
}

// A worker pool with no member available falls back to the main process,
// except the media repository, which is answered 502 (the main process does
// not serve media once a media worker runs).
func TestWorkerFallbackToMain(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	d.members["readers"].Close()
	d.members["media"].Close()
	d.members["initial"].Close()
	// The first request to a dead single member fails (it is never
	// ejected: a pool of one member keeps it), so the fallback is for
	// pools with no member available: make them so by a reload to pools
	// of a member that fails health checks.
	yaml := strings.NewReplacer(
		`readers: {members: [`, `readers: {health: {path: /health, interval: 1h}, members: [`,
		`media: {members: [`, `media: {health: {path: /health, interval: 1h}, members: [`,
		`initial: {members: [`, `initial: {health: {path: /health, interval: 1h}, members: [`,
	).Replace(d.rawYAML(t))
	p, err := d.srv.Prepare(loadFullConfig(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	for _, url := range []string{d.members["readers"].URL, d.members["media"].URL, d.members["initial"].URL} {
		d.waitLog(t, "upstream member unhealthy", url)
	}
	if m, status := d.send(t, "GET", "/_matrix/client/v3/rooms/%21r%3Aexample.org/messages", "u1-0"); m != "homeserver" {
		t.Errorf("client_reader down: reached %q (%d), want the main process", m, status)
	}
	if m, status := d.send(t, "GET", "/_matrix/client/v3/sync", "u1-0"); m != "homeserver" {
		t.Errorf("initial_synchrotron down: reached %q (%d), want the main process", m, status)
	}
	if m, status := d.send(t, "GET", "/_matrix/media/v3/download/example.org/abc", ""); m != "" || status != http.StatusBadGateway {
		t.Errorf("media_repository down: reached %q (%d), want 502 from mxedge", m, status)
	}
}

// The role indexes table.go treats specially are the ones roleIndex gives.
func TestRoleIndexes(t *testing.T) {
	if got := roleIndex("synchrotron"); got != roleSynchrotron {
		t.Errorf("roleIndex(synchrotron) = %d, want roleSynchrotron %d", got, roleSynchrotron)
	}
	if got := roleIndex("initial_synchrotron"); got != roleInitialSynchrotron {
		t.Errorf("roleIndex(initial_synchrotron) = %d, want roleInitialSynchrotron %d", got, roleInitialSynchrotron)
	}
	if got := roleIndex(workers.Main); got != 0 {
		t.Errorf("roleIndex(main) = %d, want 0", got)
	}
	seen := map[uint8]string{}
	for _, r := range workers.Roles {
		i := roleIndex(r)
		if i == 0 || seen[i] != "" {
			t.Errorf("roleIndex(%s) = %d, clashes with %q or is main", r, i, seen[i])
		}
		seen[i] = r
	}
}

// BenchmarkWorkerDecision is the routing decision of a /sync behind workers:
// classification by Synapse's rules, the resolver's cache hit for the
// token, and the rendezvous choice of the member (acquire and release).
func BenchmarkWorkerDecision(b *testing.B) {
	d := newWorkerDeployment(b, true, "")
	snap := d.srv.snap.Load()
	ctx := context.Background()
	const raw, query = "/_matrix/client/v3/sync", "since=s72594_4483_1934&timeout=30000"
	tokens := make([]string, 256)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("u%d-mat_%032d", i, i)
		snap.resolver.User(ctx, tokens[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r, ok := snap.table.route("GET", "matrix.example.org", raw, query)
		if !ok || r.By != workers.KeyUser {
			b.Fatal("not a sync route")
		}
		key, _, _ := snap.resolver.User(ctx, tokens[i&255])
		pool := snap.table.pools[r.Pool]
		m, err := pool.AcquireKey(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		pool.Release(m, nil)
	}
}

// The routing decision of a /sync behind workers with a cached user
// allocates nothing (classification, resolver hit, rendezvous choice,
// release of a good exchange).
func TestWorkerDecisionAllocs(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	snap := d.srv.snap.Load()
	ctx := context.Background()
	snap.resolver.User(ctx, "u1-mat_x")
	allocs := testing.AllocsPerRun(200, func() {
		r, _ := snap.table.route("GET", "matrix.example.org", "/_matrix/client/v3/sync", "since=s1&timeout=30000")
		key, _, _ := snap.resolver.User(ctx, "u1-mat_x")
		pool := snap.table.pools[r.Pool]
		m, err := pool.AcquireKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		pool.Release(m, nil)
	})
	if allocs != 0 {
		t.Errorf("routing decision: %.1f allocations, want 0", allocs)
	}
}

// Metrics count requests per role and those that fell back to the main
// process; /readyz lists the roles with their members; the resolver's cache
// is exported.
func TestWorkerMetricsAndReadyz(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	for range 3 {
		d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", "u1-0")
	}
	d.send(t, "PUT", "/_matrix/client/v3/rooms/%21r%3Aexample.org/send/m.room.message/t1", "u1-0")
	d.send(t, "POST", "/_matrix/client/v3/rooms/%21r%3Aexample.org/upgrade", "u1-0")
	// client_reader with no member available: served by main, counted so.
	d.members["readers"].Close()
	yaml := strings.Replace(d.rawYAML(t), `readers: {members: [`, `readers: {health: {path: /health, interval: 1h}, members: [`, 1)
	p, err := d.srv.Prepare(loadFullConfig(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	d.waitLog(t, "upstream member unhealthy", d.members["readers"].URL)
	d.send(t, "GET", "/_matrix/client/v3/rooms/%21r%3Aexample.org/messages", "u1-0")

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewWorkerCollector(d.srv))
	want := map[string]float64{
		`mxedge_worker_requests_total{role="synchrotron",to="role"}`:           3,
		`mxedge_worker_requests_total{role="event_creator",to="role"}`:         1,
		`mxedge_worker_requests_total{role="main",to="role"}`:                  1,
		`mxedge_worker_requests_total{role="client_reader",to="main"}`:         1,
		`mxedge_worker_requests_total{role="client_reader",to="role"}`:         0,
		`mxedge_worker_members{pool="sync",role="synchrotron"}`:                3,
		`mxedge_worker_members_available{pool="readers",role="client_reader"}`: 0,
		`mxedge_resolver_lookups_total{result="miss"}`:                         1,
		`mxedge_resolver_lookups_total{result="hit"}`:                          2, // rate limits are off: only syncs ask
		`mxedge_resolver_entries`:                                              1,
	}
	got := gathered(t, reg)
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	ready := NewReadiness()
	ready.Roles = d.srv.RoleStates
	rec := httptest.NewRecorder()
	ready.Readyz().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var detail struct {
		Roles []RoleState `json:"roles"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &detail); err != nil {
		t.Fatalf("readyz: %v: %s", err, rec.Body)
	}
	roles := map[string]RoleState{}
	for _, r := range detail.Roles {
		roles[r.Role] = r
	}
	if len(detail.Roles) != 10 {
		t.Errorf("readyz lists %d roles, want the 10 configured: %s", len(detail.Roles), rec.Body)
	}
	if r := roles["synchrotron"]; r.Pool != "sync" || r.Members != 3 || r.Available != 3 || r.Serving != "pool" {
		t.Errorf("readyz synchrotron: %+v", r)
	}
	if r := roles["client_reader"]; r.Members != 1 || r.Available != 0 || r.Serving != "main" {
		t.Errorf("readyz client_reader with its member down: %+v, want serving main", r)
	}
}

// gathered returns every sample of reg as "name{labels}" → value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			k := mf.GetName()
			if len(labels) > 0 {
				k += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[k] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[k] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// With the resolver on, the rc_* categories Synapse keys by user are keyed
// by the user behind the token: a user's two devices share rc_message. With
// it off, each token has its own bucket.
func TestWorkerRateLimitsByUser(t *testing.T) {
	const limits = `rate_limits:
  exempt: {addresses: []}
  rc_message: {per_second: 0.001, burst_count: 2}
`
	for _, resolver := range []bool{true, false} {
		d := newWorkerDeploymentLimited(t, resolver, "", limits)
		var statuses []int
		for i, token := range []string{"u1-phone", "u1-laptop", "u1-phone", "u1-laptop"} {
			_, status := d.send(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%%21r%%3Aexample.org/send/m.room.message/t%d", i), token)
			statuses = append(statuses, status)
		}
		want := []int{200, 200, 429, 429}
		if !resolver {
			want = []int{200, 200, 200, 200}
		}
		if fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("resolver %v: two devices of one user, 2 messages each with burst 2: statuses %v, want %v", resolver, statuses, want)
		}
	}
}

// A member that refuses connections costs no client an error: nothing of the
// request reached it, so the request goes to the pool's next choice at once
// (before any health check notices), body included, whatever the method.
func TestRefusedMemberRetriedOnAnother(t *testing.T) {
	d := newWorkerDeployment(t, true, "")
	d.members["sync-a"].Close()
	d.members["creators-a"].Close()
	for u := range 40 {
		token := fmt.Sprintf("u%d-0", u)
		if m, status := d.send(t, "GET", "/_matrix/client/v3/sync?since=s1", token); status != 200 || m == "sync-a" {
			t.Fatalf("user u%d: sync answered %d by %q, want 200 from a live member", u, status, m)
		}
		if m, status := d.send(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%%21r%d%%3Aexample.org/send/m.room.message/t", u), token); status != 200 || m != "creators-b" {
			t.Fatalf("room %d: send answered %d by %q, want 200 from creators-b", u, status, m)
		}
	}
	var bodies int
	p := d.members["creators-b"]
	p.mu.Lock()
	bodies = len(p.seen)
	p.mu.Unlock()
	if bodies != 40 {
		t.Errorf("creators-b saw %d sends, want all 40", bodies)
	}
}
