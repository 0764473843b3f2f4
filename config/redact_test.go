package config

import (
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

func TestRedacted(t *testing.T) {
	c := Defaults()
	c.ServerName = "example.org"
	c.TLS.Storage = "redis://mxedge:hunter2@redis.internal:6379/1"
	c.WellKnown.Client = map[string]any{
		"org.example.bridge": map[string]any{"access_token": "syt_secret", "url": "https://u:p4ss@x.example/"},
		"org.example.tokens": map[string]any{"plain": "visible"},
	}
	c.WellKnown.Support = map[string]any{"client_secret": "s3", "api_key": "k3y", "key_file": "/etc/key.pem"}
	out := c.Redacted()
	for _, secret := range []string{"hunter2", "syt_secret", "p4ss", "s3\n", "k3y"} {
		if strings.Contains(out, secret) {
			t.Errorf("dump holds %q:\n%s", secret, out)
		}
	}
	for _, keep := range []string{"redis://mxedge:REDACTED@redis.internal:6379/1", "access_token: REDACTED", "plain: visible", "key_file: /etc/key.pem", "server_name: example.org", "max_body_size: 50M", "idle: 2m"} {
		if !strings.Contains(out, keep) {
			t.Errorf("dump lacks %q:\n%s", keep, out)
		}
	}
	if c.TLS.Storage != "redis://mxedge:hunter2@redis.internal:6379/1" {
		t.Errorf("Redacted modified the config")
	}
}

// TestRedactedLoadsBack: the dump is a valid config file equal to the input.
func TestRedactedLoadsBack(t *testing.T) {
	c, err := Load(LoadOptions{Path: examplePath})
	if err != nil {
		t.Fatal(err)
	}
	p := testkit.TempFile(t, "dump.yaml", c.Redacted())
	back, err := Load(LoadOptions{Path: p})
	if err != nil {
		t.Fatalf("dump does not load: %v\n%s", err, c.Redacted())
	}
	if back.Redacted() != c.Redacted() {
		t.Errorf("dump changed on reload:\n%s\nvs\n%s", back.Redacted(), c.Redacted())
	}
}
