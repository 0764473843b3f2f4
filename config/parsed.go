package config

import (
	"net/netip"
	"net/url"
)

// parsedForms are the values Validate derives once.
type parsedForms struct {
	upstreamURL    *url.URL
	upstreamSocket string
	publicBaseURL  *url.URL
	trustedProxies []netip.Prefix
	adminAllow     []netip.Prefix
}

func (c *Config) parsed() parsedForms {
	return parsedForms{c.upstreamURL, c.upstreamSocket, c.publicBaseURL, c.trustedProxies, c.adminAllow}
}

func (c *Config) setParsed(pf parsedForms) {
	c.upstreamURL, c.upstreamSocket, c.publicBaseURL = pf.upstreamURL, pf.upstreamSocket, pf.publicBaseURL
	c.trustedProxies, c.adminAllow = pf.trustedProxies, pf.adminAllow
}

// UpstreamURL returns the parsed upstream: the http(s) URL, or for a unix:
// upstream http://localhost (the transport must then dial UpstreamSocket).
// Nil before a successful Validate. Callers must not modify it.
func (c *Config) UpstreamURL() *url.URL { return c.upstreamURL }

// UpstreamSocket returns the unix socket path of a unix: upstream, or "".
func (c *Config) UpstreamSocket() string { return c.upstreamSocket }

// PublicBaseURLParsed returns public_baseurl (default https://<server_name>/)
// parsed, its path always ending in "/" ("https://m.example.org" becomes
// "https://m.example.org/"). Nil before a successful Validate. Callers must
// not modify it.
func (c *Config) PublicBaseURLParsed() *url.URL { return c.publicBaseURL }

// TrustedProxyPrefixes returns trusted_proxies parsed (bare IPs as /32 or
// /128, host bits masked). Empty: no proxy is trusted. Callers must not
// modify it.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix { return c.trustedProxies }

// AdminAllowPrefixes returns admin_api.allow_from parsed like
// TrustedProxyPrefixes. Empty: the admin API is closed to everyone.
func (c *Config) AdminAllowPrefixes() []netip.Prefix { return c.adminAllow }
