package config

import (
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// TLS modes (tls.mode).
const (
	TLSModeOff   = "off"
	TLSModeACME  = "acme"
	TLSModeFiles = "files"
)

// ACME challenge types (tls.challenges).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// TLS defaults.
const (
	// DefaultACMECA is Let's Encrypt's production ACME directory.
	DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultTLSStorage is the certmagic file storage directory.
	DefaultTLSStorage = "/var/lib/mxedge"
	// DefaultHSTS is the Strict-Transport-Security max-age in seconds (one year).
	DefaultHSTS = 31536000
	// DefaultRenewCheckInterval is how often managed certificates are checked.
	DefaultRenewCheckInterval = Duration(10 * time.Minute)
)

// TLS selects how mxedge obtains certificates. Owned by the certs work (issue 3).
type TLS struct {
	// Mode is acme, files or off. Default off: no TLS listener, plain HTTP on
	// listen.http only (mxedge behind another TLS-terminating balancer).
	Mode string `yaml:"mode"`
	// Domains are the names to serve and, in mode acme, to obtain certificates for.
	// Default (see Config.TLSDomains): host of public_baseurl + server_name.
	// A TLS handshake for any other name is refused.
	Domains []string `yaml:"domains"`
	// Email is the ACME account contact (mode acme). Default empty: no contact.
	Email string `yaml:"email"`
	// ACMECA is the ACME directory URL (https, or http on a loopback/internal
	// host). Default Let's Encrypt production (DefaultACMECA).
	ACMECA string `yaml:"acme_ca"`
	// ACMECARoot is a PEM file of roots to trust for the ACME CA's own HTTPS
	// endpoint: a private ACME CA (step-ca, Pebble). Default empty: system roots.
	ACMECARoot string `yaml:"acme_ca_root"`
	// Challenges are the enabled ACME challenges: http-01 (answered on
	// listen.http) and tls-alpn-01 (answered on listen.https).
	// Default [http-01, tls-alpn-01].
	Challenges []string `yaml:"challenges"`
	// Storage is a directory for certmagic's file storage (created 0700 when
	// missing), or redis://[user:pass@]host:port/db to share certificates,
	// ACME accounts and locks between replicas. Default /var/lib/mxedge.
	Storage string `yaml:"storage"`
	// CertFile is the PEM certificate chain, leaf first (mode files). It is
	// reloaded on SIGHUP and when the file changes.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the leaf in CertFile (mode files).
	KeyFile string `yaml:"key_file"`
	// HSTS is the Strict-Transport-Security max-age in seconds on https
	// responses; 0 = no header. Default 31536000 (one year).
	HSTS int `yaml:"hsts"`
	// RenewCheckInterval is how often managed certificates are checked for
	// renewal (mode acme), and cert_file/key_file for change (mode files; at
	// least once a minute whatever the setting). Default 10m.
	RenewCheckInterval Duration `yaml:"renew_check_interval"`
}

// defaultsTLS fills the tls section's defaults. Called from Defaults.
func (c *Config) defaultsTLS() {
	c.TLS = TLS{
		Mode:               TLSModeOff,
		ACMECA:             DefaultACMECA,
		Challenges:         []string{ChallengeHTTP01, ChallengeTLSALPN01},
		Storage:            DefaultTLSStorage,
		HSTS:               DefaultHSTS,
		RenewCheckInterval: DefaultRenewCheckInterval,
	}
}

// TLSDomains returns the names TLS serves: tls.domains when set, else the
// host of public_baseurl (as Validate parsed it; left out before a
// successful Validate) followed by server_name, MAS's host and the hosts of
// routes (without port, lowercased, deduplicated). It does not modify c.
func (c *Config) TLSDomains() []string { return c.tlsDomains(c.publicBaseURL, &c.edge) }

// tlsDomains is TLSDomains with pub as the parsed public_baseurl and ef the
// parsed MAS and route settings.
func (c *Config) tlsDomains(pub *url.URL, ef *edgeForms) []string {
	var in []string
	if len(c.TLS.Domains) > 0 {
		in = c.TLS.Domains
	} else {
		if pub != nil {
			in = append(in, pub.Hostname())
		}
		sn := c.ServerName
		if h, _, err := net.SplitHostPort(sn); err == nil {
			sn = h
		}
		in = append(in, sn)
		in = append(in, edgeHosts(ef)...)
	}
	out := make([]string, 0, len(in))
	for _, d := range in {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || tlsContains(out, d) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func tlsContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// validateTLS checks the tls section; pub is public_baseurl as validate
// parsed it (nil when it is invalid), ef the parsed MAS and route settings.
// It has no side effects.
func (c *Config) validateTLS(p *problems, pub *url.URL, ef *edgeForms) {
	t := &c.TLS
	switch t.Mode {
	case TLSModeOff:
		return
	case TLSModeACME, TLSModeFiles:
	default:
		p.add("tls.mode", "must be acme, files or off, got %q", t.Mode)
		return
	}
	if c.Listen.HTTPS == "" && c.Listen.Federation == "" {
		p.add("listen.https", "tls.mode %s needs listen.https or listen.federation", t.Mode)
	}
	if t.HSTS < 0 {
		p.add("tls.hsts", "must be >= 0 seconds, got %d", t.HSTS)
	}
	if t.RenewCheckInterval.D() <= 0 {
		p.add("tls.renew_check_interval", "must be > 0, got %s", t.RenewCheckInterval.D())
	}
	domains := c.tlsDomains(pub, ef)
	if len(t.Domains) > 0 {
		// Every host mxedge routes must have a certificate name.
		if h := c.MASHostFrom(ef); h != "" && !tlsCovers(domains, h) {
			p.add("mas.public_base", "host %q is not in tls.domains: no certificate would cover it", h)
		}
		for i, r := range ef.routes {
			if r.Host != "" && !tlsCovers(domains, r.Host) {
				p.add(indexKey("routes", i)+".host", "%q is not in tls.domains: no certificate would cover it", r.Host)
			}
		}
	}
	for i, d := range t.Domains {
		if !tlsValidDomain(d) {
			p.add(tlsKey("tls.domains", i), "not a DNS name: %q", d)
		}
	}
	if len(t.Domains) == 0 {
		for _, d := range domains {
			if !tlsValidDomain(d) {
				p.add("tls.domains", "default name %q (from public_baseurl/server_name) is not a DNS name; set tls.domains", d)
			}
		}
	}
	if len(domains) == 0 {
		p.add("tls.domains", "no names to serve: set tls.domains, public_baseurl or server_name")
	}

	if t.Mode == TLSModeFiles {
		tlsCheckReadable(p, "tls.cert_file", t.CertFile)
		tlsCheckReadable(p, "tls.key_file", t.KeyFile)
		return
	}

	// acme
	for _, d := range domains {
		if strings.HasPrefix(d, "*.") {
			p.add("tls.domains", "wildcard %q needs the dns-01 challenge, which mxedge does not support", d)
		}
	}
	if t.Email != "" {
		if a, err := mail.ParseAddress(t.Email); err != nil || a.Address != t.Email {
			p.add("tls.email", "not an email address: %q", t.Email)
		}
	}
	if u, err := url.Parse(t.ACMECA); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		p.add("tls.acme_ca", "must be an https:// ACME directory URL, got %q", t.ACMECA)
	} else if u.Scheme == "http" && !tlsInternalHost(u.Hostname()) {
		p.add("tls.acme_ca", "plain http is allowed only for a loopback or internal CA, got %q", t.ACMECA)
	}
	if t.ACMECARoot != "" {
		tlsCheckReadable(p, "tls.acme_ca_root", t.ACMECARoot)
	}
	if len(t.Challenges) == 0 {
		p.add("tls.challenges", "must enable at least one of http-01, tls-alpn-01")
	}
	for i, ch := range t.Challenges {
		switch ch {
		case ChallengeHTTP01:
			if c.Listen.HTTP == "" {
				p.add(tlsKey("tls.challenges", i), "http-01 needs listen.http")
			}
		case ChallengeTLSALPN01:
			if c.Listen.HTTPS == "" {
				p.add(tlsKey("tls.challenges", i), "tls-alpn-01 needs listen.https")
			}
		default:
			p.add(tlsKey("tls.challenges", i), "must be http-01 or tls-alpn-01, got %q", ch)
		}
	}
	switch {
	case t.Storage == "":
		p.add("tls.storage", "must be a directory or a redis:// URL")
	case strings.HasPrefix(t.Storage, "redis://"), strings.HasPrefix(t.Storage, "rediss://"):
		if u, err := url.Parse(t.Storage); err != nil || u.Host == "" {
			p.add("tls.storage", "invalid redis URL")
		}
	case strings.Contains(t.Storage, "://"):
		p.add("tls.storage", "must be a directory or a redis:// URL, got scheme %q", t.Storage[:strings.Index(t.Storage, "://")])
	}
}

func tlsKey(k string, i int) string {
	return k + "[" + strconv.Itoa(i) + "]"
}

func tlsCheckReadable(p *problems, k, path string) {
	if path == "" {
		p.add(k, "required")
		return
	}
	f, err := os.Open(path)
	if err != nil {
		p.add(k, "cannot read: %v", err)
		return
	}
	f.Close()
}

// tlsValidDomain reports whether d looks like a DNS name (optionally a
// leading "*." wildcard), not an IP address, a URL or a host:port.
func tlsValidDomain(d string) bool {
	d = strings.TrimPrefix(d, "*.")
	if d == "" || len(d) > 253 || net.ParseIP(d) != nil {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// tlsInternalHost reports whether h is loopback, private or a name certmagic
// treats as internal (localhost, *.local, *.internal, *.localhost).
func tlsInternalHost(h string) bool {
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback() || ip.IsPrivate()
	}
	h = strings.ToLower(h)
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") ||
		strings.HasSuffix(h, ".internal") || strings.HasSuffix(h, ".home.arpa")
}

// edgeHosts returns MAS's host and the hosts of routes.
func edgeHosts(ef *edgeForms) []string {
	var out []string
	if ef.masBase != nil {
		out = append(out, ef.masBase.Hostname())
	}
	for _, r := range ef.routes {
		if r.Host != "" {
			out = append(out, r.Host)
		}
	}
	return out
}

// tlsCovers reports whether a certificate for names covers host: an exact
// name, or a wildcard "*.example.org" for one more label.
func tlsCovers(names []string, host string) bool {
	for _, n := range names {
		if n == host {
			return true
		}
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
				return true
			}
		}
	}
	return false
}
