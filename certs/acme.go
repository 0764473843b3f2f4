package certs

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"

	"github.com/caddyserver/certmagic"

	"github.com/mxedge/mxedge/config"
)

// initACME builds the certmagic cache, config and ACME issuer for c.
func (m *Manager) initACME(c *config.Config, domains []string, base *slog.Logger) error {
	t := &c.TLS
	var roots *x509.CertPool
	if t.ACMECARoot != "" {
		pemBytes, err := os.ReadFile(t.ACMECARoot)
		if err != nil {
			return fmt.Errorf("tls.acme_ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("tls.acme_ca_root %s: no PEM certificate found", t.ACMECARoot)
		}
	}
	httpOn := slices.Contains(t.Challenges, config.ChallengeHTTP01)
	alpnOn := slices.Contains(t.Challenges, config.ChallengeTLSALPN01)
	if !httpOn && !alpnOn {
		return fmt.Errorf("tls.challenges: enable http-01 or tls-alpn-01")
	}

	// certmagic's solvers try to bind ListenHost:port and, finding the port
	// in use, assume its owner answers the challenge: point them at
	// mxedge's own listeners, which are bound before Start.
	var listenHost string
	var httpPort, tlsPort int
	var err error
	if httpOn {
		if listenHost, httpPort, err = hostPort(c.Listen.HTTP); err != nil {
			return fmt.Errorf("listen.http: %v (needed by the http-01 challenge)", err)
		}
	}
	if alpnOn {
		var h string
		if h, tlsPort, err = hostPort(c.Listen.HTTPS); err != nil {
			return fmt.Errorf("listen.https: %v (needed by the tls-alpn-01 challenge)", err)
		}
		if !httpOn {
			listenHost = h
		}
	}

	st, closeSt, err := openStorage(t.Storage)
	if err != nil {
		return err
	}
	m.closeStorage = closeSt

	zl := newZapLogger(base)
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: t.RenewCheckInterval.D(),
		Logger:             zl,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage:           st,
		Logger:            zl,
		OnEvent:           m.onEvent,
		DefaultServerName: domains[0],
	})
	m.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:                      t.ACMECA,
		Email:                   t.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    !httpOn,
		DisableTLSALPNChallenge: !alpnOn,
		ListenHost:              listenHost,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		Logger:                  zl,
	})
	magic.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = magic
	m.alpn = alpnOn
	return nil
}

// hostPort splits a listen address into a host and a numeric port.
func hostPort(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, fmt.Errorf("not set")
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		n, err = net.LookupPort("tcp", p)
		if err != nil {
			return "", 0, err
		}
	}
	if n <= 0 {
		return "", 0, fmt.Errorf("port %q: an explicit port is needed", p)
	}
	return h, n, nil
}

// onEvent counts ACME attempts and failures (certmagic's events). It never
// returns an error: an error would abort the operation.
func (m *Manager) onEvent(_ context.Context, event string, _ map[string]any) error {
	switch event {
	case "cert_obtaining":
		m.met.attempts.Inc()
	case "cert_failed":
		m.met.failures.Inc()
	}
	return nil
}
