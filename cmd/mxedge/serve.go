package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mxedge/mxedge/certs"
	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/metrics"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/ratelimit/redisstore"
	"github.com/mxedge/mxedge/upstream"
)

// commit is set at build time (-ldflags -X main.commit=…).
var commit = ""

// serve runs mxedge until ctx is done or SIGTERM/SIGINT arrives, then drains
// in-flight requests for timeouts.shutdown. SIGHUP calls load again and applies
// the configuration to new requests whole or not at all (reloader.reload); one
// that cannot be applied is logged and the old one keeps serving.
func serve(ctx context.Context, load func() (*config.Config, error), stdout, stderr io.Writer) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	log := newLogger(cfg.Log.Format, level, stderr)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.BuildInfo(reg, version, commit)
	m := metrics.New(reg, proxy.ClassNames[:])

	// The limiter exists even when rate_limits.enabled is false, so that a
	// reload can turn limits on; the proxy skips it while disabled.
	limiter, err := redisstore.Open(cfg.RateLimits, ratelimit.Options{Logger: log.With("component", "ratelimit"), Registerer: reg})
	if err != nil {
		return fmt.Errorf("rate limits: %w", err)
	}
	defer limiter.Close()

	certMgr, err := certs.New(cfg, certs.Options{Logger: log, Registerer: reg})
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}

	ready := proxy.NewReadiness()
	ready.OnChange = m.SetReady
	if certMgr != nil {
		ready.Certificates = func() []proxy.CertInfo {
			var out []proxy.CertInfo
			for _, s := range certMgr.Status() {
				out = append(out, proxy.CertInfo{Name: s.Name, NotAfter: s.NotAfter})
			}
			return out
		}
	}

	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Observer: m, Limiter: limiter, Readiness: ready})
	if err != nil {
		return err
	}
	defer srv.Close()
	reg.MustRegister(upstream.NewCollector(srv.Pools))
	reg.MustRegister(proxy.NewWorkerCollector(srv))
	ready.Roles = srv.RoleStates
	rl := &reloader{log: log, level: level, srv: srv, limiter: limiter, certs: certMgr, cfg: cfg}
	rl.setDomains(cfg)

	// Bind every listener before serving any, so that a taken port fails the
	// start instead of leaving a half-running edge.
	var servers []server
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	// The proxy's listeners are served by h1.Server (HTTP/1.1, and HTTP/2 by
	// ALPN on Go's own server); the redirect and ops listeners by net/http.
	add := func(name, addr string, h http.Handler, tlsConf *tls.Config, proxyListener bool) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen.%s: %w", name, err)
		}
		var hs server
		if proxyListener {
			hs = newProxyServer(cfg, h, log, name, tlsConf)
		} else {
			hs = newHTTPServer(cfg, h, log, name)
		}
		lns = append(lns, ln)
		servers = append(servers, hs)
		log.Info("listening", "listener", name, "addr", ln.Addr().String())
		return nil
	}
	if certMgr == nil {
		err = add("http", cfg.Listen.HTTP, srv.Handler(proxy.ListenerClient, false), nil, true)
	} else {
		err = errors.Join(
			add("https", cfg.Listen.HTTPS, srv.Handler(proxy.ListenerClient, true), certMgr.TLSConfig(), true),
			add("federation", cfg.Listen.Federation, srv.Handler(proxy.ListenerFederation, true), certMgr.TLSConfig(), true),
			add("http", cfg.Listen.HTTP, certMgr.HTTPChallenge(redirectHandler(cfg.Listen.HTTPS, rl.tlsDomains)), nil, false),
		)
	}
	if err == nil {
		ops := metrics.OpsHandler(reg, ready.Healthz(), ready.Readyz())
		err = add("ops", cfg.Listen.Ops, ops, nil, false)
	}
	if err != nil {
		return err
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go ready.Run(runCtx)
	if certMgr != nil {
		if err := certMgr.Start(runCtx); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		defer certMgr.Stop()
	}

	// Signals are caught before any listener serves: a SIGHUP sent once a
	// request was answered must reload, never kill the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		ln := lns[i]
		go func() {
			err := hs.Serve(ln)
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	lns = nil // owned by the servers now
	m.Reloaded(true, time.Now())
	log.Info("mxedge started", "version", version, "server_name", cfg.ServerName, "upstream", redactURL(cfg.Upstream),
		"gomaxprocs", runtime.GOMAXPROCS(0), "gogc", gogc(), "memory_limit", debug.SetMemoryLimit(-1))

	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = err
			log.Error("listener failed", "error", err)
			break loop
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				log.Info("signal received, draining", "signal", sig.String(), "timeout", cfg.Timeouts.Shutdown.D().String())
				break loop
			}
			next, err := load()
			if err == nil {
				err = rl.reload(next)
			}
			if err != nil {
				m.Reloaded(false, time.Now())
				logConfigError(log, "reload failed, keeping the running configuration", err)
				continue
			}
			cfg = rl.cfg
			m.Reloaded(true, time.Now())
			log.Info("configuration reloaded", "upstream", redactURL(cfg.Upstream))
		}
	}

	// Drain: stop accepting, let requests in flight (long-polls included)
	// finish within timeouts.shutdown, then close what is left.
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown.D())
	defer cancel()
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Shutdown(drainCtx); err != nil {
				log.Warn("drain timed out, closing connections", "error", err)
				hs.Close()
			}
		}()
	}
	wg.Wait()
	// WebSocket tunnels are hijacked connections Shutdown does not wait for:
	// they get what is left of timeouts.shutdown, then a clean close.
	srv.CloseTunnels(drainCtx)
	log.Info("mxedge stopped")
	return serveErr
}

// gogc is the GC target in force: mxedge keeps Go's runtime defaults
// (GOMAXPROCS from the CPU affinity and the cgroup's CPU limit, GOGC 100, no
// memory limit); GOMAXPROCS, GOGC and GOMEMLIMIT in the environment override
// them (docs/PERFORMANCE.md, "Runtime settings").
func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	return "100"
}

// server is a listener's server: h1.Server for the proxy's listeners,
// net/http's for the others.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// newProxyServer serves a proxy listener: HTTP/1.1 on mxedge's own server,
// HTTP/2 (TLS, by ALPN) on net/http's with the same limits.
func newProxyServer(cfg *config.Config, h http.Handler, log *slog.Logger, name string, tlsConf *tls.Config) *h1.Server {
	s := &h1.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    2 * int(cfg.Limits.MaxHeaderBytes),
		ErrorLog:          newServerErrorLog(log, name),
	}
	if tlsConf != nil {
		s.H2 = newHTTPServer(cfg, h, log, name)
	}
	return s
}

// newHTTPServer sets every server limit deliberately: Go's defaults are unsafe
// at the edge. ReadTimeout and WriteTimeout stay 0: long-polls and large
// bodies are bounded by the per-read and per-write idle deadlines instead.
func newHTTPServer(cfg *config.Config, h http.Handler, log *slog.Logger, name string) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		// Head sizes up to the configured limit are answered by the proxy with
		// 431 JSON; Go's own plain-text 431 applies only beyond twice that.
		MaxHeaderBytes: 2 * int(cfg.Limits.MaxHeaderBytes),
		ErrorLog:       newServerErrorLog(log, name),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 250,
			MaxReadFrameSize:     1 << 20,
		},
	}
	return hs
}

// redirectHandler answers every plain-HTTP request with a 308 to https on the
// same host (and the https listener's port when it is not 443). A Host that is
// not one of the served names (domains returns those in service) is
// redirected to the first of them, so the answer never points at a name the
// client made up.
func redirectHandler(httpsAddr string, domains func() []string) http.Handler {
	_, port, _ := net.SplitHostPort(httpsAddr)
	suffix := ""
	if port != "" && port != "443" {
		suffix = ":" + port
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, domains := r.Host, domains()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !slices.Contains(domains, strings.ToLower(host)) && len(domains) > 0 {
			host = domains[0]
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		w.Header().Set("Location", "https://"+host+suffix+r.URL.RequestURI())
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

func newLogger(format string, level slog.Leveler, w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

// logConfigError logs every problem of a configuration error on its own line,
// and each error joined in err (one per part of a reload) likewise.
func logConfigError(log *slog.Logger, msg string, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			logConfigError(log, msg, e)
		}
		return
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			log.Error(msg, "problem", p.String())
		}
		return
	}
	log.Error(msg, "error", err)
}

// redactURL drops credentials from a URL for logs.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndexByte(s[i+3:], '@'); j >= 0 {
			return s[:i+3] + "REDACTED@" + s[i+3+j+1:]
		}
	}
	return s
}
