package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

// TestProblemsGolden: one file with many mistakes gives every problem at
// once, each as file:line: key: message, in file order.
func TestProblemsGolden(t *testing.T) {
	path := filepath.Join("testdata", "problems.yaml")
	_, err := Load(LoadOptions{Path: path})
	var b strings.Builder
	for _, p := range problemsOf(t, err) {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	testkit.Golden(t, filepath.Join("testdata", "problems.golden"), []byte(b.String()), *update)
}

// TestProblemSources: a bad value from a flag or variable names it, not a
// file line; a file value overriding the variable is reported in the file.
func TestProblemSources(t *testing.T) {
	p := testkit.TempFile(t, "c.yaml", "server_name: example.org\nlog:\n  format: yaml\n")
	_, err := Load(LoadOptions{
		Path:   p,
		Getenv: env(map[string]string{"MXEDGE_LOG_LEVEL": "loud", "MXEDGE_LOG_FORMAT": "xml", "MXEDGE_TRUSTED_PROXIES": "10.0.0.0/8,nope"}),
		Flags:  Overrides{Upstream: "ftp://x"},
	})
	var got []string
	for _, pr := range problemsOf(t, err) {
		got = append(got, pr.String())
	}
	want := []string{
		`upstream: must be an http:// or https:// URL or unix:/path/to.sock, got "ftp://x" (set by flag --upstream)`,
		`trusted_proxies[1]: not an IP address or CIDR (like 10.0.0.0/8), got "nope" (set by environment variable MXEDGE_TRUSTED_PROXIES)`,
		`log.level: must be debug, info, warn or error, got "loud" (set by environment variable MXEDGE_LOG_LEVEL)`,
		p + `:3: log.format: must be json or text, got "yaml"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Problems: []Problem{{File: "m.yaml", Line: 3, Key: "log.level", Msg: "bad"}}}
	if got, want := e.Error(), "invalid configuration (1 problem):\n  m.yaml:3: log.level: bad"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
