package proxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/cors"
	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/wellknown"
)

// snapshot is everything the request path needs from one configuration,
// prepared once at load: parsed addresses, serialised documents, the
// forwarder. A reload prepares a new snapshot and commits it with an atomic
// swap; requests in flight finish with the one they started with.
type snapshot struct {
	cfg            *config.Config
	extraPrefixes  []string
	trustedProxies config.Prefixes
	adminAllow     config.Prefixes
	maxHeaderBytes int64
	maxBody        int64
	maxJSONBody    int64
	readBodyIdle   time.Duration
	writeIdle      time.Duration
	accessLog      bool
	noRateLimit    bool
	hsts           []string
	cors           *cors.Policy
	wellKnown      *wellknown.Handler
	fwd            *forwarder
}

// Options are the parts of a Server that outlive a configuration.
type Options struct {
	// Logger receives access lines and errors. Required.
	Logger *slog.Logger
	// Observer receives per-request metrics. Nil: none.
	Observer Observer
	// Limiter decides rate limits. Nil: no rate limiting.
	Limiter *ratelimit.Limiter
	// Readiness is probed by /readyz. Nil: none. A committed reload to another
	// upstream moves its probe there.
	Readiness *Readiness
}

// New builds the request path for cfg.
func New(cfg *config.Config, o Options) (*Server, error) {
	s := &Server{log: o.Logger, obs: o.Observer, limiter: o.Limiter, ready: o.Readiness}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	snap, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	return s, nil
}

// Prepared is a configuration compiled by Prepare that serves nothing yet:
// Commit puts it in service, Discard drops it. One of the two must be called,
// once, before the next Prepare (reloads are serialised by the caller).
type Prepared struct {
	s     *Server
	snap  *snapshot
	probe *probeTarget // the new upstream's readiness probe; nil when the upstream is unchanged
}

// Prepare compiles cfg for a reload: every check that can fail is done here,
// and nothing is visible until Commit. The upstream pool is shared with the
// running configuration when the upstream and its header timeout are
// unchanged; otherwise a new, empty pool is made.
func (s *Server) Prepare(cfg *config.Config) (*Prepared, error) {
	snap, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	p := &Prepared{s: s, snap: snap}
	if s.ready != nil && s.snap.Load().cfg.Upstream != cfg.Upstream {
		p.probe = newProbeTarget(cfg.UpstreamURL(), cfg.UpstreamSocket())
	}
	return p, nil
}

// Commit serves new requests with the prepared configuration; open
// connections and requests in flight keep theirs. It cannot fail. When the
// upstream changed, the old pool's idle connections are closed (busy ones
// finish their request first) and readiness probes the new upstream.
func (p *Prepared) Commit() {
	old := p.s.snap.Swap(p.snap)
	if old.fwd.pool != p.snap.fwd.pool {
		old.fwd.pool.Close()
	}
	if p.probe != nil {
		p.s.ready.setTarget(p.probe)
	}
}

// Discard drops the prepared configuration and the pool it made, if any. The
// running configuration is untouched.
func (p *Prepared) Discard() {
	if p.snap.fwd.pool != p.s.snap.Load().fwd.pool {
		p.snap.fwd.pool.Close()
	}
	if p.probe != nil {
		p.probe.client.CloseIdleConnections()
	}
}

// Close releases idle upstream connections.
func (s *Server) Close() {
	if snap := s.snap.Load(); snap != nil {
		snap.fwd.pool.Close()
	}
}

func (s *Server) compile(cfg *config.Config) (*snapshot, error) {
	snap := &snapshot{
		cfg:            cfg,
		extraPrefixes:  cfg.Forward.ExtraPrefixes,
		trustedProxies: cfg.TrustedProxyPrefixes(),
		adminAllow:     cfg.AdminAllowPrefixes(),
		maxHeaderBytes: int64(cfg.Limits.MaxHeaderBytes),
		maxBody:        int64(cfg.Limits.MaxBodySize),
		maxJSONBody:    int64(cfg.Limits.MaxJSONBodySize),
		readBodyIdle:   cfg.Timeouts.ReadBodyIdle.D(),
		writeIdle:      cfg.Timeouts.WriteIdle.D(),
		accessLog:      cfg.Log.Access,
		noRateLimit:    !cfg.RateLimits.Enabled,
	}
	if cfg.TLS.HSTS > 0 {
		snap.hsts = []string{"max-age=" + strconv.Itoa(cfg.TLS.HSTS)}
	}
	var err error
	if snap.cors, err = cors.New(cfg.CORSOrigins()); err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	if snap.wellKnown, err = wellknown.New(cfg, wellknown.Options{Error: writeErrorFor}); err != nil {
		return nil, fmt.Errorf("well_known: %w", err)
	}
	// Keep the upstream pool across reloads unless the upstream changed.
	fwd := forwarder{
		headerTimeout:   cfg.Timeouts.UpstreamResponseHeader.D(),
		defaultHost:     cfg.UpstreamURL().Host,
		allowUnderscore: cfg.Forward.AllowUnderscoresInHeaders,
	}
	if old := s.snap.Load(); old != nil && old.cfg.Upstream == cfg.Upstream &&
		old.cfg.Timeouts.UpstreamIdle == cfg.Timeouts.UpstreamIdle {
		fwd.pool = old.fwd.pool
	} else {
		fwd.pool = newPool(cfg.UpstreamURL(), cfg.UpstreamSocket(), cfg.Timeouts.UpstreamIdle.D())
	}
	snap.fwd = &fwd
	return snap, nil
}

// writeErrorFor adapts writeError to the signature other packages receive.
func writeErrorFor(w http.ResponseWriter, _ *http.Request, status int, errcode, msg string) {
	writeError(w, status, errcode, msg)
}

// newPool builds the connection pool for the upstream (an http(s) URL, or a
// unix socket when socket is non-empty).
func newPool(target *url.URL, socket string, idle time.Duration) *h1.Pool {
	o := h1.PoolOptions{Network: "tcp", Addr: target.Host, IdleTimeout: idle}
	if socket != "" {
		o.Network, o.Addr = "unix", socket
		return h1.NewPool(o)
	}
	port := target.Port()
	if port == "" {
		port = "80"
		if target.Scheme == "https" {
			port = "443"
		}
	}
	o.Addr = net.JoinHostPort(target.Hostname(), port)
	if target.Scheme == "https" {
		o.TLS = &tls.Config{ServerName: target.Hostname(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	return h1.NewPool(o)
}
