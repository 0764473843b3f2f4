package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// runCLI runs the command in-process and returns stdout, stderr and the exit status.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	code = exitStatus(err, &errb)
	return out.String(), errb.String(), code
}

const examplePath = "../../deploy/mxedge.example.yaml"

// TestValidateExample is `mxedge validate --config deploy/mxedge.example.yaml`.
func TestValidateExample(t *testing.T) {
	out, errOut, code := runCLI(t, nil, "validate", "--config", examplePath)
	if code != 0 || out != examplePath+": ok\n" || errOut != "" {
		t.Errorf("got code %d stdout %q stderr %q, want 0, %q, empty", code, out, examplePath+": ok\n", errOut)
	}
}

func TestValidate(t *testing.T) {
	valid := testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\ntls:\n  storage: redis://u:hunter2@r:6379/0\n")
	invalid := testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\nlisten:\n  htp: \":80\"\nlimits:\n  max_body_size: 0\nlog:\n  level: loud\n")
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantErr    []string // substrings of stderr
		notOut     []string
		wantErrEnd string
	}{
		{name: "valid", args: []string{"validate", "--config", valid}, wantOut: []string{valid + ": ok"}},
		{name: "single dash flag", args: []string{"validate", "-config", valid}, wantOut: []string{valid + ": ok"}},
		{name: "config from env", env: map[string]string{"MXEDGE_CONFIG": valid}, args: []string{"validate"}, wantOut: []string{valid + ": ok"}},
		{name: "print redacts", args: []string{"validate", "--config", valid, "--print"},
			wantOut: []string{"server_name: example.org", "redis://u:REDACTED@r:6379/0", "max_body_size: 50M"}, notOut: []string{"hunter2"}},
		{name: "invalid lists every problem", args: []string{"validate", "--config", invalid}, wantCode: 1,
			wantErr: []string{
				invalid + `:3: listen.htp: unknown key (did you mean "http"?)`,
				invalid + ":5: limits.max_body_size: must be > 0, got 0",
				invalid + `:7: log.level: must be debug, info, warn or error, got "loud"`,
				"3 problems: configuration invalid\n",
			}},
		{name: "flag problems name the flag", args: []string{"validate", "--config", valid, "--log-format", "xml"}, wantCode: 1,
			wantErr: []string{`log.format: must be json or text, got "xml" (set by flag --log-format)`}},
		{name: "flags override the file", args: []string{"validate", "--config", invalid, "--log-level", "debug", "--print"}, wantCode: 1,
			wantErr: []string{"2 problems"}},
		{name: "missing file", args: []string{"validate", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, wantCode: 1,
			wantErr: []string{"no such file"}},
		{name: "no config", args: []string{"validate"}, wantCode: 2, wantErr: []string{"needs --config FILE"}},
		{name: "unknown flag", args: []string{"validate", "--confg", valid}, wantCode: 2, wantErr: []string{"flag provided but not defined: -confg"}},
		{name: "positional argument", args: []string{"validate", "--config", valid, "extra"}, wantCode: 2, wantErr: []string{`unexpected argument "extra"`}},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2, wantErr: []string{`unknown command "serve"`}},
		{name: "version with argument", args: []string{"version", "x"}, wantCode: 2},
		{name: "run with a bad flag value fails before serving", args: []string{"run", "--server-name", "bad name"}, wantCode: 1,
			wantErr: []string{"server_name"}},
		{name: "run without server name", args: []string{"--upstream", "http://127.0.0.1:8008"}, wantCode: 1,
			wantErr: []string{"server_name: required"}},
		{name: "run unknown flag", args: []string{"run", "--nope"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d (stdout %q stderr %q)", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q lacks %q", out, w)
				}
			}
			for _, w := range tt.notOut {
				if strings.Contains(out, w) {
					t.Errorf("stdout holds %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
}

// TestValidateOutputExact: the invalid output is one problem a line plus a
// count, nothing else (no duplicate "mxedge: …" summary).
func TestValidateOutputExact(t *testing.T) {
	p := testkit.TempFile(t, "mxedge.yaml", "server_name: example.org\nlog:\n  level: loud\n")
	out, errOut, code := runCLI(t, nil, "validate", "--config", p)
	want := p + `:3: log.level: must be debug, info, warn or error, got "loud"` + "\n1 problem: configuration invalid\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("got %d %q %q, want 1, empty, %q", code, out, errOut, want)
	}
}

// TestHelp: --help documents every flag and every MXEDGE_* variable, on
// stdout, with exit 0, from every spelling.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"run", "--help"}, {"validate", "-h"}, {"routes", "--help"}} {
		out, errOut, code := runCLI(t, nil, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: got exit %d stderr %q, want 0 and empty", args, code, errOut)
		}
		for _, v := range config.EnvVars() {
			if !strings.Contains(out, v.Name) {
				t.Errorf("%v: help lacks %s", args, v.Name)
			}
		}
		var path string
		var o config.Overrides
		for _, f := range commonFlags(&path, &o) {
			if !strings.Contains(out, "--"+f.name+" ") {
				t.Errorf("%v: help lacks --%s", args, f.name)
			}
		}
		for _, w := range []string{"--print", "validate", "routes --config FILE", "--json", "version", "check", "healthcheck", "Exit status", "docs/CONFIG.md"} {
			if !strings.Contains(out, w) {
				t.Errorf("%v: help lacks %q", args, w)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "mxedge "+version+" (") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("got %d %q, want mxedge %s with %s", code, out, version, runtime.Version())
	}
}

func TestExitStatus(t *testing.T) {
	var b bytes.Buffer
	if got := exitStatus(nil, &b); got != 0 || b.Len() != 0 {
		t.Errorf("nil: got %d %q, want 0 and nothing printed", got, b.String())
	}
	if got := exitStatus(os.ErrNotExist, &b); got != 1 || !strings.HasPrefix(b.String(), "mxedge: ") {
		t.Errorf("plain error: got %d %q, want 1 and the error printed", got, b.String())
	}
	b.Reset()
	if got := exitStatus(usagef("bad"), &b); got != 2 || b.String() != "mxedge: bad\n" {
		t.Errorf("usage: got %d %q, want 2", got, b.String())
	}
}

// TestCheckReadsTokenFromEnv: `mxedge check` gets MXEDGE_CHECK_ACCESS_TOKEN
// through run's getenv (the access token line appears, its value redacted).
func TestCheckReadsTokenFromEnv(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: every check fails fast
	const token = "mct_cliEnvToken"
	out, _, code := runCLI(t, map[string]string{"MXEDGE_CHECK_ACCESS_TOKEN": token},
		"check", "--insecure-http", "--server-name", "example.org", "--no-federation", "--timeout", "2s", "http://"+addr)
	if code != 1 || !strings.Contains(out, "✗ access token: GET http://"+addr+"/_matrix/client/v3/account/whoami: connection refused") {
		t.Errorf("got code %d, output\n%s\nwant an access token line", code, out)
	}
	if strings.Contains(out, token) {
		t.Errorf("output shows the token:\n%s", out)
	}
}
