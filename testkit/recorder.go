package testkit

import (
	"context"
	"log/slog"
	"sync"
)

// LogRecorder is a slog.Handler that keeps every record, at every level,
// as a Line for assertions: "time", "level" (as slog prints it), "msg",
// then the attributes, those of a group under "group.key". The handlers
// that WithAttrs and WithGroup return record into the same LogRecorder.
// It is safe for concurrent use. The zero value is ready to use.
type LogRecorder struct {
	mu    sync.Mutex
	lines []Line
}

// Logger returns a logger writing into r.
func (r *LogRecorder) Logger() *slog.Logger { return slog.New(r) }

// Lines returns the lines recorded so far.
func (r *LogRecorder) Lines() []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Line(nil), r.lines...)
}

// Find returns the lines recorded so far that match.
func (r *LogRecorder) Find(match func(Line) bool) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return find(r.lines, match)
}

// Enabled reports true: every level is recorded.
func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle records rec.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	return r.record(Line{}, "", rec)
}

// WithAttrs returns a handler recording into r with as added to each record.
func (r *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return (&recorderChild{r: r}).WithAttrs(as)
}

// WithGroup returns a handler recording into r with later attributes under name.
func (r *LogRecorder) WithGroup(name string) slog.Handler {
	return (&recorderChild{r: r}).WithGroup(name)
}

// record adds rec to the lines, over the attributes in base, with its own
// attributes under prefix.
func (r *LogRecorder) record(base Line, prefix string, rec slog.Record) error {
	l := Line{"time": rec.Time, "level": rec.Level.String(), "msg": rec.Message}
	for k, v := range base {
		l[k] = v
	}
	rec.Attrs(func(a slog.Attr) bool {
		addAttr(l, prefix, a)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, l)
	r.mu.Unlock()
	return nil
}

// recorderChild is a LogRecorder's handler with attributes or a group.
type recorderChild struct {
	r      *LogRecorder
	attrs  Line   // attributes added by WithAttrs, keys already prefixed
	prefix string // "g1.g2." after WithGroup("g1").WithGroup("g2")
}

func (c *recorderChild) Enabled(context.Context, slog.Level) bool { return true }

func (c *recorderChild) Handle(_ context.Context, rec slog.Record) error {
	return c.r.record(c.attrs, c.prefix, rec)
}

func (c *recorderChild) WithAttrs(as []slog.Attr) slog.Handler {
	n := &recorderChild{r: c.r, attrs: Line{}, prefix: c.prefix}
	for k, v := range c.attrs {
		n.attrs[k] = v
	}
	for _, a := range as {
		addAttr(n.attrs, c.prefix, a)
	}
	return n
}

func (c *recorderChild) WithGroup(name string) slog.Handler {
	if name == "" {
		return c
	}
	return &recorderChild{r: c.r, attrs: c.attrs, prefix: c.prefix + name + "."}
}

// addAttr sets a in l under prefix, flattening groups as slog's handlers do
// (an empty key is dropped; a group with an empty key is inlined).
func addAttr(l Line, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			addAttr(l, p, ga)
		}
		return
	}
	if a.Key == "" {
		return
	}
	l[prefix+a.Key] = v.Any()
}
