package metrics

import (
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Methods are the method label values. A request whose method is not one of the
// first six is counted as "other".
var methods = [numMethods]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "other"}

const (
	numMethods  = 7
	methodOther = numMethods - 1
	// numCodes bounds the status-code cache: codes 100-599 get their own series,
	// anything else is counted under code="other" (slot 0).
	numCodes = 600
)

// Upstream error kinds, the values of the kind label of mxedge_upstream_errors_total.
var errKinds = [...]string{"refused", "reset", "timeout", "other", "protocol", "unavailable", "queue"}

// DurationBuckets are the classic buckets of the request and upstream duration
// histograms, in seconds: fine below 100 ms for API calls, coarse up to two
// minutes so that 30 s long-polls and slow initial syncs land in a real bucket.
var DurationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 20, 30, 35, 60, 120,
}

// Native histogram settings: a bucket factor of 1.1 (about 5 % relative error), at
// most 160 buckets per series, and a reset of the schema at most once an hour.
const (
	nativeBucketFactor = 1.1
	nativeMaxBuckets   = 160
	nativeMinReset     = time.Hour
)

// Metrics is mxedge's set of request, upstream, readiness and reload metrics.
// Create it with New; the zero value is not usable. All methods are safe for
// concurrent use.
type Metrics struct {
	classes []string

	requests *prometheus.CounterVec
	// codes[class*numMethods+method] points to a lazily allocated table of
	// counters indexed by status code.
	codes []atomic.Pointer[codeTable]

	duration []prometheus.Observer // by class
	inFlight []prometheus.Gauge    // by class
	reqBytes []prometheus.Counter  // by class
	resBytes []prometheus.Counter  // by class

	upDuration []prometheus.Observer               // by class
	upErrors   [][len(errKinds)]prometheus.Counter // by class, kind

	ready          prometheus.Gauge
	tunnelsOpen    prometheus.Gauge
	tunnels        prometheus.Counter
	tunnelSeconds  prometheus.Counter
	reloadOK       prometheus.Counter
	reloadFailed   prometheus.Counter
	reloadLastOK   prometheus.Gauge
	reloadLastGood prometheus.Gauge
}

type codeTable [numCodes]atomic.Pointer[counterRef]

type counterRef struct{ c prometheus.Counter }

// New registers mxedge's metrics on reg, plus the Go runtime and process
// collectors (unless reg already has them), and returns them. The readiness
// gauge starts at 0 until SetReady(true). classes are the route class label values
// (proxy.ClassNames); later calls address a class by its index in classes. New
// panics if registration fails (a duplicate registration is a programming error)
// or if classes is empty.
func New(reg prometheus.Registerer, classes []string) *Metrics {
	if len(classes) == 0 {
		panic("metrics: no route classes")
	}
	m := &Metrics{classes: append([]string(nil), classes...)}
	n := len(classes)

	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "http", Name: "requests_total",
		Help: "Requests answered, by route class, method and status code.",
	}, []string{"class", "method", "code"})
	m.codes = make([]atomic.Pointer[codeTable], n*numMethods)

	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mxedge", Subsystem: "http", Name: "request_duration_seconds",
		Help:                            "Time from the request's arrival to the end of its response, by route class.",
		Buckets:                         DurationBuckets,
		NativeHistogramBucketFactor:     nativeBucketFactor,
		NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
		NativeHistogramMinResetDuration: nativeMinReset,
	}, []string{"class"})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "mxedge", Subsystem: "http", Name: "requests_in_flight",
		Help: "Requests being served, by route class (class sync shows the open long-polls).",
	}, []string{"class"})
	reqBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "http", Name: "request_body_bytes_total",
		Help: "Request body bytes read from clients, by route class.",
	}, []string{"class"})
	resBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "http", Name: "response_body_bytes_total",
		Help: "Response body bytes written to clients, by route class.",
	}, []string{"class"})
	upDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mxedge", Subsystem: "upstream", Name: "duration_seconds",
		Help:                            "Time from the request's arrival to the upstream's response headers (or the failure), by route class.",
		Buckets:                         DurationBuckets,
		NativeHistogramBucketFactor:     nativeBucketFactor,
		NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
		NativeHistogramMinResetDuration: nativeMinReset,
	}, []string{"class"})
	upErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "upstream", Name: "errors_total",
		Help: "Upstream requests that failed without a response, by route class and kind (refused, reset, timeout, other).",
	}, []string{"class", "kind"})
	m.ready = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "mxedge", Subsystem: "upstream", Name: "ready",
		Help: "1 while /readyz answers 200 (the upstream answered its health check recently), else 0.",
	})
	m.tunnelsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "mxedge", Subsystem: "websocket", Name: "tunnels_open",
		Help: "WebSocket tunnels open (routes that allow them: the LiveKit SFU, routes with websocket: true).",
	})
	m.tunnels = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "websocket", Name: "tunnels_total",
		Help: "WebSocket tunnels opened.",
	})
	m.tunnelSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "websocket", Name: "tunnel_seconds_total",
		Help: "Total lifetime of closed WebSocket tunnels, in seconds.",
	})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mxedge", Subsystem: "config", Name: "reloads_total",
		Help: "Configuration loads (at start-up and on SIGHUP), by result (success, failure).",
	}, []string{"result"})
	m.reloadLastOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "mxedge", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load (start-up or SIGHUP).",
	})
	m.reloadLastGood = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "mxedge", Subsystem: "config", Name: "last_reload_successful",
		Help: "1 if the last configuration reload succeeded (or none was tried), 0 if it failed and the previous configuration is still serving.",
	})

	reg.MustRegister(m.requests, duration, inFlight, reqBytes, resBytes,
		upDuration, upErrors, m.ready, m.tunnelsOpen, m.tunnels, m.tunnelSeconds, reloads, m.reloadLastOK, m.reloadLastGood)
	// The runtime collectors may already be registered by the caller: that is fine.
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				panic(err)
			}
		}
	}

	m.duration = make([]prometheus.Observer, n)
	m.inFlight = make([]prometheus.Gauge, n)
	m.reqBytes = make([]prometheus.Counter, n)
	m.resBytes = make([]prometheus.Counter, n)
	m.upDuration = make([]prometheus.Observer, n)
	m.upErrors = make([][len(errKinds)]prometheus.Counter, n)
	for i, c := range m.classes {
		m.duration[i] = duration.WithLabelValues(c)
		m.inFlight[i] = inFlight.WithLabelValues(c)
		m.reqBytes[i] = reqBytes.WithLabelValues(c)
		m.resBytes[i] = resBytes.WithLabelValues(c)
		m.upDuration[i] = upDuration.WithLabelValues(c)
		for k, kind := range errKinds {
			m.upErrors[i][k] = upErrors.WithLabelValues(c, kind)
		}
	}
	m.reloadOK = reloads.WithLabelValues("success")
	m.reloadFailed = reloads.WithLabelValues("failure")
	m.reloadLastGood.Set(1)
	return m
}

// class maps an out-of-range class index to 0 rather than panicking on the
// request path.
func (m *Metrics) class(c int) int {
	if uint(c) >= uint(len(m.classes)) {
		return 0
	}
	return c
}

// Begin counts a request of class c as in flight. Every Begin must be paired
// with one End of the same class.
func (m *Metrics) Begin(c int) {
	m.inFlight[m.class(c)].Inc()
}

// End records a finished request of class c: method (any string; unknown
// methods count as "other"), status code (100-599; anything else counts as
// "other"), duration d, and the request and response body bytes (negative
// values are ignored). It also ends the in-flight count taken by Begin.
func (m *Metrics) End(c int, method string, code int, d time.Duration, in, out int64) {
	c = m.class(c)
	m.inFlight[c].Dec()
	m.codeCounter(c, methodIndex(method), code).Inc()
	m.duration[c].Observe(d.Seconds())
	if in > 0 {
		m.reqBytes[c].Add(float64(in))
	}
	if out > 0 {
		m.resBytes[c].Add(float64(out))
	}
}

// codeCounter returns the requests_total child for (class, method, code),
// creating and caching it on first use.
func (m *Metrics) codeCounter(c, method, code int) prometheus.Counter {
	if code < 100 || code >= numCodes {
		code = 0
	}
	slot := &m.codes[c*numMethods+method]
	t := slot.Load()
	if t == nil {
		t = new(codeTable)
		if !slot.CompareAndSwap(nil, t) {
			t = slot.Load()
		}
	}
	ref := t[code].Load()
	if ref == nil {
		label := "other"
		if code != 0 {
			label = strconv.Itoa(code)
		}
		// Concurrent first uses may both get here: WithLabelValues returns the
		// same child to both, so either stored pointer is right.
		ref = &counterRef{m.requests.WithLabelValues(m.classes[c], methods[method], label)}
		t[code].Store(ref)
	}
	return ref.c
}

// methodIndex maps a request method to its index in methods without allocating.
func methodIndex(method string) int {
	switch method {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "OPTIONS":
		return 5
	}
	return methodOther
}

// Upstream records one upstream round trip of class c that took d (until the
// response headers, or the failure). errKind is "" for a response (of any
// status), or refused, reset, timeout, protocol (a broken answer),
// unavailable (no healthy member), queue (the pool's queue was full) or other
// for a failure of the upstream; "client" and "canceled" (the client's fault:
// it went away, its body was too large or stalled) are not upstream errors and
// only record d. Unknown kinds count as other.
func (m *Metrics) Upstream(c int, d time.Duration, errKind string) {
	c = m.class(c)
	m.upDuration[c].Observe(d.Seconds())
	switch errKind {
	case "", "client", "canceled":
	case "refused":
		m.upErrors[c][0].Inc()
	case "reset":
		m.upErrors[c][1].Inc()
	case "timeout":
		m.upErrors[c][2].Inc()
	case "protocol":
		m.upErrors[c][4].Inc()
	case "unavailable":
		m.upErrors[c][5].Inc()
	case "queue":
		m.upErrors[c][6].Inc()
	default:
		m.upErrors[c][3].Inc()
	}
}

// TunnelOpened counts a WebSocket tunnel opening.
func (m *Metrics) TunnelOpened() {
	m.tunnels.Inc()
	m.tunnelsOpen.Inc()
}

// TunnelClosed counts a WebSocket tunnel that was open for d closing.
func (m *Metrics) TunnelClosed(d time.Duration) {
	m.tunnelsOpen.Dec()
	m.tunnelSeconds.Add(d.Seconds())
}

// SetReady sets the readiness gauge: call it whenever /readyz changes state.
func (m *Metrics) SetReady(ok bool) {
	if ok {
		m.ready.Set(1)
	} else {
		m.ready.Set(0)
	}
}

// Reloaded records a configuration load that finished at at: call it once
// after the initial load at start-up (as Prometheus does for its own config,
// so the timestamp says when the running configuration was loaded) and after
// every SIGHUP reload.
func (m *Metrics) Reloaded(ok bool, at time.Time) {
	if ok {
		m.reloadOK.Inc()
		m.reloadLastOK.Set(float64(at.UnixNano()) / 1e9)
		m.reloadLastGood.Set(1)
		return
	}
	m.reloadFailed.Inc()
	m.reloadLastGood.Set(0)
}

// BuildInfo registers mxedge_build_info{version,commit,goversion}, a gauge that
// is always 1. It panics if registration fails.
func BuildInfo(reg prometheus.Registerer, version, commit string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "mxedge", Name: "build_info",
		Help:        "Always 1; the labels say which mxedge build is running.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": runtime.Version()},
	})
	g.Set(1)
	reg.MustRegister(g)
}
