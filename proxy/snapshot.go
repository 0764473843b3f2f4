package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/cors"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/upstream"
	"github.com/mxedge/mxedge/wellknown"
	"github.com/mxedge/mxedge/workers"
)

// snapshot is everything the request path needs from one configuration,
// prepared once at load: parsed addresses, serialised documents, the
// forwarder. A reload prepares a new snapshot and commits it with an atomic
// swap; requests in flight finish with the one they started with.
type snapshot struct {
	cfg            *config.Config
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
	pools          *upstream.Set
	table          *table
	masAdminAllow  config.Prefixes
	rtcTransports  []byte // the transports answer from rtc.livekit_service_url
	tunnels        *tunnelSet
	resolver       *workers.Resolver // nil: workers.resolver off
	roles          *roleStats        // the server's, when workers are configured
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
	s.tunnels = newTunnelSet(s.obs)
	snap, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	if s.ready != nil {
		s.ready.setTarget(newProbeTarget(snap.table.pools[0]))
	}
	return s, nil
}

// Prepared is a configuration compiled by Prepare that serves nothing yet:
// Commit puts it in service, Discard drops it. One of the two must be called,
// once, before the next Prepare (reloads are serialised by the caller).
type Prepared struct {
	s     *Server
	snap  *snapshot
	probe *probeTarget // the homeserver pool's readiness probe; nil when the pool is unchanged
}

// Prepare compiles cfg for a reload: every check that can fail is done here,
// and nothing is visible until Commit. A pool whose configuration is
// unchanged is shared with the running configuration (its connections,
// health and counters); a changed or new one is made, empty.
func (s *Server) Prepare(cfg *config.Config) (*Prepared, error) {
	snap, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	p := &Prepared{s: s, snap: snap}
	if s.ready != nil && snap.table.pools[0] != s.snap.Load().table.pools[0] {
		p.probe = newProbeTarget(snap.table.pools[0])
	}
	return p, nil
}

// Commit serves new requests with the prepared configuration; open
// connections and requests in flight keep theirs. It cannot fail. When the
// upstream changed, the old pool's idle connections are closed (busy ones
// finish their request first) and readiness probes the new upstream.
func (p *Prepared) Commit() {
	old := p.s.snap.Swap(p.snap)
	old.pools.CloseUnused(p.snap.pools)
	if p.probe != nil {
		p.s.ready.setTarget(p.probe)
	}
}

// Discard drops the prepared configuration and the pools it made, if any.
// The running configuration is untouched.
func (p *Prepared) Discard() {
	p.snap.pools.CloseUnused(p.s.snap.Load().pools)
}

// Close releases idle upstream connections and stops health checks.
func (s *Server) Close() {
	if snap := s.snap.Load(); snap != nil {
		snap.pools.CloseUnused(nil)
	}
}

// Pools returns the pools in service (for metrics).
func (s *Server) Pools() *upstream.Set {
	if snap := s.snap.Load(); snap != nil {
		return snap.pools
	}
	return nil
}

func (s *Server) compile(cfg *config.Config) (*snapshot, error) {
	snap := &snapshot{
		cfg:            cfg,
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
	snap.masAdminAllow = cfg.MASAdminAllowPrefixes()
	snap.tunnels = s.tunnels
	if u := cfg.RTCServiceURL(); u != "" {
		snap.rtcTransports = transportsAnswer(u)
	}
	snap.fwd = &forwarder{
		headerTimeout:   cfg.Timeouts.UpstreamResponseHeader.D(),
		wsIdle:          cfg.Timeouts.WebSocketIdle.D(),
		allowUnderscore: cfg.Forward.AllowUnderscoresInHeaders,
	}
	// Pools whose configuration did not change are carried over from the
	// running snapshot.
	var old *upstream.Set
	if o := s.snap.Load(); o != nil {
		old = o.pools
	}
	snap.pools = upstream.NewSet(cfg.Pools(), upstream.Options{Logger: s.log.With("component", "upstream")}, old)
	if snap.table, err = compileTable(cfg, snap.pools); err != nil {
		snap.pools.CloseUnused(old)
		return nil, err
	}
	if snap.table.workers != nil {
		snap.roles = &s.roles
	}
	if cfg.Workers.Resolver.Enabled {
		// Its cache outlives a reload that leaves it as it was.
		if o := s.snap.Load(); o != nil && o.resolver != nil && o.cfg.Workers.Resolver == cfg.Workers.Resolver {
			snap.resolver = o.resolver
		} else {
			snap.resolver = s.newResolver(cfg)
		}
	}
	return snap, nil
}

// writeErrorFor adapts writeError to the signature other packages receive.
func writeErrorFor(w http.ResponseWriter, _ *http.Request, status int, errcode, msg string) {
	writeError(w, status, errcode, msg)
}
