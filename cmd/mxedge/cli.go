package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/mxedge/mxedge/check"
	"github.com/mxedge/mxedge/config"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// cliError carries an exit status; reported means the details were already
// written, so main prints nothing more.
type cliError struct {
	code     int
	err      error
	reported bool
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }
func (e *cliError) ExitCode() int { return e.code }
func usagef(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitStatus prints err (unless already reported) and returns the process
// exit status: 0, 1 on failure, 2 on a usage error. Errors with an
// ExitCode() int method (check.ExitError) choose their own.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ce *cliError
	if !errors.As(err, &ce) || !ce.reported {
		fmt.Fprintf(stderr, "mxedge: %v\n", err)
	}
	var coder interface{ ExitCode() int }
	if errors.As(err, &coder) {
		return coder.ExitCode()
	}
	return exitFailure
}

// run is the whole command line: mxedge [run|validate|routes|check|healthcheck|version|help].
// getenv reads MXEDGE_* variables. It returns nil on success.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runServe(ctx, args, getenv, stdout, stderr)
	case "validate":
		return runValidate(args, getenv, stdout, stderr)
	case "routes":
		return runRoutes(args, getenv, stdout, stderr)
	case "version":
		if len(args) > 0 {
			return usagef("version takes no arguments")
		}
		fmt.Fprintln(stdout, versionString())
		return nil
	case "check":
		return check.Run(ctx, args, getenv, stdout, stderr)
	case "healthcheck":
		return check.Healthcheck(ctx, args, stdout, stderr)
	case "help":
		writeHelp(stdout)
		return nil
	}
	return usagef("unknown command %q (run `mxedge --help`)", cmd)
}

// cliFlag is one flag shared by run, validate and routes.
type cliFlag struct {
	name, arg, help, env string
	value                *string
}

// commonFlags binds the flags of run and validate to path and o.
func commonFlags(path *string, o *config.Overrides) []cliFlag {
	return []cliFlag{
		{"config", "FILE", "YAML config file (default: none)", config.EnvConfig, path},
		{"server-name", "NAME", "server_name: the Matrix server name (required)", "MXEDGE_SERVER_NAME", &o.ServerName},
		{"upstream", "URL", "upstream: homeserver URL or unix:/path.sock (default " + config.DefaultUpstream + ")", "MXEDGE_UPSTREAM", &o.Upstream},
		{"public-baseurl", "URL", "public_baseurl: client-facing base URL (default https://<server_name>/)", "MXEDGE_PUBLIC_BASEURL", &o.PublicBaseURL},
		{"listen", "ADDR", "listen.http: plain HTTP listener (default " + config.DefaultListenHTTP + ")", "MXEDGE_LISTEN_HTTP", &o.ListenHTTP},
		{"listen-ops", "ADDR", "listen.ops: health and metrics listener (default " + config.DefaultListenOps + ")", "MXEDGE_LISTEN_OPS", &o.ListenOps},
		{"log-level", "LEVEL", "log.level: debug, info, warn or error (default " + config.DefaultLogLevel + ")", "MXEDGE_LOG_LEVEL", &o.LogLevel},
		{"log-format", "FORMAT", "log.format: json or text (default " + config.DefaultLogFormat + ")", "MXEDGE_LOG_FORMAT", &o.LogFormat},
	}
}

// parseFlags parses args with the common flags (plus extra) and rejects
// positional arguments. --help prints the help to stdout and returns
// flag.ErrHelp.
func parseFlags(name string, args []string, path *string, o *config.Overrides, stdout io.Writer, extra func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range commonFlags(path, o) {
		fs.StringVar(f.value, f.name, "", f.help)
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeHelp(stdout)
			return err
		}
		return usagef("%s: %v (run `mxedge --help`)", name, err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (run `mxedge --help`)", name, fs.Arg(0))
	}
	return nil
}

// runServe is `mxedge run`: serve until a signal, reloading on SIGHUP.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o config.LoadOptions
	if err := parseFlags("run", args, &o.Path, &o.Flags, stdout, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	o.Getenv = getenv
	load := func() (*config.Config, error) { return config.Load(o) }
	return serve(ctx, load, stdout, stderr)
}

// runValidate is `mxedge validate --config FILE [--print]`: exit 0 and "ok"
// when valid; otherwise every problem on stderr, one a line, and exit 1.
func runValidate(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o config.LoadOptions
	var printCfg bool
	err := parseFlags("validate", args, &o.Path, &o.Flags, stdout, func(fs *flag.FlagSet) {
		fs.BoolVar(&printCfg, "print", false, "print the effective configuration, secrets redacted")
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := loadReported("validate", o, getenv, stderr)
	if err != nil {
		return err
	}
	if printCfg {
		fmt.Fprint(stdout, c.Redacted())
		return nil
	}
	name := c.File
	if name == "" {
		name = "configuration"
	}
	fmt.Fprintf(stdout, "%s: ok\n", name)
	return nil
}

// loadReported loads the configuration for cmd (validate, routes), which
// needs a file: when it is invalid, every problem goes to stderr, one a line
// (file:line: key: message), then their count, and the error returned is
// already reported (exit 1).
func loadReported(cmd string, o config.LoadOptions, getenv func(string) string, stderr io.Writer) (*config.Config, error) {
	if o.Path == "" && getenv(config.EnvConfig) == "" {
		return nil, usagef("%s: needs --config FILE (or %s)", cmd, config.EnvConfig)
	}
	o.Getenv = getenv
	c, err := config.Load(o)
	if err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) {
			return nil, &cliError{code: exitFailure, err: err}
		}
		for _, p := range ce.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		noun := "problems"
		if len(ce.Problems) == 1 {
			noun = "problem"
		}
		fmt.Fprintf(stderr, "%d %s: configuration invalid\n", len(ce.Problems), noun)
		return nil, &cliError{code: exitFailure, err: err, reported: true}
	}
	return c, nil
}

// versionString is "mxedge VERSION (commit C, goX.Y.Z linux/amd64)".
func versionString() string {
	rev := commit
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("mxedge %s (commit %s, %s %s/%s)", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// writeHelp prints the help: commands, every flag and every MXEDGE_* variable.
func writeHelp(w io.Writer) {
	fmt.Fprint(w, `mxedge: an edge proxy for Matrix homeservers.

Usage:
  mxedge [run] [flags]                     serve (the default command)
  mxedge validate --config FILE [--print]  check a config file: exit 0 when valid,
                                           else every problem as file:line: key: message
  mxedge routes --config FILE [--json]     print where each request goes: Synapse's worker
                                           rules for the configured roles, then the other routes
  mxedge check TARGET [flags]              test a deployment from outside (see mxedge check --help)
  mxedge healthcheck [--url URL]           probe a local mxedge (container HEALTHCHECK)
  mxedge version                           print the version
  mxedge help                              print this help

A first run needs no file:
  mxedge run --upstream http://127.0.0.1:8008 --server-name example.org

Flags of run, validate and routes (they override the config file):
`)
	var path string
	var o config.Overrides
	for _, f := range commonFlags(&path, &o) {
		fmt.Fprintf(w, "  --%s %s\n        %s [$%s]\n", f.name, f.arg, f.help, f.env)
	}
	fmt.Fprint(w, `
Flags of validate:
  --print  print the effective configuration (YAML, secrets redacted)

Flags of routes (and the flags above):
  --json   print the table as JSON

Environment variables (for containers: they override the defaults; the file
and flags override them; lists are comma-separated):
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range config.EnvVars() {
		key := v.Key
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, key, v.Help)
	}
	tw.Flush()
	fmt.Fprint(w, `
Precedence: defaults < environment < config file < flags.
Every configuration key: docs/CONFIG.md; a commented example: deploy/mxedge.example.yaml.
Exit status: 0 success, 1 failure (invalid configuration, failed check), 2 usage error.
`)
}
