package wellknown

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// TestFromLoad builds the Handler from a file read by config.Load, as the command does.
func TestFromLoad(t *testing.T) {
	path := testkit.TempFile(t, "mxedge.yaml", `
server_name: example.org
public_baseurl: https://matrix.example.org
well_known:
  client:
    m.identity_server: {base_url: "https://vector.im"}
    org.matrix.msc4143.rtc_foci:
      - type: livekit
        livekit_service_url: https://rtc.example.org
  server: matrix.example.org:443
  support:
    contacts:
      - role: m.role.admin
        matrix_id: "@admin:example.org"
    support_page: https://example.org/help
`)
	c, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	h := newHandler(t, c)
	for _, tt := range []struct{ path, want string }{
		{ClientPath, `{"m.homeserver":{"base_url":"https://matrix.example.org"},"m.identity_server":{"base_url":"https://vector.im"},"org.matrix.msc4143.rtc_foci":[{"livekit_service_url":"https://rtc.example.org","type":"livekit"}]}`},
		{ServerPath, `{"m.server":"matrix.example.org:443"}`},
		{SupportPath, `{"contacts":[{"matrix_id":"@admin:example.org","role":"m.role.admin"}],"support_page":"https://example.org/help"}`},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if got := w.Body.String(); w.Code != 200 || got != tt.want {
			t.Errorf("%s: got %d %s, want 200 %s", tt.path, w.Code, got, tt.want)
		}
	}
}

// TestLoadReportsLines checks that well_known problems found through Load carry the file line.
func TestLoadReportsLines(t *testing.T) {
	path := testkit.TempFile(t, "mxedge.yaml", `server_name: example.org
well_known:
  server: "matrix.example.org:0"
  support:
    contacts:
      - role: m.role.admim
        email_address: admin@example.org
`)
	_, err := config.Load(config.LoadOptions{Path: path})
	if err == nil {
		t.Fatal("Load: got no error, want the well_known problems")
	}
	for _, want := range []string{
		":3: well_known.server:",
		":6: well_known.support.contacts[0].role:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}
