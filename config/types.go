package config

import (
	"time"
)

// Size is a byte count; in YAML an integer or a string with a K, M or G suffix
// (1024-based, as Synapse reads them).
type Size int64

// Duration is a time.Duration; in YAML a Go duration string ("10s") or 0.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
