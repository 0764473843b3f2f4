package config

import "time"

// Defaults of the core keys (see docs/CONFIG.md). Section owners keep theirs
// next to their types (tls.go, ratelimits.go, wellknown.go).
const (
	DefaultUpstream         = "http://127.0.0.1:8008"
	DefaultListenHTTP       = ":8080"
	DefaultListenHTTPS      = ":443"
	DefaultListenFederation = ""
	DefaultListenOps        = "127.0.0.1:9100"

	DefaultMaxHeaderBytes  = 32 * KiB
	DefaultMaxBodySize     = 50 * MiB
	DefaultMaxJSONBodySize = 10 * MiB

	DefaultReadHeaderTimeout             = Duration(10 * time.Second)
	DefaultIdleTimeout                   = Duration(120 * time.Second)
	DefaultUpstreamResponseHeaderTimeout = Duration(0)
	DefaultReadBodyIdleTimeout           = Duration(60 * time.Second)
	DefaultWriteIdleTimeout              = Duration(60 * time.Second)
	DefaultShutdownTimeout               = Duration(60 * time.Second)
	DefaultUpstreamIdleTimeout           = Duration(30 * time.Second)
	DefaultWebSocketIdleTimeout          = Duration(5 * time.Minute)

	DefaultLogLevel  = "info"
	DefaultLogFormat = "json"
	DefaultLogAccess = true
)

// DefaultCORSOrigins returns the default cors.allow_origins: ["*"].
func DefaultCORSOrigins() []string { return []string{"*"} }

// DefaultAdminAllowFrom returns the default admin_api.allow_from: loopback only.
func DefaultAdminAllowFrom() []string { return []string{"127.0.0.1/32", "::1/128"} }

// Defaults returns a Config holding every default. ServerName is empty (it
// is required) and PublicBaseURL is empty (it defaults to
// https://<server_name>/, filled by Load). Each call returns a fresh Config
// that the caller may modify.
func Defaults() *Config {
	c := &Config{
		Upstream: DefaultUpstream,
		Listen: Listen{
			HTTP:       DefaultListenHTTP,
			HTTPS:      DefaultListenHTTPS,
			Federation: DefaultListenFederation,
			Ops:        DefaultListenOps,
		},
		CORS:     CORS{AllowOrigins: DefaultCORSOrigins()},
		AdminAPI: AdminAPI{AllowFrom: DefaultAdminAllowFrom()},
		Limits: Limits{
			MaxHeaderBytes:  DefaultMaxHeaderBytes,
			MaxBodySize:     DefaultMaxBodySize,
			MaxJSONBodySize: DefaultMaxJSONBodySize,
		},
		Timeouts: Timeouts{
			ReadHeader:             DefaultReadHeaderTimeout,
			Idle:                   DefaultIdleTimeout,
			UpstreamResponseHeader: DefaultUpstreamResponseHeaderTimeout,
			ReadBodyIdle:           DefaultReadBodyIdleTimeout,
			WriteIdle:              DefaultWriteIdleTimeout,
			Shutdown:               DefaultShutdownTimeout,
			UpstreamIdle:           DefaultUpstreamIdleTimeout,
			WebSocketIdle:          DefaultWebSocketIdleTimeout,
		},
		Log: Log{Level: DefaultLogLevel, Format: DefaultLogFormat, Access: DefaultLogAccess},
	}
	c.defaultsTLS()
	c.defaultsRateLimits()
	c.defaultsWellKnown()
	c.defaultsWorkers()
	return c
}
