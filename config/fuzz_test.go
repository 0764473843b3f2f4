package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzLoad: no YAML input makes Load panic, hang or return both a Config and
// an error; an *Error always has problems.
func FuzzLoad(f *testing.F) {
	for _, path := range []string{examplePath, "testdata/problems.yaml"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "~", "[]", "- a", "server_name: example.org\n",
		"server_name: example.org\nlimits: {max_body_size: 1G, max_json_body_size: 2G}\n",
		"a: &a [*a]\n", "server_name: &x example.org\nupstream: *x\n",
		"timeouts:\n  <<: {idle: 5s}\n", "log: {level: [a, {b: c}]}\n",
		"well_known:\n  client: {a: &b [*b, *b]}\n", "server_name: example.org\n---\nx: 1\n",
		"rate_limits:\n  rc_joins:\n    remote: {per_second: 1}\n",
		"<<: &a [*a]\n", "a: &a {<<: [*a, *a]}\n", "&a {<<: [*a, *a], log: *a}\n",
		"{? [a]: b}", "\"\\x00\": 1", "server_name: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load(data, "fuzz.yaml", func(string) string { return "" }, Overrides{})
		if (c == nil) == (err == nil) {
			t.Fatalf("got config %v and error %v", c != nil, err)
		}
		var ce *Error
		if errors.As(err, &ce) && len(ce.Problems) == 0 {
			t.Fatal("empty *Error")
		}
		if c != nil {
			_ = c.Redacted()
		}
	})
}
