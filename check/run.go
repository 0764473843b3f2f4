package check

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ExitError is returned by Run and Healthcheck when the command should end with
// a non-zero exit code: 1 when a check failed, 2 on a usage error. Error gives a
// one-line summary (the details have been written to stdout already).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the process exit code the error stands for.
func (e *ExitError) ExitCode() int { return e.Code }

func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// options are the parsed command line of `mxedge check`.
type options struct {
	target       string
	json         bool
	caFile       string
	resolve      map[string]string // "host:port" → "addr:port"
	timeout      time.Duration
	insecureHTTP bool
	serverName   string
	accessToken  string // --access-token, else MXEDGE_CHECK_ACCESS_TOKEN
	noFederation bool   // a client-only deployment: no federation checks
	now          func() time.Time
}

// tokenEnv is the environment variable --access-token falls back to. It is
// read after the flags so that --help never prints the token.
const tokenEnv = "MXEDGE_CHECK_ACCESS_TOKEN"

type resolveFlag map[string]string

func (r resolveFlag) String() string { return "" }

// Set parses host:port:addr, where addr may be an IP, [IPv6], or either with
// ":port" (then that port is dialled instead of the original).
func (r resolveFlag) Set(v string) error {
	host, rest, ok := strings.Cut(v, ":")
	if !ok || host == "" {
		return fmt.Errorf("want host:port:addr, got %q", v)
	}
	port, addr, ok := strings.Cut(rest, ":")
	if !ok || addr == "" {
		return fmt.Errorf("want host:port:addr, got %q", v)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("bad port %q in %q", port, v)
	}
	dial := ""
	if h, p, err := net.SplitHostPort(addr); err == nil {
		dial = net.JoinHostPort(strings.Trim(h, "[]"), p)
	} else {
		dial = net.JoinHostPort(strings.Trim(addr, "[]"), port)
	}
	r[strings.ToLower(net.JoinHostPort(host, port))] = dial
	return nil
}

const usageText = `usage: mxedge check [flags] TARGET

TARGET is a server name (example.org) or a base URL (https://matrix.example.org).
Checks the client and server well-known, /_matrix/client/versions, CORS (preflight
with Authorization, duplicate headers), MAS (discovery, issuer, metadata, compat
login), MatrixRTC (transports, lk-jwt-service), OpenID userinfo, TLS certificates,
federation delegation and /_matrix/key/v2/server, and the support well-known.
Exit code 1 when a check fails.

An access token (--access-token, or the variable MXEDGE_CHECK_ACCESS_TOKEN) lets it
check whoami, the RTC transports and an OpenID round trip; it is printed as REDACTED.

flags:
`

func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{resolve: map[string]string{}, now: time.Now}
	fs := flag.NewFlagSet("mxedge check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.json, "json", false, "print the results as JSON")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM `file` of extra CA certificates to trust (private CA)")
	fs.Var(resolveFlag(o.resolve), "resolve", "`host:port:addr[:port]` connect to addr instead of resolving host (repeatable)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit for each request")
	fs.BoolVar(&o.insecureHTTP, "insecure-http", false, "allow an http:// TARGET (tests, local setups); federation is then checked over http too")
	fs.StringVar(&o.serverName, "server-name", "", "server name expected in /_matrix/key/v2/server (default: TARGET's host)")
	fs.StringVar(&o.accessToken, "access-token", "", "a user's access `token` for the checks that need one (default: $"+tokenEnv+")")
	fs.BoolVar(&o.noFederation, "no-federation", false, "a client-only deployment (federation off): skip federation delegation and keys")
	// Accept flags after the target too: mxedge check example.org --json.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &ExitError{Code: 0, Err: err}
			}
			return nil, usageError("check: %v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if len(positional) != 1 {
		fs.Usage()
		return nil, usageError("check: want exactly one TARGET, got %d", len(positional))
	}
	o.target = positional[0]
	tokenSet := false
	fs.Visit(func(f *flag.Flag) { tokenSet = tokenSet || f.Name == "access-token" })
	if !tokenSet && getenv != nil {
		o.accessToken = getenv(tokenEnv)
	}
	o.accessToken = strings.TrimSpace(o.accessToken)
	if o.timeout <= 0 {
		return nil, usageError("check: --timeout must be > 0")
	}
	return o, nil
}

// Run runs `mxedge check` with args (the words after "check"). getenv reads
// MXEDGE_CHECK_ACCESS_TOKEN when --access-token is not given (nil: no
// environment). It writes the report to stdout and usage problems to stderr,
// and returns nil when every check passed, an *ExitError with Code 1 when a
// check failed, or one with Code 2 on a usage error. The access token and any
// OpenID token a run obtains appear as REDACTED in the report. Run is safe for
// concurrent use.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, getenv, stderr)
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && ee.Code == 0 {
			return nil
		}
		return err
	}
	c, err := newChecker(o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return usageError("%v", err)
	}
	rep := c.run(ctx)
	c.redact(rep)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.writeText(stdout)
	}
	if rep.Failed > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("check: %d of %d checks failed", rep.Failed, len(rep.Checks))}
	}
	return nil
}

// target is what TARGET names.
type target struct {
	origin     *url.URL // where the well-known files are fetched
	serverName string   // expected server_name
	isURL      bool
}

func parseTarget(s string, o *options) (target, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return target{}, fmt.Errorf("check: bad base URL %q", s)
		}
		switch u.Scheme {
		case "https":
		case "http":
			if !o.insecureHTTP {
				return target{}, fmt.Errorf("check: %s is plain http: Matrix clients need https (pass --insecure-http for a local test)", s)
			}
		default:
			return target{}, fmt.Errorf("check: bad scheme in %q: want https", s)
		}
		t := target{origin: &url.URL{Scheme: u.Scheme, Host: u.Host}, serverName: u.Hostname(), isURL: true}
		if o.serverName != "" {
			t.serverName = o.serverName
		}
		return t, nil
	}
	host, _, err := splitServerName(s)
	if err != nil {
		return target{}, fmt.Errorf("check: %v", err)
	}
	t := target{origin: &url.URL{Scheme: "https", Host: hostForURL(host)}, serverName: s}
	if o.serverName != "" {
		t.serverName = o.serverName
	}
	return t, nil
}

// splitServerName splits host[:port] as the Matrix spec's server name grammar
// allows (IPv6 literals in brackets). port is 0 when absent.
func splitServerName(s string) (host string, port int, err error) {
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return "", 0, fmt.Errorf("bad server name %q", s)
	}
	h, p := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("bad server name %q", s)
		}
		h, p = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if s[end+1:] != "" && !strings.HasPrefix(s[end+1:], ":") {
			return "", 0, fmt.Errorf("bad server name %q", s)
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		h, p = s[:i], s[i+1:]
	}
	if h == "" || strings.ContainsAny(h, "/?#@ ") {
		return "", 0, fmt.Errorf("bad server name %q", s)
	}
	if p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return "", 0, fmt.Errorf("bad port in server name %q", s)
		}
		port = n
	}
	return strings.ToLower(h), port, nil
}

func hostForURL(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}
