package testkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TempFile writes content to a file name in a new t.TempDir() (mode 0600)
// and returns its path: a YAML config, an appservice registration...
func TempFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	WriteFile(t, path, content)
	return path
}

// TempJSON writes v as indented JSON to a file name in a new t.TempDir()
// and returns its path. A JSON document is YAML: this writes an mxedge
// config built from maps.
func TempJSON(t testing.TB, name string, v any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	WriteJSON(t, path, v)
	return path
}

// WriteFile writes content to path (mode 0600), replacing the file: a
// config rewritten before a reload.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// WriteJSON writes v as indented JSON to path (mode 0600), replacing the file.
func WriteJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, path, string(b))
}
