package proxy

import (
	"log/slog"
	"testing"
)

// TestPrepareCommitDiscard checks that a prepared configuration is invisible
// until Commit (requests and the readiness probe stay on the running
// upstream, also after Discard), that Commit moves both, and that a reload
// keeping the upstream keeps its pool.
func TestPrepareCommitDiscard(t *testing.T) {
	a, b := newHomeserver(t, nil), newHomeserver(t, nil)
	cfgA := loadConfig(t, a.URL, "rate_limits: {enabled: false}\n")
	ready := NewReadiness()
	srv, err := New(cfgA, Options{Logger: slog.New(slog.DiscardHandler), Readiness: ready})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	front := newFront(t, srv.Handler(ListenerClient, false))
	t.Cleanup(front.Close)
	reached := func(hs *homeserver) bool {
		t.Helper()
		n := len(hs.requests())
		rawTo(t, front.Listener.Addr().String(), "", get("/_matrix/client/versions"))
		return len(hs.requests()) == n+1
	}
	probed := func() string {
		ready.mu.Lock()
		defer ready.mu.Unlock()
		return "http://" + ready.target.pool.Members()[0].Endpoint().Host + "/health"
	}

	cfgB := loadConfig(t, b.URL, "rate_limits: {enabled: false}\n")
	p, err := srv.Prepare(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	if !reached(a) || probed() != a.URL+"/health" {
		t.Fatalf("prepared, not committed: want requests and probes on A, probe on %s", probed())
	}
	p.Discard()
	if !reached(a) || probed() != a.URL+"/health" {
		t.Fatalf("discarded: want requests and probes on A, probe on %s", probed())
	}

	pool := srv.snap.Load().table.pools[0]
	p, err = srv.Prepare(loadConfig(t, a.URL, "rate_limits: {enabled: false}\nwell_known: {server: \"x.example.org:443\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if srv.snap.Load().table.pools[0] != pool {
		t.Error("reload with the same upstream: got a new upstream pool, want the running one kept")
	}

	p, err = srv.Prepare(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if !reached(b) || probed() != b.URL+"/health" {
		t.Fatalf("committed: want requests and probes on B, probe on %s", probed())
	}
}
