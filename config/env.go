package config

import "strings"

// EnvVar describes one MXEDGE_* environment variable: its name, the key it
// sets and a one-line help text. EnvVars lists them for --help and the docs.
type EnvVar struct {
	Name string // e.g. "MXEDGE_UPSTREAM"
	Key  string // the config key it sets, e.g. "upstream"; empty for MXEDGE_CONFIG
	Help string
	set  func(c *Config, v string)
}

// EnvConfig names the environment variable holding the config file path
// (used when no --config flag is given).
const EnvConfig = "MXEDGE_CONFIG"

// EnvVars returns the MXEDGE_* variables Load reads, in documentation order.
// An empty or unset variable is ignored. Lists are comma-separated.
// Precedence: defaults < environment < file < flags.
func EnvVars() []EnvVar {
	return []EnvVar{
		{Name: EnvConfig, Help: "config file path when --config is not given"},
		{Name: "MXEDGE_SERVER_NAME", Key: "server_name", Help: "Matrix server name", set: func(c *Config, v string) { c.ServerName = v }},
		{Name: "MXEDGE_UPSTREAM", Key: "upstream", Help: "homeserver URL or unix:/path.sock", set: func(c *Config, v string) { c.Upstream = v }},
		{Name: "MXEDGE_PUBLIC_BASEURL", Key: "public_baseurl", Help: "client-facing base URL", set: func(c *Config, v string) { c.PublicBaseURL = v }},
		{Name: "MXEDGE_LISTEN_HTTP", Key: "listen.http", Help: "plain HTTP listener address", set: func(c *Config, v string) { c.Listen.HTTP = v }},
		{Name: "MXEDGE_LISTEN_HTTPS", Key: "listen.https", Help: "TLS listener address", set: func(c *Config, v string) { c.Listen.HTTPS = v }},
		{Name: "MXEDGE_LISTEN_FEDERATION", Key: "listen.federation", Help: "federation TLS listener address", set: func(c *Config, v string) { c.Listen.Federation = v }},
		{Name: "MXEDGE_LISTEN_OPS", Key: "listen.ops", Help: "health and metrics listener address", set: func(c *Config, v string) { c.Listen.Ops = v }},
		{Name: "MXEDGE_LOG_LEVEL", Key: "log.level", Help: "debug, info, warn or error", set: func(c *Config, v string) { c.Log.Level = v }},
		{Name: "MXEDGE_LOG_FORMAT", Key: "log.format", Help: "json or text", set: func(c *Config, v string) { c.Log.Format = v }},
		{Name: "MXEDGE_TRUSTED_PROXIES", Key: "trusted_proxies", Help: "comma-separated CIDRs of trusted proxies", set: func(c *Config, v string) { c.TrustedProxies = splitList(v) }},
		{Name: "MXEDGE_TLS_MODE", Key: "tls.mode", Help: "acme, files or off", set: func(c *Config, v string) { c.TLS.Mode = v }},
		{Name: "MXEDGE_TLS_EMAIL", Key: "tls.email", Help: "ACME account contact", set: func(c *Config, v string) { c.TLS.Email = v }},
		{Name: "MXEDGE_TLS_DOMAINS", Key: "tls.domains", Help: "comma-separated names to serve over TLS", set: func(c *Config, v string) { c.TLS.Domains = splitList(v) }},
	}
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
