package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/cors"
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
	trustedProxies []netip.Prefix
	adminAllow     []netip.Prefix
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
	if old.fwd != p.snap.fwd {
		old.fwd.close()
	}
	if p.probe != nil {
		p.s.ready.setTarget(p.probe)
	}
}

// Discard drops the prepared configuration and the pool it made, if any. The
// running configuration is untouched.
func (p *Prepared) Discard() {
	if p.snap.fwd != p.s.snap.Load().fwd {
		p.snap.fwd.close()
	}
	if p.probe != nil {
		p.probe.client.CloseIdleConnections()
	}
}

// Close releases idle upstream connections.
func (s *Server) Close() {
	if snap := s.snap.Load(); snap != nil {
		snap.fwd.close()
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
	if snap.cors, err = cors.New(cfg.CORS.AllowOrigins); err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	if snap.wellKnown, err = wellknown.New(cfg, wellknown.Options{Error: writeErrorFor}); err != nil {
		return nil, fmt.Errorf("well_known: %w", err)
	}
	// Keep the upstream pool across reloads unless the upstream changed.
	if old := s.snap.Load(); old != nil && old.cfg.Upstream == cfg.Upstream &&
		old.cfg.Timeouts.UpstreamResponseHeader == cfg.Timeouts.UpstreamResponseHeader {
		snap.fwd = old.fwd
	} else {
		snap.fwd = newForwarder(cfg.UpstreamURL(), cfg.UpstreamSocket(), cfg.Timeouts.UpstreamResponseHeader.D(), s)
	}
	return snap, nil
}

// writeErrorFor adapts writeError to the signature other packages receive.
func writeErrorFor(w http.ResponseWriter, _ *http.Request, status int, errcode, msg string) {
	writeError(w, status, errcode, msg)
}
