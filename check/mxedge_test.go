package check

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/testkit"
)

// TestAgainstMxedge runs every check against mxedge's own request path in
// front of a fake homeserver that sets its own CORS headers (as Synapse does):
// mxedge must make all of them pass.
func TestAgainstMxedge(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server")
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_matrix/client/versions":
			io.WriteString(w, `{"versions":["v1.11","v1.12"]}`)
		case "/_matrix/key/v2/server":
			json.NewEncoder(w).Encode(map[string]any{
				"server_name":     "example.org",
				"valid_until_ts":  4102444800000,
				"verify_keys":     map[string]any{"ed25519:a": map[string]string{"key": "Kd8b5E6vKqzDThh0Z0gPqh8XqJjK2Ww2j+qN0nT0bxA"}},
				"old_verify_keys": map[string]any{},
			})
		default:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}`)
		}
	}))
	defer hs.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	doc := fmt.Sprintf(`server_name: example.org
upstream: %s
public_baseurl: http://%s/
rate_limits: {enabled: false}
well_known:
  server: "%s"
  support:
    contacts:
      - {role: m.role.admin, matrix_id: "@admin:example.org"}
`, hs.URL, addr, addr)
	path := testkit.TempFile(t, "mxedge.yaml", doc)
	cfg, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	front := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler(proxy.ListenerClient, false)}}
	front.Start()
	defer front.Close()

	rep, err := checkAgainst(t, "http://"+addr, "--insecure-http", "--server-name", "example.org")
	requireAllPass(t, rep, err, true)
	if rep.Passed < 8 {
		t.Errorf("only %d checks passed: %+v", rep.Passed, rep.Checks)
	}
	if got := strings.Join(rep.Versions, ","); got != "v1.11,v1.12" {
		t.Errorf("versions %q", got)
	}
}
