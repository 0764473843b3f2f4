package config

import (
	"net/url"
)

// parsedForms are the values Validate derives once. Consumers read them
// through the accessors below and never parse the strings again.
type parsedForms struct {
	upstreamURL    *url.URL
	upstreamSocket string
	publicBaseURL  *url.URL
	pools          []*PoolSpec
	edge           edgeForms
	masAdmin       Prefixes
	trustedProxies Prefixes
	adminAllow     Prefixes
	corsOrigins    Origins

	// rate_limits
	exemptPrefixes Prefixes
	rulePaths      []RulePath
	appservices    []*AppserviceRegistration
}

func (c *Config) setParsed(pf parsedForms) {
	c.upstreamURL, c.upstreamSocket, c.publicBaseURL = pf.upstreamURL, pf.upstreamSocket, pf.publicBaseURL
	c.trustedProxies, c.adminAllow = pf.trustedProxies, pf.adminAllow
	c.pools, c.edge, c.masAdmin = pf.pools, pf.edge, pf.masAdmin
	c.corsOrigins = pf.corsOrigins
	r := &c.RateLimits
	r.exemptPrefixes, r.rulePaths, r.appservices = pf.exemptPrefixes, pf.rulePaths, pf.appservices
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

// TrustedProxyPrefixes returns trusted_proxies parsed by the rule every list
// of addresses follows (bare IPs as /32 or /128, IPv4-mapped IPv6 unmapped,
// host bits masked). Empty: no proxy is trusted. Callers must
// not modify it.
func (c *Config) TrustedProxyPrefixes() Prefixes { return c.trustedProxies }

// AdminAllowPrefixes returns admin_api.allow_from parsed like
// TrustedProxyPrefixes. Empty: the admin API is closed to everyone.
func (c *Config) AdminAllowPrefixes() Prefixes { return c.adminAllow }

// CORSOrigins returns cors.allow_origins parsed for cors.New: each origin as
// a browser sends it (lowercase, no default port, no trailing "/"). The zero Origins before a
// successful Validate.
func (c *Config) CORSOrigins() Origins { return c.corsOrigins }

// ExemptPrefixes returns rate_limits.exempt.addresses parsed like
// TrustedProxyPrefixes, one per entry. Nil before a successful Validate.
// Callers must not modify it.
func (r *RateLimits) ExemptPrefixes() Prefixes { return r.exemptPrefixes }

// RulePaths returns the parsed path pattern of each of rate_limits.rules,
// index for index. Nil before a successful Validate. Callers must not modify
// it.
func (r *RateLimits) RulePaths() []RulePath { return r.rulePaths }

// Appservices returns the registrations read from
// rate_limits.exempt.appservice_registrations, file for file. Nil before a
// successful Validate. Callers must not modify them.
func (r *RateLimits) Appservices() []*AppserviceRegistration { return r.appservices }

// MASAdminAllowPrefixes returns mas.admin_api.allow_from parsed. Empty: MAS's
// admin API is closed to everyone.
func (c *Config) MASAdminAllowPrefixes() Prefixes { return c.masAdmin }
