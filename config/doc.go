// Package config loads, validates and documents mxedge's configuration.
//
// A Config comes from Load: Defaults, overridden by MXEDGE_* environment
// variables (for containers), then by the YAML file, then by command-line
// flags. The file is decoded strictly: an unknown or misspelt key, a value of
// the wrong type and every invalid value are reported together in one *Error,
// each Problem naming the file, line and full dotted key
// ("mxedge.yaml:12: limits.max_body_size: must be > 0, got 0").
//
// Validation has no side effect except filling the parsed forms read through
// accessors (UpstreamURL, PublicBaseURLParsed, TrustedProxyPrefixes,
// CORSOrigins, RateLimits.ExemptPrefixes, …). Each rule is parsed by one
// function here (every list of addresses by parsePrefix, origins by
// parseOrigin), so a value means the same wherever it is written, and
// consumers (proxy, cors, ratelimit, wellknown, certs) take the parsed form
// instead of parsing the strings again. A
// Config returned by Load is read-only and safe for concurrent use; reloading
// builds a new one. Sections owned by other packages (tls, rate_limits,
// well_known) keep their types, defaults and validators in their own files
// (tls.go, ratelimits.go, wellknown.go), called from Defaults and Validate.
//
// docs/CONFIG.md is the reference of every key; deploy/mxedge.example.yaml
// is a commented example that the tests load.
package config
