package testkit

import (
	"fmt"
	"strings"
)

// Line is one log line as a JSON object: "time", "level", "msg" and the
// attributes. A Proc decodes the mxedge process's JSON lines into Lines;
// a LogRecorder builds one from each slog record.
type Line map[string]any

// Str returns the value of key as fmt.Sprint prints it ("" when absent).
func (l Line) Str(key string) string {
	v, ok := l[key]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

// Msg matches a line whose message is msg and which has, for each
// key, value pair in kv, that attribute (compared as Line.Str).
func Msg(msg string, kv ...string) func(Line) bool {
	attrs := Attrs(kv...)
	return func(l Line) bool { return l.Str("msg") == msg && attrs(l) }
}

// Attrs matches a line with, for each key, value pair in kv, that
// attribute (compared as Line.Str), whatever its message.
func Attrs(kv ...string) func(Line) bool {
	if len(kv)%2 != 0 {
		panic("testkit.Attrs: odd number of arguments")
	}
	return func(l Line) bool {
		for i := 0; i < len(kv); i += 2 {
			if v, ok := l[kv[i]]; !ok || fmt.Sprint(v) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// Contains matches a line whose message, or one of whose attributes
// written key=value, contains sub.
func Contains(sub string) func(Line) bool {
	return func(l Line) bool {
		for k, v := range l {
			if k == "msg" {
				if strings.Contains(fmt.Sprint(v), sub) {
					return true
				}
				continue
			}
			if strings.Contains(k+"="+fmt.Sprint(v), sub) {
				return true
			}
		}
		return false
	}
}

// find returns the lines of ls that match.
func find(ls []Line, match func(Line) bool) []Line {
	var out []Line
	for _, l := range ls {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}
