package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestZapLoggerWritesSlogJSON(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	z := newZapLogger(l).Named("obtain").With(zap.String("identifier", "a.example"))
	z.Debug("hidden")
	z.Info("lock acquired", zap.Int("attempt", 2), zap.Duration("wait", 1500*time.Millisecond),
		zap.Bool("renewal", true), zap.Strings("sans", []string{"a", "b"}), zap.Error(errors.New("boom")),
		zap.Float64("ratio", 0.5))
	z.Error("could not get certificate")

	dec := json.NewDecoder(&buf)
	var recs []map[string]any
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 2 {
		t.Fatalf("records: got %d, want 2 (debug filtered): %s", len(recs), buf.String())
	}
	r := recs[0]
	want := map[string]any{
		"level": "INFO", "msg": "lock acquired", "component": "certmagic", "logger": "obtain",
		"identifier": "a.example", "attempt": float64(2), "wait": float64(1500 * time.Millisecond),
		"renewal": true, "error": "boom", "ratio": 0.5,
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s: got %#v, want %#v", k, r[k], v)
		}
	}
	if sans, _ := r["sans"].([]any); len(sans) != 2 || sans[0] != "a" {
		t.Errorf("sans: got %#v", r["sans"])
	}
	if recs[1]["level"] != "ERROR" {
		t.Errorf("level: got %v, want ERROR", recs[1]["level"])
	}
}
