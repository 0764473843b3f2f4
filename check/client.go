package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
)

// checkOrigin is the Origin sent with every request, as a browser client would.
const checkOrigin = "https://mxedge-check.invalid"

// maxBody bounds what is read of any response.
const maxBody = 1 << 20

type checker struct {
	o      *options
	t      target
	roots  *x509.CertPool
	dialer *net.Dialer
	client *http.Client
	tr     *http.Transport
	// secrets are replaced by REDACTED in the report: the access token and
	// the OpenID tokens the run obtained.
	secrets []string
}

func newChecker(o *options) (*checker, error) {
	t, err := parseTarget(o.target, o)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("check: --ca-file: %v", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("check: --ca-file %s: no PEM certificate found", o.caFile)
		}
	}
	c := &checker{o: o, t: t, roots: roots, dialer: &net.Dialer{Timeout: o.timeout}}
	c.tr = &http.Transport{
		Proxy:                 nil, // check the deployment itself, not a proxy on the way
		DialContext:           c.dial,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   o.timeout,
		ResponseHeaderTimeout: o.timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   2,
	}
	c.client = &http.Client{Transport: c.tr, Timeout: o.timeout}
	return c, nil
}

// dial connects to addr, or to what --resolve maps it to.
func (c *checker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if a, ok := c.o.resolve[strings.ToLower(addr)]; ok {
		addr = a
	}
	return c.dialer.DialContext(ctx, network, addr)
}

// response is what a request brought back.
type response struct {
	*http.Response
	body []byte
}

// do sends one request with the check Origin and returns the response with its
// body (at most maxBody bytes read).
func (c *checker) do(ctx context.Context, method, url string, hdr http.Header, host string) (*response, error) {
	return c.doBody(ctx, method, url, hdr, host, nil)
}

// doBody is do with a JSON request body (nil: none).
func (c *checker) doBody(ctx context.Context, method, url string, hdr http.Header, host string, body []byte) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", checkOrigin)
	req.Header.Set("User-Agent", "mxedge-check")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	return &response{Response: resp, body: data}, nil
}

// describeErr turns a request error into a short cause and a fix.
func describeErr(err error, what string) (detail, fix string) {
	var certErr *tls.CertificateVerificationError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	msg := err.Error()
	switch {
	case errors.As(err, &certErr):
		return "TLS certificate rejected: " + certErr.Err.Error(),
			"fix the certificate of " + what + " (see the TLS checks below)"
	case errors.As(err, &dnsErr):
		return "cannot resolve " + dnsErr.Name,
			"create the DNS record for " + dnsErr.Name + " (or pass --resolve for a test)"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "Timeout exceeded") || strings.Contains(msg, "timeout"):
		return "no answer within the timeout",
			"make sure a firewall does not drop traffic to " + what + " and that it is served"
	case strings.Contains(msg, "connection refused"):
		return "connection refused",
			"start a listener for " + what + " or fix its DNS record or port"
	case errors.As(err, &opErr):
		return opErr.Error(), "make " + what + " reachable from the internet"
	}
	return msg, "make " + what + " reachable"
}

// bearer returns the Authorization header carrying the access token.
func (c *checker) bearer() http.Header {
	return http.Header{"Authorization": {"Bearer " + c.o.accessToken}}
}

// secret adds s, and s as a URL query escapes it, to what the report
// redacts.
func (c *checker) secret(s string) {
	if s != "" {
		c.secrets = append(c.secrets, s, url.QueryEscape(s))
	}
}

// redacted is what a secret becomes in the report.
const redacted = "REDACTED"

// redact replaces every secret in the report's text by REDACTED, longest
// first so that a token containing another is replaced whole.
func (c *checker) redact(rep *Report) {
	secrets := append([]string(nil), c.secrets...)
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	clean := func(s string) string {
		for _, x := range secrets {
			s = strings.ReplaceAll(s, x, redacted)
		}
		return s
	}
	rep.Target, rep.BaseURL = clean(rep.Target), clean(rep.BaseURL)
	for i := range rep.Checks {
		r := &rep.Checks[i]
		r.ID, r.Name, r.Detail, r.Fix = clean(r.ID), clean(r.Name), clean(r.Detail), clean(r.Fix)
	}
}

// maxErrorText bounds the part of an error message quoted in a detail.
const maxErrorText = 160

// answer describes a response's status for a detail: "401 M_UNKNOWN_TOKEN
// (Invalid access token)", or just "502" when the body is no Matrix error.
func answer(r *response) string {
	s := strconv.Itoa(r.StatusCode)
	if code, msg := matrixError(r.body); code != "" {
		s += " " + code
		if msg != "" {
			if len(msg) > maxErrorText {
				msg = msg[:maxErrorText] + "…"
			}
			s += " (" + msg + ")"
		}
	}
	return s
}

// matrixError returns the errcode and error of a Matrix error body, "" when
// the body is not one.
func matrixError(body []byte) (errcode, msg string) {
	var doc struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return "", ""
	}
	return doc.Errcode, doc.Error
}

// trimSlash returns u without a trailing slash.
func trimSlash(u string) string { return strings.TrimSuffix(u, "/") }
