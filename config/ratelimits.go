package config

// RateLimits holds the rc_* limiters in Synapse's vocabulary. Owned by the
// rate-limiting work (issue 4); defaults equal Synapse's.
type RateLimits struct {
	// Enabled turns rate limiting on. Default true.
	Enabled bool `yaml:"enabled"`
	// RCMessage limits sending events, per access token. Default 0.2/s, burst 10.
	RCMessage Bucket `yaml:"rc_message"`
	// RCRegistration limits POST /register, per client address. Default 0.17/s, burst 3.
	RCRegistration Bucket `yaml:"rc_registration"`
	// RCLogin limits POST /login.
	RCLogin RCLogin `yaml:"rc_login"`
}

// Bucket is one token bucket: per_second tokens refill, burst_count capacity.
type Bucket struct {
	PerSecond  float64 `yaml:"per_second"`
	BurstCount int     `yaml:"burst_count"`
}

// RCLogin holds the login limiters.
type RCLogin struct {
	Address        Bucket `yaml:"address"`
	Account        Bucket `yaml:"account"`
	FailedAttempts Bucket `yaml:"failed_attempts"`
}

// validateRateLimits checks the rate_limits section.
func (c *Config) validateRateLimits(p *problems) {}

// defaultsRateLimits fills the rate_limits defaults. Called from Defaults.
// (Stub added by the config work; the rate-limiting work fills it.)
func (c *Config) defaultsRateLimits() {}
