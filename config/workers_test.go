package config

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
	"github.com/mxedge/mxedge/workers"
)

// TestWorkerRoleKeys: the workers keys are exactly package workers' roles
// (plus resolver), so a role the router knows can be configured and a key
// the router does not know is refused.
func TestWorkerRoleKeys(t *testing.T) {
	var keys []string
	rt := reflect.TypeFor[Workers]()
	for i := range rt.NumField() {
		if rt.Field(i).Type.Kind() == reflect.String {
			keys = append(keys, rt.Field(i).Tag.Get("yaml"))
		}
	}
	if got, want := slices.Sorted(slices.Values(keys)), slices.Sorted(slices.Values(workers.Roles[:])); !slices.Equal(got, want) {
		t.Errorf("got workers keys %v, want workers.Roles %v", got, want)
	}
}

func TestWorkersValidation(t *testing.T) {
	pools := "server_name: example.org\nupstreams:\n  homeserver: {members: [\"http://127.0.0.1:8008\"]}\n  sync: {members: [\"http://127.0.0.1:8083\"]}\n"
	tests := []struct {
		name      string
		yaml      string
		wantLine  int
		wantKey   string
		wantMsg   string
		wantRoles map[string]string
	}{
		{name: "roles", yaml: "workers:\n  synchrotron: sync\n  typing: homeserver\n",
			wantRoles: map[string]string{"synchrotron": "sync", "typing": "homeserver"}},
		{name: "none", yaml: "", wantRoles: map[string]string{}},
		{name: "unknown role", yaml: "workers:\n  sync_worker: sync\n", wantLine: 6, wantKey: "workers.sync_worker", wantMsg: "unknown key"},
		{name: "misspelt role", yaml: "workers:\n  synchrotrn: sync\n", wantLine: 6, wantKey: "workers.synchrotrn", wantMsg: `did you mean "synchrotron"?`},
		{name: "main is no role", yaml: "workers:\n  main: homeserver\n", wantLine: 6, wantKey: "workers.main", wantMsg: "unknown key"},
		{name: "unknown pool", yaml: "workers:\n  event_creator: creators\n", wantLine: 6, wantKey: "workers.event_creator", wantMsg: "names no pool in upstreams (have homeserver, sync)"},
		{name: "resolver ttl", yaml: "workers:\n  resolver: {enabled: true, cache_ttl: 0s}\n", wantKey: "workers.resolver.cache_ttl", wantMsg: "must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testkit.TempFile(t, "mxedge.yaml", pools+tt.yaml)
			c, err := Load(LoadOptions{Path: p})
			if tt.wantKey == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.WorkerRoles(); !maps.Equal(got, tt.wantRoles) {
					t.Errorf("got roles %v, want %v", got, tt.wantRoles)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("got %v, want one problem at %s", err, tt.wantKey)
			}
			pr := ce.Problems[0]
			if pr.Key != tt.wantKey || !strings.Contains(pr.Msg, tt.wantMsg) || pr.File != p || (tt.wantLine != 0 && pr.Line != tt.wantLine) {
				t.Errorf("got %s, want %s:%d: %s: …%s…", pr.String(), p, tt.wantLine, tt.wantKey, tt.wantMsg)
			}
		})
	}
}
