package config

import (
	"fmt"
	"strings"
)

// Problem is one configuration mistake: where it is and what is wrong.
type Problem struct {
	File string // config file, empty for flags/env/defaults
	Line int    // 1-based line of the key in File, 0 when unknown
	Key  string // full dotted key, e.g. "rate_limits.rc_login.address.burst_count"
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration. Load returns it.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return fmt.Sprintf("invalid configuration (%d problems):\n  %s", len(e.Problems), strings.Join(lines, "\n  "))
}

// problems collects Problems during validation. lines maps full dotted keys
// ("listen.http", "trusted_proxies[2]") to their line in the file.
type problems struct {
	file  string
	lines map[string]int
	list  []Problem
}

// add records a problem at key. The line is that of key, or of its nearest
// parent key present in the file.
func (p *problems) add(key, format string, args ...any) {
	p.list = append(p.list, Problem{File: p.file, Line: p.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) line(key string) int {
	for k := key; k != ""; {
		if n, ok := p.lines[k]; ok {
			return n
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{Problems: p.list}
}
