package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/upstream"
)

// Readiness probes /health on every member of the homeserver pool and
// answers /healthz and /readyz on the ops listener. /readyz is 200 while a
// member answered 200 within the last MaxAge, else 503 with the reason; its
// JSON detail lists each member's last answer and the certificates with their
// days left. Safe for concurrent use.
type Readiness struct {
	// Interval between probes. Default 5s.
	Interval time.Duration
	// MaxAge of the last good probe for /readyz to answer 200. Default 3 × Interval.
	MaxAge time.Duration
	// Certificates, when set, lists the served certificates for the detail.
	Certificates func() []CertInfo
	// Roles, when set, lists the worker roles and their healthy members for
	// the detail (Server.RoleStates). A role without members available does
	// not make mxedge unready: its requests go to the main process (or get
	// 502 for the media repository), and the detail says so.
	Roles func() []RoleState
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

// probeTarget is the pool to probe: each member's /health, over the
// member's own connections (TLS, unix sockets, as requests go).
type probeTarget struct {
	pool    *upstream.Pool
	members []memberState // guarded by Readiness.mu
}

// memberState is what /readyz says about one member.
type memberState struct {
	URL    string     `json:"member"`
	OK     bool       `json:"ok"`
	LastOK *time.Time `json:"last_ok,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// CertInfo is one served certificate, as /readyz shows it.
type CertInfo struct {
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after"`
}

// certWarnDays is how close to expiry a certificate is flagged in /readyz.
const certWarnDays = 14

// NewReadiness returns a Readiness; the Server given it as Options.Readiness
// makes it probe the homeserver pool.
func NewReadiness() *Readiness {
	return &Readiness{Interval: 5 * time.Second, now: time.Now, kick: make(chan struct{}, 1)}
}

// newProbeTarget prepares the probe of pool; nothing is sent until it is
// committed (see Prepared).
func newProbeTarget(pool *upstream.Pool) *probeTarget {
	t := &probeTarget{pool: pool}
	for _, m := range pool.Members() {
		t.members = append(t.members, memberState{URL: m.Endpoint().URL})
	}
	return t
}

// setTarget makes t the probed upstream (a reload's commit). What was learnt
// about the previous upstream is forgotten, a probe of it still in flight is
// not recorded, and Run probes t at once: until then /readyz answers 503
// "upstream not probed yet".
func (r *Readiness) setTarget(t *probeTarget) {
	r.mu.Lock()
	r.target, r.lastOK, r.lastErr = t, time.Time{}, ""
	r.mu.Unlock()
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

// Probe asks every member once and records the answers: ready when one
// answered 200.
func (r *Readiness) Probe(ctx context.Context) {
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	if target == nil {
		return
	}
	members := target.pool.Members()
	errs := make([]string, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = probeMember(ctx, m)
		}()
	}
	wg.Wait()
	r.mu.Lock()
	if r.target != target {
		r.mu.Unlock() // the pool changed meanwhile: these answers are about the old one
		return
	}
	now := r.now()
	errText := ""
	anyOK := false
	for i, e := range errs {
		ms := &target.members[i]
		ms.OK, ms.Error = e == "", e
		if e == "" {
			t := now
			ms.LastOK, anyOK = &t, true
		} else if errText == "" {
			errText = e
		}
	}
	if anyOK {
		r.lastOK, errText = now, ""
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

// probeMember GETs /health on m and returns "" when it answered 200, else
// why not.
func probeMember(ctx context.Context, m *upstream.Member) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ep := m.Endpoint()
	res, err := m.Conns().RoundTrip(ctx, &h1.Request{Method: http.MethodGet, Path: "/health", Host: ep.Host, Header: http.Header{}, HeaderTimeout: 2 * time.Second})
	if err != nil {
		return ep.URL + " unreachable: " + redactError(err)
	}
	defer res.Close()
	res.WriteBody(discardBody{})
	if res.Status != http.StatusOK {
		return ep.URL + " /health answered " + strconv.Itoa(res.Status)
	}
	return ""
}

// discardBody drops a probe's answer.
type discardBody struct{}

func (discardBody) Write(p []byte) (int, error) { return len(p), nil }
func (discardBody) FlushError() error           { return nil }

func (r *Readiness) isReady() bool {
	maxAge := r.MaxAge
	if maxAge == 0 {
		maxAge = 3 * r.Interval
	}
	return !r.lastOK.IsZero() && r.now().Sub(r.lastOK) <= maxAge
}

type readyDetail struct {
	Ready        bool          `json:"ready"`
	Reason       string        `json:"reason,omitempty"`
	UpstreamOK   *time.Time    `json:"upstream_last_ok,omitempty"`
	Pool         string        `json:"pool,omitempty"`
	Members      []memberState `json:"members,omitempty"`
	Certificates []certDetail  `json:"certificates,omitempty"`
	Roles        []RoleState   `json:"roles,omitempty"`
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
		if r.target != nil {
			d.Pool = r.target.pool.Name()
			d.Members = append([]memberState(nil), r.target.members...)
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
		if r.Roles != nil {
			d.Roles = r.Roles()
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !d.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(d)
	})
}
