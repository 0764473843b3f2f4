package config

import (
	"cmp"
	"fmt"
	"slices"
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
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("invalid configuration (%d %s):\n  %s", len(e.Problems), noun, strings.Join(lines, "\n  "))
}

// problems collects Problems during validation. lines maps full dotted keys
// ("listen.http", "trusted_proxies[2]") to their line in the file. sources
// maps keys set by a flag or an environment variable (and not by the file)
// to a description of that source: problems under them name the source
// instead of a file line. bad holds keys whose value could not be decoded:
// validation problems under them are dropped (the decode problem says it).
type problems struct {
	file    string
	lines   map[string]int
	sources map[string]string
	bad     map[string]bool
	list    []Problem
}

// maxProblems bounds the problems kept; the rest are counted in one last
// problem.
const maxProblems = 200

// full reports whether the list is at its bound, noting the overflow once.
func (p *problems) full() bool {
	if len(p.list) < maxProblems {
		return false
	}
	if len(p.list) == maxProblems {
		p.list = append(p.list, Problem{File: p.file, Msg: "too many problems; fix these first"})
	}
	return true
}

// add records a problem at key. The line is that of key, or of its nearest
// parent key present in the file.
func (p *problems) add(key, format string, args ...any) {
	if nearest(p.bad, key) != "" {
		return
	}
	if p.full() {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if k := nearest(p.sources, key); k != "" {
		p.list = append(p.list, Problem{Key: key, Msg: msg + " (set by " + p.sources[k] + ")"})
		return
	}
	p.list = append(p.list, Problem{File: p.file, Line: p.line(key), Key: key, Msg: msg})
}

// addDecode records a problem with the file's content at key (a wrong type,
// an unknown key) and marks key so that validation does not report it again.
func (p *problems) addDecode(key string, line int, format string, args ...any) {
	if line == 0 {
		line = p.line(key)
	}
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[key] = true
	if p.full() {
		return
	}
	p.list = append(p.list, Problem{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// nearest returns key or its nearest parent present in m, or "".
func nearest[V any](m map[string]V, key string) string {
	for k := key; k != ""; k = parentKey(k) {
		if _, ok := m[k]; ok {
			return k
		}
	}
	return ""
}

func (p *problems) line(key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if n, ok := p.lines[k]; ok {
			return n
		}
	}
	return 0
}

// parentKey returns the key one level up: "a.b" → "a", "a[2]" → "a", "a" → "".
func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

// err returns the problems as an *Error, or nil. They are ordered as a
// reader meets them: those without a line (missing keys, flags, variables)
// first, then by line; the order of discovery breaks ties.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := slices.Clone(p.list)
	n := len(list)
	if n > maxProblems {
		n = maxProblems // the overflow note stays last
	}
	slices.SortStableFunc(list[:n], func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &Error{Problems: list}
}
