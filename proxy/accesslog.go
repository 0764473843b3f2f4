package proxy

import (
	"context"
	"log/slog"
	"net/http"
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
// secret parameters redacted (redact.go); no header value is logged.
func (s *Server) accessLog(rq *request, r *http.Request, status int, in int64, d time.Duration, out *outcome) {
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := [...]slog.Attr{
		slog.String(logRequestID, rq.id),
		slog.String(logClient, rq.client.String()),
		slog.String(logMethod, r.Method),
		slog.String(logPath, redactTarget(rq.rawPath, rq.query)),
		slog.Int(logStatus, status),
		slog.Int64(logBytesIn, in),
		slog.Int64(logBytesOut, rq.w.written),
		slog.Float64(logDuration, float64(d.Microseconds())/1000),
		slog.Float64(logUpstreamMS, float64(out.upstream.Microseconds())/1000),
		slog.String(logClass, rq.route.Class.String()),
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:]...)
}

// upstreamError logs why a request could not be carried, without its URL:
// at debug when the client caused it, else at warn.
func (s *Server) upstreamError(rq *request, out *outcome) {
	lvl := slog.LevelWarn
	if out.fail == failClient || out.fail == "canceled" {
		lvl = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), lvl) {
		return
	}
	s.log.LogAttrs(context.Background(), lvl, "upstream request failed",
		slog.String(logRequestID, rq.id), slog.String(logClass, rq.route.Class.String()),
		slog.String(logKind, out.fail), slog.String(logError, redactError(out.err)))
}
