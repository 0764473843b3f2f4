package main

import (
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/mxedge/mxedge/certs"
	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/proxy"
	"github.com/mxedge/mxedge/ratelimit"
)

// prepared is one part of a reload, checked and built but not yet visible.
type prepared interface {
	// Commit puts the part in service. It cannot fail.
	Commit()
	// Discard drops what the preparation built; the running part is untouched.
	Discard()
}

var (
	_ prepared = (*proxy.Prepared)(nil)
	_ prepared = (*ratelimit.Prepared)(nil)
	_ prepared = (*certs.Prepared)(nil)
)

// reloader applies a new configuration to the running parts. It is used by
// serve's signal loop only, one reload at a time; tlsDomains is safe for
// concurrent use.
type reloader struct {
	log     *slog.Logger
	level   *slog.LevelVar
	srv     *proxy.Server // the request path, with its readiness probe
	limiter *ratelimit.Limiter
	certs   *certs.Manager // nil: tls.mode off
	cfg     *config.Config // the configuration in service
	domains atomic.Pointer[[]string]
}

// reload applies next whole or not at all. Every part is prepared first (all
// the checks that can fail, nothing visible); only when every part prepared
// are they all committed. Otherwise each one is discarded, the running
// configuration stays, and the error holds every part's problems. Settings
// only a restart applies (splitRestart) keep their running value, and a
// warning names each one next changes.
func (rl *reloader) reload(next *config.Config) error {
	apply, restart := splitRestart(rl.cfg, next)
	var parts []prepared
	var errs []error
	add := func(p prepared, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		parts = append(parts, p)
	}
	add(rl.srv.Prepare(apply))
	add(rl.limiter.Prepare(apply.RateLimits))
	add(rl.certs.Prepare(apply))
	if err := errors.Join(errs...); err != nil {
		for _, p := range parts {
			p.Discard()
		}
		return err
	}
	for _, p := range parts {
		p.Commit()
	}
	rl.level.Set(parseLevel(apply.Log.Level))
	rl.setDomains(apply)
	rl.cfg = apply
	for _, key := range restart {
		rl.log.Warn("setting changed but applies only after a restart; the running value stays", "key", key)
	}
	return nil
}

func (rl *reloader) setDomains(c *config.Config) {
	d := c.TLSDomains()
	rl.domains.Store(&d)
}

// tlsDomains returns the tls.domains in service (for the https redirect).
func (rl *reloader) tlsDomains() []string { return *rl.domains.Load() }

// splitRestart is the one place that decides what a reload cannot apply. It
// returns the configuration a reload applies, next with every setting that
// only a restart applies kept at its running value, and the keys of those
// settings that next changes. A restart is needed for:
//   - the listener addresses (listen.*): the sockets are bound at start;
//   - the limits of each listener's net/http server: timeouts.read_header,
//     timeouts.idle, limits.max_header_bytes (the server stops heads at twice
//     that size);
//   - log.format: the logger is made at start;
//   - tls.mode, and with another mode the whole tls section, which describes
//     that mode; what certificate management is built from:
//     tls.renew_check_interval and, in mode acme, tls.email, acme_ca,
//     acme_ca_root, challenges and storage;
//   - rate_limits.store and, with the redis store, rate_limits.redis.url,
//     timeout, key_prefix and key_secret (on_error applies on reload).
//
// Everything else applies on reload.
func splitRestart(running, next *config.Config) (apply *config.Config, restart []string) {
	a := *next
	keep := func(key string, changed bool) {
		if changed {
			restart = append(restart, key)
		}
	}
	keep("listen.http", keepRunning(&a.Listen.HTTP, running.Listen.HTTP))
	keep("listen.https", keepRunning(&a.Listen.HTTPS, running.Listen.HTTPS))
	keep("listen.federation", keepRunning(&a.Listen.Federation, running.Listen.Federation))
	keep("listen.ops", keepRunning(&a.Listen.Ops, running.Listen.Ops))
	keep("timeouts.read_header", keepRunning(&a.Timeouts.ReadHeader, running.Timeouts.ReadHeader))
	keep("timeouts.idle", keepRunning(&a.Timeouts.Idle, running.Timeouts.Idle))
	keep("limits.max_header_bytes", keepRunning(&a.Limits.MaxHeaderBytes, running.Limits.MaxHeaderBytes))
	keep("log.format", keepRunning(&a.Log.Format, running.Log.Format))

	otherMode := keepRunning(&a.TLS.Mode, running.TLS.Mode)
	keep("tls.mode", otherMode)
	rt, t := &running.TLS, &a.TLS
	if otherMode {
		keep("tls.domains", keepRunningSlice(&t.Domains, rt.Domains))
		keep("tls.hsts", keepRunning(&t.HSTS, rt.HSTS))
		keep("tls.cert_file", keepRunning(&t.CertFile, rt.CertFile))
		keep("tls.key_file", keepRunning(&t.KeyFile, rt.KeyFile))
	}
	if otherMode || rt.Mode == config.TLSModeACME {
		keep("tls.email", keepRunning(&t.Email, rt.Email))
		keep("tls.acme_ca", keepRunning(&t.ACMECA, rt.ACMECA))
		keep("tls.acme_ca_root", keepRunning(&t.ACMECARoot, rt.ACMECARoot))
		keep("tls.challenges", keepRunningSlice(&t.Challenges, rt.Challenges))
		keep("tls.storage", keepRunning(&t.Storage, rt.Storage))
	}
	if otherMode || rt.Mode != config.TLSModeOff {
		keep("tls.renew_check_interval", keepRunning(&t.RenewCheckInterval, rt.RenewCheckInterval))
	}

	rr, r := &running.RateLimits, &a.RateLimits
	keep("rate_limits.store", keepRunning(&r.Store, rr.Store))
	if rr.Store == config.RateLimitStoreRedis {
		keep("rate_limits.redis.url", keepRunning(&r.Redis.URL, rr.Redis.URL))
		keep("rate_limits.redis.timeout", keepRunning(&r.Redis.Timeout, rr.Redis.Timeout))
		keep("rate_limits.redis.key_prefix", keepRunning(&r.Redis.KeyPrefix, rr.Redis.KeyPrefix))
		keep("rate_limits.redis.key_secret", keepRunning(&r.Redis.KeySecret, rr.Redis.KeySecret))
	}
	return &a, restart
}

// keepRunning sets *v to the running value and reports whether it differed.
func keepRunning[T comparable](v *T, running T) bool {
	changed := *v != running
	*v = running
	return changed
}

// keepRunningSlice is keepRunning for a list.
func keepRunningSlice[T comparable](v *[]T, running []T) bool {
	changed := !slices.Equal(*v, running)
	*v = running
	return changed
}
