package config

import (
	"reflect"
	"strings"
	"time"
)

// Resolver defaults.
const (
	DefaultResolverTTL        = Duration(time.Hour)
	DefaultResolverInvalidTTL = Duration(10 * time.Second)
	DefaultResolverMaxEntries = 100000
	DefaultResolverTimeout    = Duration(2 * time.Second)
)

// Workers sends requests to Synapse's workers by Synapse's own rules
// (docs/workers.md): each key is a role, in Synapse's vocabulary, naming the
// pool of its workers. A role not listed goes to the main process (the
// homeserver pool).
type Workers struct {
	Synchrotron        string `yaml:"synchrotron"`
	InitialSynchrotron string `yaml:"initial_synchrotron"`
	ClientReader       string `yaml:"client_reader"`
	EventCreator       string `yaml:"event_creator"`
	FederationInbound  string `yaml:"federation_inbound"`
	FederationReader   string `yaml:"federation_reader"`
	MediaRepository    string `yaml:"media_repository"`
	// Stream writers, by their stream names.
	Events      string `yaml:"events"`
	Typing      string `yaml:"typing"`
	ToDevice    string `yaml:"to_device"`
	AccountData string `yaml:"account_data"`
	Receipts    string `yaml:"receipts"`
	Presence    string `yaml:"presence"`
	PushRules   string `yaml:"push_rules"`
	DeviceLists string `yaml:"device_lists"`
	// Resolver finds the user behind an access token, for sticky routing by
	// user and per-user rate limits.
	Resolver WorkersResolver `yaml:"resolver"`
}

// WorkersResolver configures the token-to-user resolver.
type WorkersResolver struct {
	// Enabled asks the homeserver (/account/whoami) who a token belongs to.
	// Default false: requests balanced by user hash the token instead (one
	// device, not one user).
	Enabled bool `yaml:"enabled"`
	// CacheTTL is how long an answer is kept. Default 1h.
	CacheTTL Duration `yaml:"cache_ttl"`
	// InvalidTTL is how long a token the homeserver refused (401/403) is
	// remembered as invalid. Default 10s.
	InvalidTTL Duration `yaml:"invalid_ttl"`
	// MaxEntries bounds the cached tokens. Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// Timeout bounds one whoami request; past it the token is hashed
	// instead. Default 2s.
	Timeout Duration `yaml:"timeout"`
}

// WorkerRoles returns the configured roles (role → pool name), none when
// workers are not configured.
func (c *Config) WorkerRoles() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(c.Workers)
	t := v.Type()
	for i := range t.NumField() {
		if t.Field(i).Type.Kind() != reflect.String {
			continue
		}
		if pool := v.Field(i).String(); pool != "" {
			role, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			out[role] = pool
		}
	}
	return out
}

func (c *Config) defaultsWorkers() {
	c.Workers.Resolver = WorkersResolver{
		CacheTTL: DefaultResolverTTL, InvalidTTL: DefaultResolverInvalidTTL,
		MaxEntries: DefaultResolverMaxEntries, Timeout: DefaultResolverTimeout,
	}
}

// checkWorkers validates workers against the pools.
func (c *Config) checkWorkers(p *problems, pools []*PoolSpec) {
	for role, pool := range c.WorkerRoles() {
		if pools != nil && !hasPool(pools, pool) {
			p.add("workers."+role, "names no pool in upstreams (have %s)", poolNames(pools))
		}
	}
	r := c.Workers.Resolver
	if r.CacheTTL <= 0 {
		p.add("workers.resolver.cache_ttl", "must be > 0, got %s", r.CacheTTL.D())
	}
	if r.InvalidTTL <= 0 {
		p.add("workers.resolver.invalid_ttl", "must be > 0, got %s", r.InvalidTTL.D())
	}
	if r.MaxEntries < 1 {
		p.add("workers.resolver.max_entries", "must be >= 1, got %d", r.MaxEntries)
	}
	if r.Timeout <= 0 {
		p.add("workers.resolver.timeout", "must be > 0, got %s", r.Timeout.D())
	}
}
