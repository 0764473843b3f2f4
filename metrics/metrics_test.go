package metrics

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/mxedge/mxedge/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testClasses mirrors proxy.ClassNames (metrics does not import proxy).
var testClasses = []string{
	"other", "client", "sync", "send", "state", "login", "register",
	"media_upload", "media_download", "media", "federation", "well_known",
	"admin", "synapse_client", "preflight", "refused", "mas", "rtc", "route",
}

const (
	cOther = iota
	cClient
	cSync
	cSend
)

// mxedgeMetrics are the metric names New and BuildInfo register (not the Go and
// process collectors').
var mxedgeMetrics = []string{
	"mxedge_http_requests_total",
	"mxedge_http_request_duration_seconds",
	"mxedge_http_requests_in_flight",
	"mxedge_http_request_body_bytes_total",
	"mxedge_http_response_body_bytes_total",
	"mxedge_upstream_duration_seconds",
	"mxedge_upstream_errors_total",
	"mxedge_upstream_ready",
	"mxedge_config_reloads_total",
	"mxedge_config_last_reload_success_timestamp_seconds",
	"mxedge_config_last_reload_successful",
}

// sequence is the fixed sequence of calls behind the golden exposition.
func sequence(m *Metrics) {
	m.Begin(cSync)
	m.Begin(cSync)
	m.End(cSync, "GET", 200, 30*time.Second, 0, 1234)
	m.Begin(cClient)
	m.End(cClient, "GET", 200, 4*time.Millisecond, 0, 512)
	m.Begin(cClient)
	m.End(cClient, "POST", 429, 300*time.Microsecond, 87, 70)
	m.Begin(cSend)
	m.End(cSend, "PUT", 200, 12*time.Millisecond, 2048, 64)
	m.Begin(cOther)
	m.End(cOther, "PROPFIND", 404, time.Millisecond, -1, 40) // unknown method, unknown length
	m.Begin(cClient)
	m.End(cClient, "GET", 0, time.Millisecond, 0, 0) // no status: code="other"
	m.Begin(cClient)
	m.End(cClient, "GET", 200, 2*time.Millisecond, 0, 100)
	m.Upstream(cSync, 29*time.Second, "")
	m.Upstream(cClient, 3*time.Millisecond, "")
	m.Upstream(cClient, time.Millisecond, "refused")
	m.Upstream(cSend, 60*time.Second, "timeout")
	m.Upstream(cSend, 5*time.Millisecond, "reset")
	m.Upstream(cSend, 5*time.Millisecond, "tls handshake")
	m.Upstream(cSend, 5*time.Millisecond, "client") // the client's fault: not an upstream error
	m.SetReady(true)
	m.SetReady(false)
	m.SetReady(true)
	m.Reloaded(true, time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	m.Reloaded(false, time.Date(2026, 11, 27, 9, 5, 0, 0, time.UTC))
}

func TestGolden(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, testClasses)
	sequence(m)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "mxedge_") {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := testkit.Golden(t, filepath.Join("testdata", "exposition.golden"), buf.Bytes(), *update)
	// The same comparison through the client library's helper.
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want), mxedgeMetrics...); err != nil {
		t.Errorf("GatherAndCompare: %v", err)
	}
}

// TestLint lints every metric: the whole registry through GatherAndLint and
// each registered collector on its own through CollectAndLint.
func TestLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	m := New(rec, testClasses)
	BuildInfo(rec, "v1.2.3", "abcdef0")
	sequence(m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if len(rec.cs) < 12 {
		t.Fatalf("got %d collectors registered, want at least 12", len(rec.cs))
	}
	for _, c := range rec.cs {
		ps, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// recordingRegisterer keeps what is registered so that each collector can be
// linted alone.
type recordingRegisterer struct {
	prometheus.Registerer
	cs []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	BuildInfo(reg, "v1.2.3", "abcdef0")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "mxedge_build_info" {
		t.Fatalf("got %d families, want mxedge_build_info only", len(mfs))
	}
	labels := map[string]string{}
	for _, l := range mfs[0].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != "v1.2.3" || labels["commit"] != "abcdef0" || !strings.HasPrefix(labels["goversion"], "go") {
		t.Errorf("got labels %v, want version v1.2.3, commit abcdef0, goversion go…", labels)
	}
	if v := mfs[0].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("got value %v, want 1", v)
	}
}

func TestRuntimeCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, testClasses)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var goSeen, procSeen bool
	for _, mf := range mfs {
		goSeen = goSeen || mf.GetName() == "go_goroutines"
		procSeen = procSeen || strings.HasPrefix(mf.GetName(), "process_")
	}
	if !goSeen {
		t.Error("got no go_goroutines, want the Go collector registered")
	}
	if !procSeen && runtime.GOOS == "linux" {
		t.Error("got no process_* metrics, want the process collector registered")
	}

	// A registry that already has them (the caller registered them) is fine.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	New(reg2, testClasses)
}

// TestCardinality drives End and Upstream with random input: the series count
// stays within classes × methods × codes, and random methods or out-of-range
// classes and codes add nothing.
func TestCardinality(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, testClasses)
	r := rand.New(rand.NewPCG(1, 2))
	codes := []int{200, 404, 429}
	for i := 0; i < 20000; i++ {
		c := r.IntN(len(testClasses)+4) - 2 // includes out-of-range classes
		method := fmt.Sprintf("/_matrix/client/v3/rooms/%x/send", r.Uint64())
		if i%2 == 0 {
			method = methods[r.IntN(numMethods)]
		}
		code := codes[r.IntN(len(codes))]
		if i%100 == 0 {
			code = r.IntN(2000) - 500 // garbage codes all count as "other"
		}
		m.Begin(c)
		m.End(c, method, code, time.Duration(r.Int64N(int64(time.Minute))), r.Int64N(1<<20), r.Int64N(1<<20))
		m.Upstream(c, time.Millisecond, fmt.Sprint(r.Uint64()))
	}
	got := testutil.CollectAndCount(m.requests)
	max := len(testClasses) * numMethods * numCodes
	if got > max {
		t.Errorf("got %d request series, want at most %d", got, max)
	}
	// Non-garbage codes: 3 codes; garbage codes mostly fall out of 100-599.
	// Count series whose code is neither a real code nor "other".
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "class":
					if !contains(testClasses, l.GetValue()) {
						t.Errorf("%s: got class %q, want one of the classes", mf.GetName(), l.GetValue())
					}
				case "method":
					if !contains(methods[:], l.GetValue()) {
						t.Errorf("%s: got method %q, want one of %v", mf.GetName(), l.GetValue(), methods)
					}
				case "kind":
					if !contains(errKinds[:], l.GetValue()) {
						t.Errorf("%s: got kind %q, want one of %v", mf.GetName(), l.GetValue(), errKinds)
					}
				}
			}
		}
	}
	// Every gauge is back to zero: Begin and End pair up even for clamped classes.
	for i := range testClasses {
		if v := testutil.ToFloat64(m.inFlight[i]); v != 0 {
			t.Errorf("in flight %s: got %v, want 0", testClasses[i], v)
		}
	}
	// Fixed families: exactly one series per class (or class × kind).
	for name, want := range map[string]int{
		"mxedge_http_requests_in_flight":        len(testClasses),
		"mxedge_http_request_duration_seconds":  len(testClasses),
		"mxedge_upstream_errors_total":          len(testClasses) * len(errKinds),
		"mxedge_http_response_body_bytes_total": len(testClasses),
	} {
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) != want {
				t.Errorf("%s: got %d series, want %d", name, len(mf.GetMetric()), want)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestConcurrentFirstUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, testClasses)
	done := make(chan struct{})
	const workers, each = 8, 500
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < each; i++ {
				m.Begin(cClient)
				m.End(cClient, "GET", 200+i%5, time.Millisecond, 1, 1)
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	var total float64
	for code := 200; code < 205; code++ {
		total += testutil.ToFloat64(m.requests.WithLabelValues("client", "GET", fmt.Sprint(code)))
	}
	if total != workers*each {
		t.Errorf("got %v requests counted, want %d", total, workers*each)
	}
}

func TestEndAllocs(t *testing.T) {
	m := New(prometheus.NewRegistry(), testClasses)
	m.Begin(cClient)
	m.End(cClient, "GET", 200, time.Millisecond, 10, 10) // warm the cache
	allocs := testing.AllocsPerRun(1000, func() {
		m.Begin(cClient)
		m.End(cClient, "GET", 200, time.Millisecond, 10, 10)
		m.Upstream(cClient, time.Millisecond, "")
	})
	if allocs != 0 {
		t.Errorf("got %v allocs per request, want 0", allocs)
	}
}

func BenchmarkEnd(b *testing.B) {
	m := New(prometheus.NewRegistry(), testClasses)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Begin(cClient)
		m.End(cClient, "GET", 200, time.Duration(i%1000)*time.Microsecond, 100, 1000)
	}
}

func BenchmarkEndParallel(b *testing.B) {
	m := New(prometheus.NewRegistry(), testClasses)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			m.Begin(i % len(testClasses))
			m.End(i%len(testClasses), "POST", 200+i%3, time.Duration(i%1000)*time.Microsecond, 100, 1000)
		}
	})
}

func TestOpsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, testClasses)
	sequence(m)
	ready := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "upstream down\n")
	})
	h := OpsHandler(reg, nil, ready)
	tests := []struct {
		name, method, path string
		wantCode           int
		wantBody           string
		wantType           string
	}{
		{"metrics", "GET", "/metrics", 200, "mxedge_http_requests_total{", "text/plain"},
		{"healthz default", "GET", "/healthz", 200, "ok", "text/plain"},
		{"healthz head", "HEAD", "/healthz", 200, "", ""},
		{"readyz delegated", "GET", "/readyz", 503, "upstream down", ""},
		{"unknown path", "GET", "/nope", 404, `"errcode":"M_NOT_FOUND"`, "application/json"},
		{"metrics subpath", "GET", "/metrics/x", 404, `"errcode":"M_NOT_FOUND"`, "application/json"},
		{"post", "POST", "/metrics", 405, `"errcode":"M_UNRECOGNIZED"`, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Errorf("got status %d, want %d", rec.Code, tt.wantCode)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("got body %q, want it to contain %q", rec.Body.String(), tt.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("got Content-Type %q, want %q…", ct, tt.wantType)
			}
		})
	}
	// Native histograms reach a scraper that asks for protobuf.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, "protobuf") {
		t.Fatalf("got Content-Type %q, want protobuf", ct)
	}
	dec := expfmt.NewDecoder(rec.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	var native bool
	for {
		var mf dtoMetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() == "mxedge_http_request_duration_seconds" {
			for _, mt := range mf.GetMetric() {
				if h := mt.GetHistogram(); h.GetSchema() != 0 || h.GetZeroThreshold() != 0 || len(h.GetPositiveSpan()) > 0 {
					native = true
				}
			}
		}
	}
	if !native {
		t.Error("got no native histogram data in the protobuf exposition, want it")
	}
}

// TestDocumented: every metric registered here has a row in docs/METRICS.md.
func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "METRICS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(mxedgeMetrics, "mxedge_build_info") {
		if !bytes.Contains(doc, []byte("| `"+name+"` |")) {
			t.Errorf("got no row for %s in docs/METRICS.md, want one", name)
		}
	}
}
