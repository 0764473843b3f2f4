package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestSizeUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Size
		wantErr string
	}{
		{name: "int", in: "1024", want: 1024},
		{name: "zero", in: "0", want: 0},
		{name: "negative int kept for validation", in: "-1", want: -1},
		{name: "digits string", in: `"4096"`, want: 4096},
		{name: "K", in: "32K", want: 32 * 1024},
		{name: "M", in: "50M", want: 50 << 20},
		{name: "G", in: "1G", want: 1 << 30},
		{name: "lowercase", in: "10m", want: 10 << 20},
		{name: "quoted", in: `"10M"`, want: 10 << 20},
		{name: "spaces trimmed", in: `" 8K "`, want: 8192},
		{name: "unit only", in: "K", wantErr: "invalid size"},
		{name: "decimal", in: "1.5M", wantErr: "invalid size"},
		{name: "float", in: "1.5", wantErr: "must be a size"},
		{name: "negative string", in: "-5K", wantErr: "invalid size"},
		{name: "KB", in: "10KB", wantErr: "invalid size"},
		{name: "bool", in: "true", wantErr: "must be a size"},
		{name: "overflow", in: "99999999999G", wantErr: "too large"},
		{name: "list", in: "[1]", wantErr: "got a list"},
		{name: "empty string", in: `""`, wantErr: "empty size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				S Size `yaml:"s"`
			}
			err := yaml.Unmarshal([]byte("s: "+tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got err %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v, want nil", err)
			}
			if got.S != tt.want {
				t.Errorf("got %d, want %d", got.S, tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1, "1"}, {1000, "1000"}, {1024, "1K"}, {1536, "1536"}, {32 * KiB, "32K"},
		{1024 * KiB, "1M"}, {50 * MiB, "50M"}, {1 * GiB, "1G"}, {3 * GiB, "3G"}, {GiB + KiB, "1048577K"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in > 0 {
			back, err := ParseSize(tt.in.String())
			if err != nil || back != tt.in {
				t.Errorf("ParseSize(%q) = %d, %v, want %d", tt.in.String(), back, err, tt.in)
			}
		}
	}
}

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "seconds", in: "10s", want: 10 * time.Second},
		{name: "compound", in: "1m30s", want: 90 * time.Second},
		{name: "millis", in: "50ms", want: 50 * time.Millisecond},
		{name: "zero int", in: "0", want: 0},
		{name: "zero string", in: `"0"`, want: 0},
		{name: "zero with unit", in: "0s", want: 0},
		{name: "negative kept for validation", in: "-5s", want: -5 * time.Second},
		{name: "int without unit", in: "10", wantErr: "has no unit"},
		{name: "bad unit", in: "10x", wantErr: "invalid duration"},
		{name: "days", in: "1d", wantErr: "invalid duration"},
		{name: "float", in: "1.5", wantErr: "must be a duration"},
		{name: "mapping", in: "{a: 1}", wantErr: "got a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte("d: "+tt.in), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got err %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v, want nil", err)
			}
			if got.D.D() != tt.want {
				t.Errorf("got %v, want %v", got.D.D(), tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0"}, {10 * time.Second, "10s"}, {90 * time.Second, "90s"}, {2 * time.Minute, "2m"},
		{time.Hour, "1h"}, {50 * time.Millisecond, "50ms"}, {1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		if got := Duration(tt.in).String(); got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMarshalRoundTrip checks that Size and Duration encode to forms they decode.
func TestMarshalRoundTrip(t *testing.T) {
	type pair struct {
		S Size     `yaml:"s"`
		D Duration `yaml:"d"`
	}
	for _, in := range []pair{{0, 0}, {1, 1}, {1000, Duration(time.Second)}, {50 * MiB, Duration(90 * time.Second)}, {GiB, Duration(1500 * time.Millisecond)}} {
		out, err := yaml.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var back pair
		if err := yaml.Unmarshal(out, &back); err != nil {
			t.Fatalf("unmarshal %q: %v", out, err)
		}
		if back != in {
			t.Errorf("round trip of %+v through %q = %+v", in, out, back)
		}
	}
}
