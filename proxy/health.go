package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Readiness probes the homeserver's /health and answers /healthz and /readyz
// on the ops listener. /readyz is 200 while the upstream answered within the
// last MaxAge, else 503 with the reason; its JSON detail also lists the
// certificates and their days left. Safe for concurrent use.
type Readiness struct {
	// Interval between probes. Default 5s.
	Interval time.Duration
	// MaxAge of the last good probe for /readyz to answer 200. Default 3 × Interval.
	MaxAge time.Duration
	// Certificates, when set, lists the served certificates for the detail.
	Certificates func() []CertInfo
	// OnChange, when set, is told each change of readiness (for metrics).
	OnChange func(ready bool)

	mu      sync.Mutex
	target  *probeTarget
	lastOK  time.Time
	lastErr string
	ready   bool
	now     func() time.Time
	kick    chan struct{} // asks Run for a probe now (a new target)
}

// probeTarget is one upstream to probe: its /health URL and a client for it.
type probeTarget struct {
	url    string
	client *http.Client
}

// CertInfo is one served certificate, as /readyz shows it.
type CertInfo struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after"`
}

// certWarnDays is how close to expiry a certificate is flagged in /readyz.
const certWarnDays = 14

// NewReadiness probes upstream (an http(s) URL or, with socket set, a unix socket).
func NewReadiness(upstream *url.URL, socket string) *Readiness {
	r := &Readiness{Interval: 5 * time.Second, now: time.Now, kick: make(chan struct{}, 1)}
	r.target = newProbeTarget(upstream, socket)
	return r
}

// newProbeTarget prepares the probe of upstream; nothing is sent until it is
// committed (see Prepared).
func newProbeTarget(upstream *url.URL, socket string) *probeTarget {
	u := *upstream
	u.Path, u.RawPath, u.RawQuery = "/health", "", ""
	return &probeTarget{url: u.String(), client: &http.Client{Transport: newTransport(socket, 0), Timeout: 2 * time.Second}}
}

// setTarget makes t the probed upstream (a reload's commit). What was learnt
// about the previous upstream is forgotten, a probe of it still in flight is
// not recorded, and Run probes t at once: until then /readyz answers 503
// "upstream not probed yet".
func (r *Readiness) setTarget(t *probeTarget) {
	r.mu.Lock()
	old := r.target
	r.target, r.lastOK, r.lastErr = t, time.Time{}, ""
	r.mu.Unlock()
	old.client.CloseIdleConnections()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run probes until ctx is done. It is the owner of the probing goroutine:
// call it with go and cancel ctx to stop it.
func (r *Readiness) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.Probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}

// Probe asks the upstream once and records the answer.
func (r *Readiness) Probe(ctx context.Context) {
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	errText := ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.url, nil)
	if err == nil {
		var res *http.Response
		res, err = target.client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				errText = "upstream /health answered " + res.Status
			}
		}
	}
	if err != nil {
		errText = "upstream unreachable: " + redactError(err)
	}
	r.mu.Lock()
	if r.target != target {
		r.mu.Unlock() // the upstream changed meanwhile: this answer is about the old one
		return
	}
	if errText == "" {
		r.lastOK = r.now()
	}
	r.lastErr = errText
	ready := r.isReady()
	changed := ready != r.ready
	r.ready = ready
	r.mu.Unlock()
	if changed && r.OnChange != nil {
		r.OnChange(ready)
	}
}

func (r *Readiness) isReady() bool {
	maxAge := r.MaxAge
	if maxAge == 0 {
		maxAge = 3 * r.Interval
	}
	return !r.lastOK.IsZero() && r.now().Sub(r.lastOK) <= maxAge
}

type readyDetail struct {
	Ready        bool         `json:"ready"`
	Reason       string       `json:"reason,omitempty"`
	UpstreamOK   *time.Time   `json:"upstream_last_ok,omitempty"`
	Certificates []certDetail `json:"certificates,omitempty"`
}

type certDetail struct {
	Name     string     `json:"name"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	DaysLeft *int       `json:"days_left,omitempty"`
	Warning  string     `json:"warning,omitempty"`
}

// describeCert is one certificate's /readyz entry; a zero NotAfter means none
// has been obtained yet.
func describeCert(c CertInfo, now time.Time) certDetail {
	cd := certDetail{Name: c.Name}
	if c.NotAfter.IsZero() {
		cd.Warning = "no certificate yet"
		return cd
	}
	notAfter, days := c.NotAfter, int(c.NotAfter.Sub(now).Hours()/24)
	cd.NotAfter, cd.DaysLeft = &notAfter, &days
	switch {
	case !c.NotAfter.After(now):
		cd.Warning = "expired"
	case days < certWarnDays:
		cd.Warning = "expires soon"
	}
	return cd
}

// Healthz answers 200 while the process serves.
func (r *Readiness) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
}

// Readyz answers 200 while the upstream is healthy, else 503, with detail.
func (r *Readiness) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		d := readyDetail{Ready: r.isReady(), Reason: r.lastErr}
		if !r.lastOK.IsZero() {
			t := r.lastOK
			d.UpstreamOK = &t
		}
		if d.Ready {
			d.Reason = ""
		} else if d.Reason == "" {
			d.Reason = "upstream not probed yet"
		}
		now := r.now()
		r.mu.Unlock()
		if r.Certificates != nil {
			for _, c := range r.Certificates() {
				d.Certificates = append(d.Certificates, describeCert(c, now))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !d.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(d)
	})
}

// newTransport is an http.Transport to the upstream, for the readiness probe:
// HTTP/1.1 keep-alive, no environment proxy, no transparent compression.
func newTransport(socket string, responseHeaderTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	if socket != "" {
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		}
	}
	return t
}
