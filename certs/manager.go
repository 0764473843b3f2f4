package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/config"
)

// maxFilePoll caps how often cert_file/key_file are checked for change.
const maxFilePoll = time.Minute

// Options are a Manager's dependencies. The zero value logs nowhere and
// registers no metrics.
type Options struct {
	// Logger receives mxedge's and certmagic's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the mxedge_tls_* metrics. Default: none.
	Registerer prometheus.Registerer
	// Now is the clock used to validate certificate files. Default time.Now.
	Now func() time.Time
}

// CertStatus is the state of the certificate for one name, for /readyz.
type CertStatus struct {
	// Name is a name from tls.domains.
	Name string `json:"name"`
	// NotAfter is the expiry of the certificate served for Name; zero when
	// there is none (yet).
	NotAfter time.Time `json:"not_after"`
}

// Manager provides certificates to the TLS listeners. Its methods are safe
// for concurrent use. Create it with New, call Start once the http and https
// listeners are bound, and Stop when done. A nil *Manager means tls.mode off.
type Manager struct {
	log  *slog.Logger
	reg  prometheus.Registerer
	met  *metrics
	now  func() time.Time
	mode string

	names atomic.Pointer[[]string] // served names, sorted; read in every handshake

	// acme
	magic        *certmagic.Config
	cache        *certmagic.Cache
	issuer       *certmagic.ACMEIssuer
	closeStorage func() error
	alpn         bool // tls-alpn-01 enabled

	// files
	file     atomic.Pointer[fileCert]
	reloadMu sync.Mutex // serialises file reloads (watchFiles, Commit)
	poll     time.Duration

	releaseOnce sync.Once

	mu      sync.Mutex // guards the fields below
	started bool
	ctx     context.Context // Start's, for names added by a reload
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New builds a Manager for c.TLS. It returns nil, nil when tls.mode is off.
// In mode files it loads and validates the certificate files; in mode acme
// it checks that the storage is writable and reads acme_ca_root. Errors name
// the config key at fault. New obtains nothing: see Start. A Manager from
// New holds resources (certmagic's maintenance goroutine, the storage
// client): call Stop when done, even if Start was never called.
func New(c *config.Config, o Options) (*Manager, error) {
	if c.TLS.Mode == config.TLSModeOff || c.TLS.Mode == "" {
		return nil, nil
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	domains := c.TLSDomains()
	if len(domains) == 0 {
		return nil, errors.New("tls.domains: no names to serve")
	}
	m := &Manager{log: o.Logger.With("component", "certs"), reg: o.Registerer, now: o.Now, mode: c.TLS.Mode}
	m.setNames(domains)
	met, err := newMetrics(o.Registerer, m)
	if err != nil {
		return nil, fmt.Errorf("certs metrics: %w", err)
	}
	m.met = met

	switch c.TLS.Mode {
	case config.TLSModeFiles:
		fc, err := loadFileCert(c.TLS.CertFile, c.TLS.KeyFile, domains, o.Now())
		if err != nil {
			m.release()
			return nil, err
		}
		m.file.Store(fc)
		m.poll = min(c.TLS.RenewCheckInterval.D(), maxFilePoll)
		if m.poll <= 0 {
			m.poll = maxFilePoll
		}
	case config.TLSModeACME:
		if err := m.initACME(c, domains, o.Logger); err != nil {
			m.release()
			return nil, err
		}
	default:
		m.release()
		return nil, fmt.Errorf("tls.mode: must be acme, files or off, got %q", c.TLS.Mode)
	}
	return m, nil
}

func (m *Manager) setNames(domains []string) {
	n := slices.Clone(domains)
	slices.Sort(n)
	m.names.Store(&n)
}

func (m *Manager) served(name string) bool {
	_, ok := slices.BinarySearch(*m.names.Load(), name)
	return ok
}

// Start begins managing certificates and returns at once. In mode acme,
// certificates found in storage are loaded (and served) before Start
// returns; missing or expiring ones are obtained in the background, with
// certmagic's retries and back-off, and renewed every
// tls.renew_check_interval. In mode files it starts watching the files.
// Call Start after binding listen.http and listen.https: certmagic finds
// their ports in use and leaves the challenges to them. Start may be called
// once; ctx bounds the background work (Stop also ends it).
func (m *Manager) Start(ctx context.Context) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("certs: Start called twice")
	}
	m.started = true
	ctx, m.cancel = context.WithCancel(ctx)
	m.ctx = ctx
	switch m.mode {
	case config.TLSModeACME:
		names := *m.names.Load()
		// Load what storage holds before returning, so that a restarted edge
		// serves its certificates from the first handshake (ManageAsync alone
		// loads them in background goroutines). Missing certificates are
		// obtained in the background by ManageAsync, which skips the names
		// loaded here; loaded ones due for renewal are renewed now.
		due := m.loadStored(ctx, names)
		if err := m.magic.ManageAsync(ctx, names); err != nil {
			return fmt.Errorf("certs: manage %v: %w", names, err)
		}
		for _, name := range due {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				if err := m.magic.RenewCertAsync(ctx, name, false); err != nil && ctx.Err() == nil {
					m.log.Warn("renewing stored certificate", "name", name, "err", err)
				}
			}()
		}
	case config.TLSModeFiles:
		m.wg.Add(1)
		go m.watchFiles(ctx)
	}
	return nil
}

// storedLoadTimeout bounds the synchronous load of stored certificates at Start.
const storedLoadTimeout = 10 * time.Second

// loadStored puts the certificates storage holds for names into the cache
// and returns the names whose certificate needs renewal.
func (m *Manager) loadStored(ctx context.Context, names []string) (due []string) {
	ctx, cancel := context.WithTimeout(ctx, storedLoadTimeout)
	defer cancel()
	for _, name := range names {
		cert, err := m.magic.CacheManagedCertificate(ctx, name)
		switch {
		case err == nil:
			if cert.NeedsRenewal(m.magic) {
				due = append(due, name)
			}
		case errors.Is(err, fs.ErrNotExist):
		default:
			m.log.Warn("loading stored certificate", "name", name, "err", err)
		}
	}
	return due
}

// Stop ends the background work (renewals, file watching), releases the
// storage and unregisters the metrics. Certificates already handed out keep
// working. Safe to call more than once, and without Start.
func (m *Manager) Stop() {
	if m == nil {
		return
	}
	m.mu.Lock()
	cancel := m.cancel
	m.cancel = nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	m.release()
}

// release stops the certmagic cache, closes the storage and unregisters
// the metrics, once.
func (m *Manager) release() {
	m.releaseOnce.Do(func() {
		if m.cache != nil {
			m.cache.Stop()
		}
		if m.closeStorage != nil {
			m.closeStorage()
		}
		m.met.unregister(m.reg)
	})
}

// TLSConfig returns a new tls.Config for a TLS listener (https or
// federation): TLS 1.2 minimum, ALPN h2 and http/1.1 (and acme-tls/1 when
// the tls-alpn-01 challenge is enabled), certificates chosen per SNI.
// A handshake naming a host outside tls.domains is refused; one without SNI
// gets the certificate of the first name. Nil for a nil Manager.
func (m *Manager) TLSConfig() *tls.Config {
	if m == nil {
		return nil
	}
	protos := []string{"h2", "http/1.1"}
	if m.alpn {
		protos = append(protos, "acme-tls/1")
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: m.getCertificate,
	}
}

// getCertificate picks the certificate for a handshake. In mode files there
// is one certificate and it is served whatever the SNI (as nginx and HAProxy
// serve their default certificate: clients that send an IP literal or a name
// the file covers but tls.domains does not list still connect). In mode acme a
// name outside tls.domains is refused in the handshake and never reaches
// certmagic, so it can never cause an order.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if m.mode == config.TLSModeFiles {
		return m.file.Load().cert, nil
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" && !m.served(name) {
		return nil, fmt.Errorf("certs: no certificate for server name %q", name)
	}
	return m.magic.GetCertificate(hello)
}

// HTTPChallenge wraps next (the plain HTTP listener's handler) so that ACME
// HTTP-01 challenge requests (/.well-known/acme-challenge/<token>) are
// answered, including challenges started by another replica sharing the
// storage. Everything else goes to next. Without http-01 it returns next.
func (m *Manager) HTTPChallenge(next http.Handler) http.Handler {
	if m == nil || m.issuer == nil || m.issuer.DisableHTTPChallenge {
		return next
	}
	return m.issuer.HTTPChallengeHandler(next)
}

// Prepared is a certificate configuration checked by Prepare and not yet
// served: Commit applies it, Discard drops it. One of the two must be called,
// once, before the next Prepare (reloads are serialised by the caller).
type Prepared struct {
	m       *Manager // nil: tls.mode off, nothing to apply
	domains []string
	file    *fileCert                 // mode files: the certificate loaded by Prepare
	added   []string                  // mode acme: names to start managing
	removed []certmagic.SubjectIssuer // mode acme: names to stop serving
}

// Prepare checks c for a reload: in mode files it reads and validates
// cert_file and key_file again (so SIGHUP picks up a replaced certificate);
// in mode acme it works out the names added to and removed from tls.domains.
// Nothing is served differently until Commit. The mode and the settings New
// read once (storage, CA, email, challenges, the listener ports,
// renew_check_interval) are not read: whether a change to them needs a
// restart is the caller's decision. On a nil Manager (tls.mode off) it
// prepares nothing.
func (m *Manager) Prepare(c *config.Config) (*Prepared, error) {
	if m == nil {
		return &Prepared{}, nil
	}
	domains := c.TLSDomains()
	if len(domains) == 0 {
		return nil, errors.New("tls.domains: no names to serve")
	}
	p := &Prepared{m: m, domains: domains}
	switch m.mode {
	case config.TLSModeFiles:
		fc, err := loadFileCert(c.TLS.CertFile, c.TLS.KeyFile, domains, m.now())
		if err != nil {
			return nil, err
		}
		p.file = fc
	default:
		old := *m.names.Load()
		for _, d := range domains {
			if !slices.Contains(old, d) {
				p.added = append(p.added, d)
			}
		}
		for _, d := range old {
			if !slices.Contains(domains, d) {
				p.removed = append(p.removed, certmagic.SubjectIssuer{Subject: d})
			}
		}
	}
	return p, nil
}

// Commit serves the prepared certificates. It cannot fail: in mode acme the
// added names are obtained in the background (failures are logged and
// retried by certmagic) and the removed names are refused from now on.
func (p *Prepared) Commit() {
	m := p.m
	if m == nil {
		return
	}
	if p.file != nil {
		m.reloadMu.Lock()
		m.setNames(p.domains)
		m.file.Store(p.file)
		m.reloadMu.Unlock()
		m.log.Info("certificate files reloaded", "cert_file", p.file.certFile, "not_after", p.file.cert.Leaf.NotAfter)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(p.added) > 0 && m.ctx != nil {
		// ManageAsync reports per-name failures through the log, not here.
		if err := m.magic.ManageAsync(m.ctx, p.added); err != nil {
			m.log.Error("managing added tls.domains", "names", p.added, "err", err)
		}
	}
	m.setNames(p.domains)
	if len(p.removed) > 0 {
		m.cache.RemoveManaged(p.removed)
	}
	if len(p.added)+len(p.removed) > 0 {
		m.log.Info("tls domains changed", "added", p.added, "removed", len(p.removed))
	}
}

// Discard drops the prepared configuration. It holds nothing to release: a
// loaded certificate is only memory.
func (p *Prepared) Discard() {}

// Status lists every served name with the expiry of its certificate,
// sorted by name.
func (m *Manager) Status() []CertStatus {
	if m == nil {
		return nil
	}
	names := *m.names.Load()
	out := make([]CertStatus, len(names))
	for i, n := range names {
		out[i] = CertStatus{Name: n, NotAfter: m.notAfter(n)}
	}
	return out
}

func (m *Manager) notAfter(name string) time.Time {
	if m.mode == config.TLSModeFiles {
		return m.file.Load().cert.Leaf.NotAfter
	}
	var best time.Time
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && c.Leaf.NotAfter.After(best) {
			best = c.Leaf.NotAfter
		}
	}
	return best
}

// watchFiles reloads cert_file/key_file when they change, until ctx ends.
func (m *Manager) watchFiles(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.poll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.reloadMu.Lock()
		cur := m.file.Load()
		if !cur.changed() {
			m.reloadMu.Unlock()
			continue
		}
		fc, err := loadFileCert(cur.certFile, cur.keyFile, *m.names.Load(), m.now())
		if err == nil {
			m.file.Store(fc)
		}
		m.reloadMu.Unlock()
		switch {
		case err != nil && err.Error() != lastErr:
			// a renewal tool may write the chain and the key one after the
			// other: log once, keep the current certificate, retry next tick
			lastErr = err.Error()
			m.log.Warn("certificate files changed but cannot be loaded; keeping the current certificate", "err", err)
		case err == nil:
			lastErr = ""
			m.log.Info("certificate files reloaded", "cert_file", fc.certFile, "not_after", fc.cert.Leaf.NotAfter)
		}
	}
}
