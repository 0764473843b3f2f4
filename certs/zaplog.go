package certs

import (
	"context"
	"log/slog"
	"math"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger whose entries are written to l, so that
// certmagic's logs come out in mxedge's slog format. The logger name
// (e.g. "obtain", "acme_client") becomes the attribute "logger".
func newZapLogger(l *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{h: l.Handler()})
}

// slogCore is a zapcore.Core writing into a slog.Handler.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr // accumulated With fields
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	n := &slogCore{h: c.h, attrs: make([]slog.Attr, len(c.attrs), len(c.attrs)+len(fields))}
	copy(n.attrs, c.attrs)
	n.attrs = append(n.attrs, fieldsToAttrs(fields)...)
	return n
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	r.AddAttrs(slog.String("component", "certmagic"))
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldsToAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// fieldsToAttrs converts zap fields to slog attributes through zap's map
// encoder, which knows every field type.
func fieldsToAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		switch f.Type {
		case zapcore.DurationType:
			attrs = append(attrs, slog.Duration(f.Key, time.Duration(f.Integer)))
			continue
		case zapcore.Float64Type:
			attrs = append(attrs, slog.Float64(f.Key, math.Float64frombits(uint64(f.Integer))))
			continue
		case zapcore.SkipType:
			continue
		}
		f.AddTo(enc)
		v, ok := enc.Fields[f.Key]
		if !ok {
			continue
		}
		delete(enc.Fields, f.Key)
		attrs = append(attrs, slog.Any(f.Key, v))
	}
	return attrs
}
