package main

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newServerErrorLog routes net/http's own error lines into slog: TLS handshake
// noise from scanners at debug, the rest at warn. The lines never carry
// request headers or bodies.
func newServerErrorLog(l *slog.Logger, listener string) *log.Logger {
	return log.New(serverLogWriter{l: l, listener: listener}, "", 0)
}

type serverLogWriter struct {
	l        *slog.Logger
	listener string
}

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	lvl := slog.LevelWarn
	if bytes.Contains(p, []byte("TLS handshake error")) || bytes.Contains(p, []byte("URL query contains semicolon")) {
		lvl = slog.LevelDebug
	}
	w.l.Log(context.Background(), lvl, "http server", "listener", w.listener, "detail", msg)
	return len(p), nil
}
