package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Log attribute keys, one place for all of them.
const (
	logRequestID  = "request_id"
	logClient     = "client"
	logMethod     = "method"
	logPath       = "path"
	logStatus     = "status"
	logBytesIn    = "bytes_in"
	logBytesOut   = "bytes_out"
	logDuration   = "duration_ms"
	logUpstreamMS = "upstream_ms"
	logClass      = "class"
	logKind       = "kind"
	logError      = "error"
)

// accessLog writes one line for a finished request. The query is logged with
// secret parameters redacted; no header value is logged.
func (s *Server) accessLog(rq *request, r *http.Request, status int, in int64, d time.Duration) {
	path := rq.rawPath
	if rq.query != "" {
		path += "?" + redactQuery(rq.query)
	}
	attrs := [...]slog.Attr{
		slog.String(logRequestID, rq.id),
		slog.String(logClient, rq.client.String()),
		slog.String(logMethod, r.Method),
		slog.String(logPath, path),
		slog.Int(logStatus, status),
		slog.Int64(logBytesIn, in),
		slog.Int64(logBytesOut, rq.w.written),
		slog.Float64(logDuration, float64(d.Microseconds())/1000),
		slog.Float64(logUpstreamMS, float64(rq.upstream.Microseconds())/1000),
		slog.String(logClass, rq.route.Class.String()),
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:]...)
}

// upstreamError logs why a request could not be carried, without its URL.
func (s *Server) upstreamError(rq *request, kind string, err error) {
	rq.upKind = kind
	lvl := slog.LevelWarn
	if kind == "client" {
		lvl = slog.LevelDebug
	}
	s.log.LogAttrs(context.Background(), lvl, "upstream request failed",
		slog.String(logRequestID, rq.id), slog.String(logClass, rq.route.Class.String()),
		slog.String(logKind, kind), slog.String(logError, redactError(err)))
}

// secretParams are query parameters whose values never reach a log line.
var secretParams = [...]string{"access_token", "loginToken", "login_token", "token", "client_secret", "password", "sid"}

// redactQuery replaces the values of secret query parameters with "REDACTED".
func redactQuery(q string) string {
	if !strings.Contains(q, "=") {
		return q
	}
	var b strings.Builder
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, _, hasValue := strings.Cut(part, "=")
		if hasValue && isSecretParam(k) {
			b.WriteString(k)
			b.WriteString("=REDACTED")
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

func isSecretParam(k string) bool {
	for _, s := range secretParams {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// redactError returns err's text with any URL query cut off (Go's transport
// errors may quote the request URL, which may carry an access token).
func redactError(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '?'); i >= 0 {
		j := strings.IndexAny(s[i:], "\": ")
		if j < 0 {
			return s[:i] + "?REDACTED"
		}
		return s[:i] + "?REDACTED" + s[i+j:]
	}
	return s
}
