package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Size is a byte count. In YAML it is an integer number of bytes, or a string
// of digits with an optional K, M or G suffix (1024-based, as Synapse reads
// them; lowercase accepted): 32K = 32768. The zero value is 0 bytes.
type Size int64

// Size units (1024-based).
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// ParseSize parses "32K", "50M", "1G" or "4096" into a Size.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size: want bytes or a number with K, M or G (1024-based), like 32K")
	}
	mult := Size(1)
	switch t[len(t)-1] {
	case 'K', 'k':
		mult = KiB
	case 'M', 'm':
		mult = MiB
	case 'G', 'g':
		mult = GiB
	}
	digits := t
	if mult != 1 {
		digits = t[:len(t)-1]
	}
	if digits == "" {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with K, M or G (1024-based), like 32K", s)
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("invalid size %q: want bytes or a number with K, M or G (1024-based), like 32K", s)
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(n) * mult, nil
}

// String formats s in the largest unit that divides it exactly: 32K, 50M,
// 1G, or plain bytes (1000).
func (s Size) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return strconv.FormatInt(int64(s/GiB), 10) + "G"
	case s != 0 && s%MiB == 0:
		return strconv.FormatInt(int64(s/MiB), 10) + "M"
	case s != 0 && s%KiB == 0:
		return strconv.FormatInt(int64(s/KiB), 10) + "K"
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a size like 32K, 50M, 1G or a number of bytes, got a %s", kindName(n))
	}
	switch n.ShortTag() {
	case "!!int":
		var v int64
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("invalid size %q: %v", n.Value, err)
		}
		*s = Size(v)
		return nil
	case "!!str":
		v, err := ParseSize(n.Value)
		if err != nil {
			return err
		}
		*s = v
		return nil
	}
	return fmt.Errorf("must be a size like 32K, 50M, 1G or a number of bytes, got %q", n.Value)
}

// MarshalYAML implements yaml.Marshaler (the String form).
func (s Size) MarshalYAML() (any, error) {
	if s > 0 && s%KiB == 0 {
		return s.String(), nil
	}
	return int64(s), nil
}

// Duration is a time.Duration. In YAML it is a Go duration string ("10s",
// "1m30s") or the number 0 (none). The zero value is 0.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as "0", whole hours ("2h"), minutes ("10m"), seconds
// ("90s"), or time.Duration's form ("1.5s").
func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0"
	case t%time.Hour == 0:
		return strconv.FormatInt(int64(t/time.Hour), 10) + "h"
	case t%time.Minute == 0:
		return strconv.FormatInt(int64(t/time.Minute), 10) + "m"
	case t%time.Second == 0:
		return strconv.FormatInt(int64(t/time.Second), 10) + "s"
	}
	return t.String()
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration like 10s, 2m or 0, got a %s", kindName(n))
	}
	switch n.ShortTag() {
	case "!!int":
		if v, err := strconv.ParseInt(n.Value, 0, 64); err == nil && v == 0 {
			*d = 0
			return nil
		}
		return fmt.Errorf("duration %s has no unit: write it like 10s or 2m (only 0 may omit the unit)", n.Value)
	case "!!str":
		v, err := time.ParseDuration(strings.TrimSpace(n.Value))
		if err != nil {
			return fmt.Errorf("invalid duration %q: want a Go duration like 10s, 2m or 1h30m", n.Value)
		}
		*d = Duration(v)
		return nil
	}
	return fmt.Errorf("must be a duration like 10s, 2m or 0, got %q", n.Value)
}

// MarshalYAML implements yaml.Marshaler (the String form).
func (d Duration) MarshalYAML() (any, error) {
	if d == 0 {
		return 0, nil
	}
	return d.String(), nil
}

// kindName names a YAML node kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	if n.ShortTag() == "!!null" {
		return "null"
	}
	return "scalar"
}
