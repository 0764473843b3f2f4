package proxy

import (
	"strings"
	"testing"
)

func TestNewRequestID(t *testing.T) {
	seen := make(map[string]bool)
	var buf [20]byte
	for range 1000 {
		id := NewRequestID(&buf)
		if len(id) != 20 || !ValidRequestID(id) {
			t.Fatalf("NewRequestID() = %q, want 20 valid characters", id)
		}
		if string(buf[:]) != id {
			t.Fatalf("buf holds %q, want %q", buf[:], id)
		}
		if seen[id] {
			t.Fatalf("NewRequestID() repeated %q", id)
		}
		seen[id] = true
	}
	if n := testing.AllocsPerRun(100, func() { NewRequestID(&buf) }); n > 1 {
		t.Errorf("NewRequestID allocates %v times, want at most 1", n)
	}
}

func TestValidRequestID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"0123456789abcdefghjk", true},
		{"Root:1-5759e988-bd862e3fe1be46a994272793", true},
		{"a=b", false},
		{"req.1:2-3", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a b", false},
		{"a_b", false},
		{"a\r\nX: y", false},
		{"a/b", false},
		{"\u00e9", false},
		{"a\x00", false},
	}
	for _, tc := range tests {
		if got := ValidRequestID(tc.id); got != tc.want {
			t.Errorf("ValidRequestID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	var buf [20]byte
	for b.Loop() {
		NewRequestID(&buf)
	}
}
