package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

func load(t *testing.T, yaml string) (*config.Config, error) {
	t.Helper()
	return config.Load(config.LoadOptions{Path: testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\n"+yaml)})
}

// TestConfigDefaultsAreSynapses pins the defaults to Synapse's table.
func TestConfigDefaultsAreSynapses(t *testing.T) {
	c, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	rl := c.RateLimits
	want := map[string][2]float64{
		"rc_message": {0.2, 10}, "rc_registration": {0.17, 3}, "rc_registration_token_validity": {0.1, 5},
		"rc_login.address": {0.003, 5}, "rc_login.account": {0.003, 5}, "rc_login.failed_attempts": {0.17, 3},
		"rc_joins.local": {0.1, 10}, "rc_joins_per_room": {1, 10},
		"rc_invites.per_room": {0.3, 10}, "rc_invites.per_user": {0.003, 5}, "rc_invites.per_issuer": {0.3, 10},
		"rc_3pid_validation": {0.003, 5}, "rc_media_create": {10, 50}, "rc_room_creation": {0.016, 10},
		"rc_reports": {1, 5}, "rc_user_directory": {0.016, 200}, "rc_presence.per_user": {0.1, 1},
		"rc_delayed_event_mgmt": {1, 5},
		"mas_address":           {10, 100}, // mxedge's own: MAS's host, per address
	}
	for _, nb := range rl.Buckets() {
		name := strings.TrimPrefix(nb.Key, "rate_limits.")
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected bucket %s", nb.Key)
			continue
		}
		if nb.Bucket.PerSecond != w[0] || nb.Bucket.BurstCount != w[1] {
			t.Errorf("%s: got %v/%v, want %v/%v", nb.Key, nb.Bucket.PerSecond, nb.Bucket.BurstCount, w[0], w[1])
		}
		if _, ok := CategoryByName(name); !ok {
			t.Errorf("%s has no category", name)
		}
		delete(want, name)
	}
	for k := range want {
		t.Errorf("missing bucket %s", k)
	}
	if !rl.Enabled || rl.IPv6Prefix != 64 || rl.MaxKeys != 1000000 || rl.Store != "memory" ||
		rl.Redis.OnError != "local" || rl.Redis.Timeout.D().Milliseconds() != 50 {
		t.Errorf("defaults: got %+v", rl)
	}
}

// TestConfigSynapsePaste loads a section pasted from a homeserver.yaml.
func TestConfigSynapsePaste(t *testing.T) {
	c, err := load(t, `rate_limits:
  rc_message:
    per_second: 0.5
    burst_count: 15.0
  rc_login:
    address: {per_second: 0.15, burst_count: 5.0}
    account: {per_second: 0.18, burst_count: 4}
    failed_attempts: {per_second: 0.19, burst_count: 7}
  rc_joins:
    local: {per_second: 0.2, burst_count: 15.0}
    remote: {per_second: 0.03, burst_count: 12.0}
  rc_admin_redaction: {per_second: 1, burst_count: 50}
  rules:
    - {name: sync, methods: [GET], path: "/_matrix/client/*/sync", key: token, per_second: 1, burst_count: 5}
`)
	if err != nil {
		t.Fatal(err)
	}
	rl := c.RateLimits
	if rl.RCMessage.BurstCount != 15 || rl.RCLogin.FailedAttempts.PerSecond != 0.19 || rl.RCJoins.Remote == nil {
		t.Fatalf("got %+v", rl)
	}
	if got := rl.Unenforced(); len(got) != 2 {
		t.Fatalf("Unenforced: got %q, want rc_joins.remote and rc_admin_redaction", got)
	}
	if _, err := New(rl, Options{}); err != nil {
		t.Fatalf("New on a loaded config: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name, yaml, key string
	}{
		{"zero rate", "rate_limits:\n  rc_message: {per_second: 0, burst_count: 1}\n", "rate_limits.rc_message.per_second"},
		{"burst below one", "rate_limits:\n  rc_login:\n    account: {per_second: 1, burst_count: 0.5}\n", "rate_limits.rc_login.account.burst_count"},
		{"exempt_user_ids", "rate_limits:\n  rc_message: {per_second: 1, burst_count: 1, exempt_user_ids: ['@bot:x']}\n", "rate_limits.rc_message.exempt_user_ids"},
		{"bad cidr", "rate_limits:\n  exempt: {addresses: [10.0.0.0/33]}\n", "rate_limits.exempt.addresses[0]"},
		{"missing registration", "rate_limits:\n  exempt: {appservice_registrations: [/nonexistent.yaml]}\n", "rate_limits.exempt.appservice_registrations[0]"},
		{"ipv6 prefix", "rate_limits:\n  ipv6_prefix: 8\n", "rate_limits.ipv6_prefix"},
		{"max keys", "rate_limits:\n  max_keys: 0\n", "rate_limits.max_keys"},
		{"store", "rate_limits:\n  store: etcd\n", "rate_limits.store"},
		{"redis url", "rate_limits:\n  store: redis\n  redis: {url: 'http://x'}\n", "rate_limits.redis.url"},
		{"on_error", "rate_limits:\n  store: redis\n  redis: {on_error: retry}\n", "rate_limits.redis.on_error"},
		{"rule glob", "rate_limits:\n  rules: [{name: a, path: '/x/a*b', per_second: 1, burst_count: 1}]\n", "rate_limits.rules[0].path"},
		{"rule inner **", "rate_limits:\n  rules: [{name: a, path: '/x/**/y', per_second: 1, burst_count: 1}]\n", "rate_limits.rules[0].path"},
		{"rule key", "rate_limits:\n  rules: [{name: a, path: '/x', key: user, per_second: 1, burst_count: 1}]\n", "rate_limits.rules[0].key"},
		{"rule name", "rate_limits:\n  rules: [{path: '/x', per_second: 1, burst_count: 1}]\n", "rate_limits.rules[0].name"},
		{"rule dup", "rate_limits:\n  rules: [{name: a, path: '/x', per_second: 1, burst_count: 1}, {name: a, path: '/y', per_second: 1, burst_count: 1}]\n", "rate_limits.rules[1].name"},
		{"rule method", "rate_limits:\n  rules: [{name: a, methods: [get], path: '/x', per_second: 1, burst_count: 1}]\n", "rate_limits.rules[0].methods[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.yaml)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *config.Error naming %s", err, tc.key)
			}
			for _, p := range ce.Problems {
				if p.Key == tc.key {
					if p.Line == 0 {
						t.Errorf("problem %s has no line", p)
					}
					return
				}
			}
			t.Fatalf("got %v, want a problem at %s", err, tc.key)
		})
	}
}

// TestConfigExemptAddressesAsValidated: the limiter exempts exactly the
// prefixes config parsed, IPv4-mapped entries unmapped as in trusted_proxies,
// and refuses a section whose lists were never validated.
func TestConfigExemptAddressesAsValidated(t *testing.T) {
	c, err := load(t, "rate_limits:\n  exempt: {addresses: [\"::ffff:10.0.0.0/104\", \"::ffff:192.0.2.1\"]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(c.RateLimits.ExemptPrefixes()), "[10.0.0.0/8 192.0.2.1/32]"; got != want {
		t.Fatalf("ExemptPrefixes: got %s, want %s", got, want)
	}
	l, _ := newLimiter(t, c.RateLimits, newClock())
	for _, tt := range []struct {
		client     string
		wantExempt bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.9.9.9", true},
		{"192.0.2.1", true},
		{"192.0.2.2", false},
	} {
		allowed := 0
		for range 20 {
			if l.Check(newReq("POST", "/_matrix/client/v3/login", "", ""), netip.MustParseAddr(tt.client), Of(LoginAddress)).Allowed {
				allowed++
			}
		}
		if got := allowed == 20; got != tt.wantExempt {
			t.Errorf("%s: allowed %d of 20, want exempt=%v", tt.client, allowed, tt.wantExempt)
		}
	}

	raw := config.Defaults().RateLimits // exempt.addresses set, never validated
	if _, err := New(raw, Options{}); err == nil || !strings.Contains(err.Error(), "not validated") {
		t.Fatalf("New on an unvalidated section: got %v, want a not validated error", err)
	}
}
