package check

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultHealthURL is what Healthcheck probes without --url: /readyz on the
// default listen.ops address.
const DefaultHealthURL = "http://127.0.0.1:9100/readyz"

// Healthcheck runs `mxedge healthcheck [--url URL] [--timeout D]`: one GET that
// must answer 200. It prints nothing on success (container runtimes keep the
// output) and the status on failure, and returns an *ExitError with Code 1 when
// the probe fails or 2 on a usage error. It needs no shell, so it works in a
// distroless image's HEALTHCHECK.
func Healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mxedge healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", DefaultHealthURL, "`URL` that must answer 200")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit for the probe")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError("healthcheck: %v", err)
	}
	if fs.NArg() != 0 {
		return usageError("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError("healthcheck: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stdout, "unhealthy: %v\n", err)
		return &ExitError{Code: 1, Err: fmt.Errorf("healthcheck: %w", err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stdout, "unhealthy: %s answered %d: %s\n", *url, resp.StatusCode, body)
		return &ExitError{Code: 1, Err: fmt.Errorf("healthcheck: %s answered %d", *url, resp.StatusCode)}
	}
	return nil
}
