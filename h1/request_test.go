package h1

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// manyConnectionNames is the attack of the hardening issue: a 26 KB head with
// 1,700 fields and a Connection header listing 7,000 names.
func manyConnectionNames() http.Header {
	h := http.Header{}
	for i := range 1700 {
		h[fmt.Sprintf("X-F%d", i)] = []string{"v"}
	}
	var names strings.Builder
	for i := range 7000 {
		if i > 0 {
			names.WriteByte(',')
		}
		fmt.Fprintf(&names, "x%d", i)
	}
	h["Connection"] = []string{names.String()}
	return h
}

// Filtering the fields a Connection header names is linear in fields plus
// names: one set lookup per field, never a scan of every name per field.
func TestConnectionNamesLinear(t *testing.T) {
	h := manyConnectionNames()
	r := &Request{Method: "GET", Path: "/", Host: "h", Header: h}
	var named connNames
	b, err := appendHead(nil, r, 0, &named)
	if err != nil {
		t.Fatal(err)
	}
	fields := len(h)
	if named.probes > 8*fields {
		t.Errorf("%d comparisons for %d fields and 7,000 names, want at most %d (linear)", named.probes, fields, 8*fields)
	}
	// x0…x1699 were named (X-F… were not): every X-F field is kept.
	if got := strings.Count(string(b), "\r\nX-F"); got != 1700 {
		t.Errorf("%d X-F fields sent, want 1700", got)
	}
	// Named fields are dropped, case-insensitively, whether the list is
	// short or long.
	for _, n := range []int{1, 8, 9, 100} {
		h := http.Header{"X-Drop": {"1"}, "X-Keep": {"1"}}
		names := []string{"x-DROP"}
		for i := 1; i < n; i++ {
			names = append(names, fmt.Sprintf("y%d", i))
		}
		h["Connection"] = []string{strings.Join(names, " , ")}
		b, _ := appendHead(nil, &Request{Method: "GET", Path: "/", Host: "h", Header: h}, 0, &connNames{})
		if strings.Contains(string(b), "X-Drop") || !strings.Contains(string(b), "X-Keep: 1") {
			t.Errorf("%d names: head\n%s", n, b)
		}
	}
}

func BenchmarkAppendHeadManyConnectionNames(b *testing.B) {
	h := manyConnectionNames()
	r := &Request{Method: "GET", Path: "/", Host: "h", Header: h}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		appendHead(buf[:0], r, 0, &connNames{})
	}
}

// Field names with '_' are dropped by default (nginx does the same): servers
// and frameworks that read '_' as '-' would take X_Forwarded_For for the
// X-Forwarded-For mxedge sets. Allowed, they never alias a field that is
// stripped or set.
func TestUnderscoreFields(t *testing.T) {
	h := http.Header{
		"X_Forwarded_For":   {"6.6.6.6"},
		"X_real_ip":         {"6.6.6.6"},
		"Transfer_Encoding": {"chunked"},
		"Content_Length":    {"5"},
		"Proxy_Connection":  {"x"},
		"X_Named":           {"n"},
		"Connection":        {"X-Named"},
		"X_Custom_Thing":    {"kept when allowed"},
		"X-Normal":          {"always"},
	}
	strip := func(k string) bool { return k == "X-Forwarded-For" || k == "X-Real-Ip" }
	for _, allow := range []bool{false, true} {
		r := &Request{Method: "GET", Path: "/", Host: "h", Header: h, Strip: strip, AllowUnderscore: allow}
		b, err := appendHead(nil, r, 0, &connNames{})
		if err != nil {
			t.Fatal(err)
		}
		head := string(b)
		for _, k := range []string{"X_Forwarded_For", "X_real_ip", "Transfer_Encoding", "Content_Length", "Proxy_Connection", "X_Named"} {
			if strings.Contains(head, k) {
				t.Errorf("allow=%v: %s reached the upstream:\n%s", allow, k, head)
			}
		}
		if got := strings.Contains(head, "X_Custom_Thing: kept when allowed\r\n"); got != allow {
			t.Errorf("allow=%v: X_Custom_Thing sent %v:\n%s", allow, got, head)
		}
		if !strings.Contains(head, "X-Normal: always\r\n") {
			t.Errorf("allow=%v: X-Normal lost:\n%s", allow, head)
		}
	}
}

func TestRequestHead(t *testing.T) {
	h := http.Header{
		"Connection": {"keep-alive, X-Drop"}, "X-Drop": {"1"}, "Keep-Alive": {"5"}, "Te": {"trailers"},
		"Expect": {"100-continue"}, "Upgrade": {"h2c"}, "Content-Length": {"3"}, "Host": {"evil"},
		"Accept": {"a", "b"}, "X-Set": {"client"},
	}
	fields := appender("X-Set: mxedge\r\n")
	r := &Request{Method: "PUT", Path: "/p%2Fq", Query: "a=1&b", Host: "hs", Header: h, Strip: func(k string) bool { return k == "X-Set" }, Fields: fields}
	b, err := appendHead(nil, r, 3, &connNames{})
	if err != nil {
		t.Fatal(err)
	}
	head := string(b)
	want := []string{"PUT /p%2Fq?a=1&b HTTP/1.1\r\nHost: hs\r\n", "Accept: a\r\n", "Accept: b\r\n", "X-Set: mxedge\r\nContent-Length: 3\r\n\r\n"}
	for _, w := range want {
		if !strings.Contains(head, w) {
			t.Errorf("head lacks %q:\n%s", w, head)
		}
	}
	for _, k := range []string{"X-Drop", "Keep-Alive", "Te:", "Expect", "Upgrade", "Host: evil", "X-Set: client", "Connection"} {
		if strings.Contains(head, k) {
			t.Errorf("head carries %q:\n%s", k, head)
		}
	}
	// Framing: chunked for an unknown length, Content-Length: 0 for a bodiless POST.
	b, _ = appendHead(nil, &Request{Method: "POST", Path: "/", Host: "h"}, -1, &connNames{})
	if !strings.HasSuffix(string(b), "Transfer-Encoding: chunked\r\n\r\n") {
		t.Errorf("chunked framing:\n%s", b)
	}
	b, _ = appendHead(nil, &Request{Method: "POST", Path: "/", Host: "h"}, 0, &connNames{})
	if !strings.HasSuffix(string(b), "Content-Length: 0\r\n\r\n") {
		t.Errorf("bodiless POST:\n%s", b)
	}
	// A control byte in a value is refused before anything is sent.
	if _, err := appendHead(nil, &Request{Method: "GET", Path: "/", Host: "h", Header: http.Header{"X": {"a\nb"}}}, 0, &connNames{}); err != ErrRequestField {
		t.Errorf("LF in a value: %v, want ErrRequestField", err)
	}
}

type appender string

func (a appender) AppendFields(b []byte) []byte { return append(b, a...) }

func TestCanonicalKey(t *testing.T) {
	tests := []struct {
		in   string
		fold bool
		want string
	}{
		{"x-forwarded-for", false, "X-Forwarded-For"},
		{"X_Forwarded_For", true, "X-Forwarded-For"},
		{"X_Forwarded_For", false, "X_forwarded_for"},
		{"Content-Length", false, "Content-Length"},
		{"bad key", false, "bad key"},
	}
	for _, tt := range tests {
		if got := CanonicalKey(tt.in, tt.fold); got != tt.want {
			t.Errorf("CanonicalKey(%q, %v) = %q, want %q", tt.in, tt.fold, got, tt.want)
		}
		if got, want := CanonicalKey(tt.in, false), http.CanonicalHeaderKey(tt.in); got != want {
			t.Errorf("CanonicalKey(%q) = %q, net/http %q", tt.in, got, want)
		}
	}
}
