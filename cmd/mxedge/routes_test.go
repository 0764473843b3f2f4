package main

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
	"github.com/mxedge/mxedge/workers"
)

// workersExample is the contract config, as shipped.
const workersExample = "../../deploy/examples/workers.yaml"

// workerLines returns the worker-rule lines of `mxedge routes` output, each
// split into its columns (RULE ROLE POOL BY METHODS FALLBACK PATH...).
func workerLines(t *testing.T, out string) [][]string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "\nRULE ")
	if !ok {
		t.Fatalf("no worker table in:\n%s", out)
	}
	rest, _, _ = strings.Cut(rest, "\n\n")
	var rows [][]string
	for _, l := range strings.Split(rest, "\n")[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// hasRow reports a row with these role, pool, by, methods and fallback whose
// path (the rest of the line) contains path.
func hasRow(rows [][]string, role, pool, by, methods, fallback, path string) bool {
	for _, r := range rows {
		if len(r) >= 7 && r[1] == role && r[2] == pool && r[3] == by && r[4] == methods && r[5] == fallback &&
			strings.Contains(strings.Join(r[6:], " "), path) {
			return true
		}
	}
	return false
}

func TestRoutesWorkersExample(t *testing.T) {
	out, errOut, code := runCLI(t, nil, "routes", "--config", workersExample)
	if code != 0 || errOut != "" {
		t.Fatalf("got exit %d stderr %q, want 0 and empty", code, errOut)
	}
	data, err := workers.Synapse()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"mxedge routes: " + workersExample + "\n", data.Synapse, data.Commit, "resolver: on"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	rows := workerLines(t, out)
	tests := []struct{ name, role, pool, by, methods, fallback, path string }{
		{"sync by user", "synchrotron", "sync", "user", "any", "main", "/_matrix/client/{r0,v3}/sync"},
		{"sliding sync", "synchrotron", "sync", "user", "any", "main", "/org.matrix.simplified_msc3575/sync"},
		{"initial sync", "initial_synchrotron", "initial", "user", "any", "main", "/_matrix/client/{r0,v3}/sync (without since, or full_state=true)"},
		{"createRoom by user", "event_creator", "creators", "user", "any", "main", "/createRoom"},
		{"send by room", "event_creator", "creators", "room", "any", "main", "/rooms/*/send{,/**}"},
		{"federation send by origin", "federation_inbound", "fedin", "origin", "any", "main", "/_matrix/federation/v1/send/**"},
		{"typing stream writer on main's pool", "typing", "homeserver", "room", "any", "main", "/rooms/*/typing"},
		{"main-only endpoints", "main", "homeserver", "round_robin", "any", "-", "/rooms/*/upgrade"},
	}
	for _, tt := range tests {
		if !hasRow(rows, tt.role, tt.pool, tt.by, tt.methods, tt.fallback, tt.path) {
			t.Errorf("%s: no row %s %s %s %s %s …%s… in:\n%s", tt.name, tt.role, tt.pool, tt.by, tt.methods, tt.fallback, tt.path, out)
		}
	}
	// Only configured roles (and main) are compiled, in priority order.
	last := 0
	for _, r := range rows {
		if !slices.Contains([]string{"main", "synchrotron", "initial_synchrotron", "event_creator", "federation_inbound", "typing"}, r[1]) {
			t.Errorf("row of an unconfigured role: %v", r)
		}
		n, err := strconv.Atoi(r[0])
		if err != nil || n < last {
			t.Errorf("rule %q after %d: want ascending numbers", r[0], last)
		}
		last = n
	}
	if !strings.Contains(out, "none (no mas, rtc, routes or forward.extra_prefixes)") {
		t.Errorf("output lacks the empty first section:\n%s", out)
	}
	if !strings.Contains(out, "/_matrix/**    ") || !strings.Contains(out, "/_synapse/client/**") {
		t.Errorf("output lacks the default routes:\n%s", out)
	}
}

// TestRoutesFull: every kind of route, in the order proxy/table.go checks
// them, with the strict roles' fallback and the GET-only rules.
func TestRoutesFull(t *testing.T) {
	p := testkit.TempFile(t, "mxedge.yaml", `server_name: example.org
public_baseurl: https://matrix.example.org/
tls: {mode: "off"}
upstreams:
  homeserver: {members: ["http://127.0.0.1:8008"], balance: least_conn}
  mas: {members: ["http://127.0.0.1:8080"]}
  jwt: {members: ["http://127.0.0.1:8090"]}
  sfu: {members: ["http://127.0.0.1:7880"]}
  element: {members: ["http://127.0.0.1:8091"]}
  admin: {members: ["http://127.0.0.1:8092"]}
  media: {members: ["http://127.0.0.1:8093"]}
  readers: {members: ["http://127.0.0.1:8094"]}
mas: {upstream: mas, public_base: "https://auth.example.org/"}
rtc: {jwt_upstream: jwt, sfu_upstream: sfu}
forward: {extra_prefixes: ["/static/"]}
routes:
  - {path_prefix: /admin, upstream: admin, strip_prefix: true, cors: matrix, rate_limit: rc_login.address, websocket: true}
  - {host: element.example.org, upstream: element}
federation: {enabled: false}
workers:
  media_repository: media
  client_reader: readers
  event_creator: readers
`)
	out, errOut, code := runCLI(t, nil, "routes", "--config", p)
	if code != 0 || errOut != "" {
		t.Fatalf("got exit %d stderr %q, want 0 and empty", code, errOut)
	}
	first, _, _ := strings.Cut(out[strings.Index(out, "checked first"):], "\n\n")
	wantOrder := []string{
		"host auth.example.org /api/admin/**",
		"host auth.example.org ",
		"host element.example.org ",
		"path /static/ ",
		"path /livekit/jwt/ ",
		"path /livekit/sfu/ ",
		"path /admin/ ",
		"/_matrix/client/*/{login,logout,refresh}{,/**}",
	}
	at := 0
	for _, w := range wantOrder {
		i := strings.Index(first[at:], w)
		if i < 0 {
			t.Fatalf("first section lacks %q after offset %d:\n%s", w, at, first)
		}
		at += i + len(w)
	}
	for _, w := range [][]string{
		{"path", "/admin/", "admin", "/admin", "matrix", "rc_login.address", "yes", "routes"},
		{"path", "/livekit/sfu/", "sfu", "/livekit/sfu", "upstream", "-", "yes"},
		{"host", "element.example.org", "element", "-", "upstream", "-", "no", "routes"},
	} {
		if !strings.Contains(spaced(first), strings.Join(w, " ")) {
			t.Errorf("first section lacks %q:\n%s", strings.Join(w, " "), first)
		}
	}
	rows := workerLines(t, out)
	for _, w := range []struct{ role, pool, by, methods, fallback, path string }{
		{"media_repository", "media", "round_robin", "any", "none: 502", "/_matrix/media/**"},
		{"client_reader", "readers", "one", "any", "none: 502", "/_synapse/client/oidc/callback"},
		{"client_reader", "readers", "room", "any", "main", "/rooms/*/messages"},
		{"client_reader", "readers", "round_robin", "GET", "main", "/pushrules/**"},
		{"main", "homeserver", "least_conn", "any", "-", "/rooms/*/upgrade"},
		{"event_creator", "readers", "token", "any", "main", "/createRoom"}, // by user, no resolver
	} {
		// "none: 502" is two columns once split.
		fb, path := w.fallback, w.path
		if fb == "none: 502" {
			fb, path = "none:", "502 "+path
		}
		if !hasRow(rows, w.role, w.pool, w.by, w.methods, fb, path) {
			t.Errorf("no row %v in:\n%s", w, out)
		}
	}
	if !strings.Contains(out, "refused 404 (federation.enabled: false)") || !strings.Contains(out, "resolver: off") {
		t.Errorf("output lacks the refused federation or the resolver state:\n%s", out)
	}
}

// spaced collapses runs of spaces, so column rows compare as words.
func spaced(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		b.WriteString(strings.Join(strings.Fields(l), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestRoutesJSON(t *testing.T) {
	out, errOut, code := runCLI(t, nil, "routes", "--config", workersExample, "--json")
	if code != 0 || errOut != "" {
		t.Fatalf("got exit %d stderr %q, want 0 and empty", code, errOut)
	}
	var rt routeTable
	if err := json.Unmarshal([]byte(out), &rt); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var sync *workerRow
	for i := range rt.Workers {
		if rt.Workers[i].Role == "synchrotron" {
			sync = &rt.Workers[i]
		}
	}
	if sync == nil || sync.Pool != "sync" || sync.By != "user" || sync.Fallback != "main" || !slices.Contains(sync.Paths, "/_matrix/client/{r0,v3}/sync") {
		t.Errorf("got synchrotron row %+v, want pool sync by user, fallback main, with /sync", sync)
	}
	if rt.Synapse == "" || rt.Commit == "" || !rt.Resolver || len(rt.Default) == 0 {
		t.Errorf("got %+v, want version, commit, resolver on, defaults", rt)
	}
}

func TestRoutesNoWorkers(t *testing.T) {
	p := testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\n")
	out, errOut, code := runCLI(t, nil, "routes", "--config", p)
	if code != 0 || errOut != "" {
		t.Fatalf("got exit %d stderr %q, want 0 and empty", code, errOut)
	}
	for _, w := range []string{
		"none: no worker role configured (workers:), every Matrix request goes to homeserver",
		"resolver: off",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "\nRULE ") {
		t.Errorf("a worker table without workers:\n%s", out)
	}
}

func TestRoutesErrors(t *testing.T) {
	bad := testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\nupstreams:\n  sync: {members: [\"http://127.0.0.1:8083\"]}\nworkers:\n  synchrotron: sink\n")
	unknown := testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\nupstreams:\n  sync: {members: [\"http://127.0.0.1:8083\"]}\nworkers:\n  sync_worker: sync\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"pool missing", []string{"routes", "--config", bad}, 1,
			bad + ":5: workers.synchrotron: names no pool in upstreams (have homeserver, sync)\n1 problem: configuration invalid\n"},
		{"unknown role", []string{"routes", "--config", unknown}, 1, unknown + ":5: workers.sync_worker: unknown key"},
		{"no config", []string{"routes"}, 2, "routes: needs --config FILE"},
		{"positional", []string{"routes", "--config", bad, "x"}, 2, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, nil, tt.args...)
			if code != tt.wantCode || out != "" || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("got exit %d stdout %q stderr %q, want %d, empty, %q", code, out, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}

// TestRoutesDocOutput: the `mxedge routes` output pasted on docs/WORKERS.md
// is what the command prints now.
func TestRoutesDocOutput(t *testing.T) {
	const cmd = "$ mxedge routes --config deploy/examples/workers.yaml\n"
	doc, err := os.ReadFile("../../docs/WORKERS.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, cmd)
	if i < 0 {
		t.Fatalf("docs/WORKERS.md shows no %q", cmd)
	}
	pasted, _, ok := strings.Cut(s[i+len(cmd):], "```")
	if !ok {
		t.Fatal("docs/WORKERS.md: the output block is not closed")
	}
	t.Chdir("../..")
	out, errOut, code := runCLI(t, nil, "routes", "--config", "deploy/examples/workers.yaml")
	if code != 0 || errOut != "" {
		t.Fatalf("got exit %d stderr %q", code, errOut)
	}
	if pasted != out {
		t.Errorf("docs/WORKERS.md output is stale:\n--- doc\n%s\n--- now\n%s", pasted, out)
	}
}
