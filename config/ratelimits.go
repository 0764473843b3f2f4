package config

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// RateLimits holds the rate limiters, in Synapse's vocabulary (rc_* options with
// per_second and burst_count), so that a Synapse homeserver.yaml section can be
// pasted. Defaults equal Synapse's. Owned by the rate-limiting work (issue 4);
// docs/RATELIMITS.md says how each option is keyed and which paths it covers.
type RateLimits struct {
	// Enabled turns rate limiting at the edge on. Default true.
	Enabled bool `yaml:"enabled"`

	// RCMessage limits sending events (send, state, redact, createRoom), per
	// access token. Default 0.2/s, burst 10.
	RCMessage Bucket `yaml:"rc_message"`
	// RCRegistration limits POST /register, per client address. As in Synapse,
	// only successful registrations (upstream 200) count; a request is refused
	// once the bucket is empty. Default 0.17/s, burst 3.
	RCRegistration Bucket `yaml:"rc_registration"`
	// RCRegistrationTokenValidity limits the registration token validity check,
	// per client address. Default 0.1/s, burst 5.
	RCRegistrationTokenValidity Bucket `yaml:"rc_registration_token_validity"`
	// RCLogin limits POST /login.
	RCLogin RCLogin `yaml:"rc_login"`
	// RCJoins limits room joins.
	RCJoins RCJoins `yaml:"rc_joins"`
	// RCJoinsPerRoom limits joins into one room (room id in the path), all
	// users of this server together. Joins by alias are not covered. Default 1/s, burst 10.
	RCJoinsPerRoom Bucket `yaml:"rc_joins_per_room"`
	// RCInvites limits invites.
	RCInvites RCInvites `yaml:"rc_invites"`
	// RC3PIDValidation limits the …/requestToken endpoints, per client address.
	// Default 0.003/s, burst 5.
	RC3PIDValidation Bucket `yaml:"rc_3pid_validation"`
	// RCMediaCreate limits POST /_matrix/media/v1/create, per access token.
	// Default 10/s, burst 50.
	RCMediaCreate Bucket `yaml:"rc_media_create"`
	// RCRoomCreation limits createRoom and room upgrades, per access token.
	// Default 0.016/s, burst 10.
	RCRoomCreation Bucket `yaml:"rc_room_creation"`
	// RCReports limits the report endpoints, per access token. Default 1/s, burst 5.
	RCReports Bucket `yaml:"rc_reports"`
	// RCUserDirectory limits user directory searches, per access token.
	// Default 0.016/s, burst 200.
	RCUserDirectory Bucket `yaml:"rc_user_directory"`
	// RCPresence limits presence updates.
	RCPresence RCPresence `yaml:"rc_presence"`
	// RCDelayedEventMgmt limits delayed event management (MSC4140), per access
	// token, per client address when unauthenticated. Default 1/s, burst 5.
	RCDelayedEventMgmt Bucket `yaml:"rc_delayed_event_mgmt"`
	// MASAddress limits every request to MAS's host (mas.public_base), per
	// client address: MAS's pages, OAuth endpoints and assets. Not a Synapse
	// option (MAS limits logins itself). Default 10/s, burst 100.
	MASAddress Bucket `yaml:"mas_address"`

	// RCAdminRedaction is accepted so that a Synapse section can be pasted, but
	// not enforced: only the homeserver knows whether the sender is an admin.
	// mxedge logs a warning when it is set. Default unset.
	RCAdminRedaction *Bucket `yaml:"rc_admin_redaction"`
	// RCFederation is accepted so that a Synapse section can be pasted, but not
	// enforced: Synapse's federation limiter delays and queues per origin server
	// rather than refusing. mxedge logs a warning when it is set. Default unset.
	RCFederation map[string]any `yaml:"rc_federation"`

	// Rules are admin-defined limits matched on method and path, on top of the
	// rc_* categories. Default none.
	Rules []RateLimitRule `yaml:"rules"`
	// Exempt lists clients that are never limited.
	Exempt RateLimitExempt `yaml:"exempt"`
	// IPv6Prefix groups IPv6 clients by this prefix length: one bucket per /64 by
	// default (a client usually owns a whole /64). 16 to 128. Default 64.
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// MaxKeys is the hard bound on buckets tracked in memory (all categories
	// together). When the table is full a new key shares one overflow bucket per
	// category; tracked keys are never evicted before their bucket is full again.
	// Default 1000000 (about 60 MB; see docs/RATELIMITS.md).
	MaxKeys int `yaml:"max_keys"`
	// Store is where buckets live: memory (per process) or redis (shared by
	// replicas). Default memory.
	Store string `yaml:"store"`
	// Redis configures store: redis.
	Redis RateLimitRedis `yaml:"redis"`

	// Parsed forms, filled once by Config.Validate (see parsed.go).
	exemptPrefixes Prefixes
	rulePaths      []RulePath
	appservices    []*AppserviceRegistration
}

// Bucket is one limiter: a token bucket refilled at PerSecond tokens a second
// holding at most BurstCount tokens. A request takes one token.
type Bucket struct {
	// PerSecond is the refill rate, tokens per second. Must be > 0.
	PerSecond float64 `yaml:"per_second"`
	// BurstCount is the capacity: requests allowed at once from a full bucket.
	// Synapse accepts fractions (3.0); must be >= 1.
	BurstCount float64 `yaml:"burst_count"`
	// ExemptUserIDs is Synapse's per-limiter user exemption. mxedge sees access
	// tokens, not user ids, so it refuses the key rather than limiting users
	// the admin meant to exempt: exempt them by address or appservice instead.
	ExemptUserIDs []string `yaml:"exempt_user_ids"`
}

// RCLogin holds the login limiters.
type RCLogin struct {
	// Address limits POST /login per client address. Default 0.003/s, burst 5.
	Address Bucket `yaml:"address"`
	// Account limits POST /login per target account (identifier.user or the
	// legacy user field of the body, lower-cased localpart). Default 0.003/s, burst 5.
	Account Bucket `yaml:"account"`
	// FailedAttempts counts upstream 401/403 answers to login per target account;
	// an empty bucket refuses further attempts. Default 0.17/s, burst 3.
	FailedAttempts Bucket `yaml:"failed_attempts"`
}

// RCJoins holds the join limiters.
type RCJoins struct {
	// Local limits joins per access token. The edge cannot tell a local room from
	// a remote one, so it applies Local (the looser one) to every join.
	// Default 0.1/s, burst 10.
	Local Bucket `yaml:"local"`
	// Remote is accepted so that a Synapse section can be pasted, but enforced by
	// the homeserver only (it alone knows whether a join needs federation).
	// mxedge logs a warning when it is set. Default unset.
	Remote *Bucket `yaml:"remote"`
}

// RCInvites holds the invite limiters.
type RCInvites struct {
	// PerRoom limits invites into one room (room id in the path). Default 0.3/s, burst 10.
	PerRoom Bucket `yaml:"per_room"`
	// PerUser limits invites of one invitee (user_id of the invite body).
	// Default 0.003/s, burst 5.
	PerUser Bucket `yaml:"per_user"`
	// PerIssuer limits invites sent per access token. Default 0.3/s, burst 10.
	PerIssuer Bucket `yaml:"per_issuer"`
}

// RCPresence holds the presence limiter.
type RCPresence struct {
	// PerUser limits PUT …/presence/{userId}/status per access token.
	// Default 0.1/s, burst 1.
	PerUser Bucket `yaml:"per_user"`
}

// Rate limit rule keys (rate_limits.rules[].key).
const (
	RuleKeyIP      = "ip"
	RuleKeyToken   = "token"
	RuleKeyIPToken = "ip+token"
)

// RateLimitRule is an admin-defined limit.
type RateLimitRule struct {
	// Name identifies the rule in logs and metrics (category label "rule:<name>").
	// Required, unique, letters, digits, '_', '-', '.'.
	Name string `yaml:"name"`
	// Methods the rule applies to (upper case). Default empty: every method.
	Methods []string `yaml:"methods"`
	// Path is a pattern over the decoded request path: segments separated by '/';
	// a segment "*" matches exactly one segment, a final "**" matches any rest
	// (zero or more segments); other segments match literally.
	// Example: /_matrix/client/*/rooms/*/send/**. Required. Parsed into a
	// RulePath (RateLimits.RulePaths).
	Path string `yaml:"path"`
	// Key is ip, token or ip+token. A request without a token is keyed by
	// address. Default ip.
	Key string `yaml:"key"`
	// PerSecond is the refill rate. Must be > 0.
	PerSecond float64 `yaml:"per_second"`
	// BurstCount is the capacity. Must be >= 1.
	BurstCount float64 `yaml:"burst_count"`
}

// RateLimitExempt lists clients that are never limited.
type RateLimitExempt struct {
	// Addresses are CIDRs or single addresses of the trusted client address
	// (after trusted_proxies) never limited, read like trusted_proxies
	// (IPv4-mapped IPv6 is unmapped). Default ["127.0.0.1/32", "::1/128"].
	Addresses []string `yaml:"addresses"`
	// AppserviceRegistrations are appservice registration files in Synapse's
	// format (Synapse's app_service_config_files). A request with the as_token of
	// a registration with rate_limited: false is exempt; other appservice
	// requests are keyed per puppeted user (the user_id query parameter).
	// Default none.
	AppserviceRegistrations []string `yaml:"appservice_registrations"`
}

// Rate limit stores (rate_limits.store) and Redis error policies (rate_limits.redis.on_error).
const (
	RateLimitStoreMemory = "memory"
	RateLimitStoreRedis  = "redis"
	RedisOnErrorLocal    = "local"
	RedisOnErrorAllow    = "allow"
	RedisOnErrorDeny     = "deny"
)

// RateLimitRedis configures the shared Redis store.
type RateLimitRedis struct {
	// URL is redis://[user:pass@]host:port/db, rediss://… (TLS) or
	// unix:///path?db=N. Default redis://127.0.0.1:6379/0. Redis Cluster is not
	// supported (a decision touches several keys in one script).
	URL string `yaml:"url"`
	// Timeout bounds one decision's round trip (dial, write, read). Default 50ms.
	Timeout Duration `yaml:"timeout"`
	// OnError is what happens while Redis fails or times out: local (decide with
	// the in-process limiter, default), allow (let requests through) or deny
	// (answer 503). Redis is probed again every second; recovery is automatic.
	OnError string `yaml:"on_error"`
	// KeyPrefix starts every Redis key. Default "mxedge:rl:".
	KeyPrefix string `yaml:"key_prefix"`
	// KeySecret keys the HMAC-SHA256 that turns tokens, accounts and addresses
	// into Redis keys; every replica must use the same one. Default empty:
	// plain SHA-256 (access tokens are never stored raw either way).
	KeySecret string `yaml:"key_secret"`
}

// Rate limit defaults.
const (
	DefaultRateLimitIPv6Prefix = 64
	DefaultRateLimitMaxKeys    = 1000000
	DefaultRedisURL            = "redis://127.0.0.1:6379/0"
	DefaultRedisTimeout        = Duration(50 * time.Millisecond)
	DefaultRedisKeyPrefix      = "mxedge:rl:"
)

// DefaultRateLimitExemptAddresses returns the default exempt.addresses: loopback.
func DefaultRateLimitExemptAddresses() []string { return []string{"127.0.0.1/32", "::1/128"} }

// defaultsRateLimits fills the rate_limits defaults (Synapse's). Called from Defaults.
func (c *Config) defaultsRateLimits() {
	b := func(ps, burst float64) Bucket { return Bucket{PerSecond: ps, BurstCount: burst} }
	c.RateLimits = RateLimits{
		Enabled:                     true,
		RCMessage:                   b(0.2, 10),
		RCRegistration:              b(0.17, 3),
		RCRegistrationTokenValidity: b(0.1, 5),
		RCLogin: RCLogin{
			Address:        b(0.003, 5),
			Account:        b(0.003, 5),
			FailedAttempts: b(0.17, 3),
		},
		RCJoins:            RCJoins{Local: b(0.1, 10)},
		RCJoinsPerRoom:     b(1, 10),
		RCInvites:          RCInvites{PerRoom: b(0.3, 10), PerUser: b(0.003, 5), PerIssuer: b(0.3, 10)},
		RC3PIDValidation:   b(0.003, 5),
		RCMediaCreate:      b(10, 50),
		RCRoomCreation:     b(0.016, 10),
		RCReports:          b(1, 5),
		RCUserDirectory:    b(0.016, 200),
		RCPresence:         RCPresence{PerUser: b(0.1, 1)},
		RCDelayedEventMgmt: b(1, 5),
		MASAddress:         b(10, 100),
		Exempt:             RateLimitExempt{Addresses: DefaultRateLimitExemptAddresses()},
		IPv6Prefix:         DefaultRateLimitIPv6Prefix,
		MaxKeys:            DefaultRateLimitMaxKeys,
		Store:              RateLimitStoreMemory,
		Redis: RateLimitRedis{
			URL:       DefaultRedisURL,
			Timeout:   DefaultRedisTimeout,
			OnError:   RedisOnErrorLocal,
			KeyPrefix: DefaultRedisKeyPrefix,
		},
	}
}

// NamedBucket is one built-in limiter with its full key.
type NamedBucket struct {
	Key    string // full dotted key, e.g. "rate_limits.rc_login.address"
	Bucket *Bucket
}

// Buckets lists the enforced rc_* limiters with their full keys, in a fixed order.
func (r *RateLimits) Buckets() []NamedBucket {
	const p = "rate_limits."
	return []NamedBucket{
		{p + "rc_message", &r.RCMessage},
		{p + "rc_registration", &r.RCRegistration},
		{p + "rc_registration_token_validity", &r.RCRegistrationTokenValidity},
		{p + "rc_login.address", &r.RCLogin.Address},
		{p + "rc_login.account", &r.RCLogin.Account},
		{p + "rc_login.failed_attempts", &r.RCLogin.FailedAttempts},
		{p + "rc_joins.local", &r.RCJoins.Local},
		{p + "rc_joins_per_room", &r.RCJoinsPerRoom},
		{p + "rc_invites.per_room", &r.RCInvites.PerRoom},
		{p + "rc_invites.per_user", &r.RCInvites.PerUser},
		{p + "rc_invites.per_issuer", &r.RCInvites.PerIssuer},
		{p + "rc_3pid_validation", &r.RC3PIDValidation},
		{p + "rc_media_create", &r.RCMediaCreate},
		{p + "rc_room_creation", &r.RCRoomCreation},
		{p + "rc_reports", &r.RCReports},
		{p + "rc_user_directory", &r.RCUserDirectory},
		{p + "rc_presence.per_user", &r.RCPresence.PerUser},
		{p + "rc_delayed_event_mgmt", &r.RCDelayedEventMgmt},
		{p + "mas_address", &r.MASAddress},
	}
}

// Unenforced returns the full keys of options that are set but that only the
// homeserver can enforce (the limiter logs a warning for each).
func (r *RateLimits) Unenforced() []string {
	var out []string
	if r.RCJoins.Remote != nil {
		out = append(out, "rate_limits.rc_joins.remote")
	}
	if r.RCAdminRedaction != nil {
		out = append(out, "rate_limits.rc_admin_redaction")
	}
	if r.RCFederation != nil {
		out = append(out, "rate_limits.rc_federation")
	}
	return out
}

// validateRateLimits checks the rate_limits section and puts its parsed
// forms (exempt addresses, rule paths, appservice registrations) in pf. It
// reads the appservice registration files but changes nothing.
func (c *Config) validateRateLimits(p *problems, pf *parsedForms) {
	r := &c.RateLimits
	for _, nb := range r.Buckets() {
		validateBucket(p, nb.Key, *nb.Bucket)
	}
	if r.RCJoins.Remote != nil {
		validateBucket(p, "rate_limits.rc_joins.remote", *r.RCJoins.Remote)
	}
	if r.RCAdminRedaction != nil {
		validateBucket(p, "rate_limits.rc_admin_redaction", *r.RCAdminRedaction)
	}
	if r.IPv6Prefix < 16 || r.IPv6Prefix > 128 {
		p.add("rate_limits.ipv6_prefix", "must be between 16 and 128, got %d", r.IPv6Prefix)
	}
	if r.MaxKeys < 1 {
		p.add("rate_limits.max_keys", "must be > 0, got %d", r.MaxKeys)
	}
	pf.exemptPrefixes = checkPrefixes(p, "rate_limits.exempt.addresses", r.Exempt.Addresses)
	for i, f := range r.Exempt.AppserviceRegistrations {
		key := fmt.Sprintf("rate_limits.exempt.appservice_registrations[%d]", i)
		reg, err := readAppserviceRegistration(f)
		if err != nil {
			p.add(key, "%v", err)
			continue
		}
		pf.appservices = append(pf.appservices, reg)
	}
	names := map[string]bool{}
	for i, rule := range r.Rules {
		key := fmt.Sprintf("rate_limits.rules[%d]", i)
		switch {
		case rule.Name == "":
			p.add(key+".name", "is required")
		case !validRuleName(rule.Name):
			p.add(key+".name", "must hold only letters, digits, '_', '-' and '.', got %q", rule.Name)
		case names[rule.Name]:
			p.add(key+".name", "duplicate rule name %q", rule.Name)
		}
		names[rule.Name] = true
		for j, m := range rule.Methods {
			if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t/") {
				p.add(fmt.Sprintf("%s.methods[%d]", key, j), "must be an upper-case HTTP method like POST, got %q", m)
			}
		}
		if rp, err := parseRulePath(rule.Path); err != nil {
			p.add(key+".path", "%v", err)
		} else {
			pf.rulePaths = append(pf.rulePaths, rp)
		}
		switch rule.Key {
		case "", RuleKeyIP, RuleKeyToken, RuleKeyIPToken:
		default:
			p.add(key+".key", "must be ip, token or ip+token, got %q", rule.Key)
		}
		validateBucket(p, key, Bucket{PerSecond: rule.PerSecond, BurstCount: rule.BurstCount})
	}
	switch r.Store {
	case RateLimitStoreMemory:
	case RateLimitStoreRedis:
		validateRedis(p, &r.Redis)
	default:
		p.add("rate_limits.store", "must be memory or redis, got %q", r.Store)
	}
}

func validateBucket(p *problems, key string, b Bucket) {
	if !(b.PerSecond > 0) || math.IsInf(b.PerSecond, 0) {
		p.add(key+".per_second", "must be a number > 0, got %v", b.PerSecond)
	} else if b.PerSecond < 1e-6 || b.PerSecond > 1e6 {
		p.add(key+".per_second", "must be between 0.000001 and 1000000, got %v", b.PerSecond)
	}
	if !(b.BurstCount >= 1) || b.BurstCount > 1e9 {
		p.add(key+".burst_count", "must be between 1 and 1000000000, got %v", b.BurstCount)
	}
	if len(b.ExemptUserIDs) > 0 {
		p.add(key+".exempt_user_ids", "not supported at the edge: mxedge sees access tokens, not user ids; "+
			"exempt the client with rate_limits.exempt.addresses or its appservice registration")
	}
}

func validateRedis(p *problems, r *RateLimitRedis) {
	u, err := url.Parse(r.URL)
	switch {
	case err != nil:
		p.add("rate_limits.redis.url", "invalid URL: %v", err)
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
		p.add("rate_limits.redis.url", "must be redis://, rediss:// or unix://, got %q", u.Scheme+"://…")
	case u.Scheme != "unix" && u.Host == "":
		p.add("rate_limits.redis.url", "has no host")
	}
	if r.Timeout <= 0 {
		p.add("rate_limits.redis.timeout", "must be > 0, got %s", r.Timeout)
	}
	switch r.OnError {
	case RedisOnErrorLocal, RedisOnErrorAllow, RedisOnErrorDeny:
	default:
		p.add("rate_limits.redis.on_error", "must be local, allow or deny, got %q", r.OnError)
	}
}

func validRuleName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// RulePath is a parsed rate_limits.rules[].path pattern.
type RulePath struct {
	// Segments are the pattern's segments after the leading '/', a final
	// "**" excluded: literals, or "*" for exactly one segment. "/" is one
	// empty segment.
	Segments []string
	// Rest is true when the pattern ended in "**": any rest of the path (zero
	// or more segments) follows Segments.
	Rest bool
}

// parseRulePath parses a rate_limits.rules[].path pattern: it starts with
// '/', its segments are literals (without '*'), "*" (one segment), or a
// final "**" (any rest).
func parseRulePath(pat string) (RulePath, error) {
	if pat == "" {
		return RulePath{}, fmt.Errorf("is required")
	}
	if pat[0] != '/' {
		return RulePath{}, fmt.Errorf("must start with '/', got %q", pat)
	}
	segs := strings.Split(pat[1:], "/")
	for i, s := range segs {
		switch {
		case s == "*":
		case s == "**":
			if i != len(segs)-1 {
				return RulePath{}, fmt.Errorf("'**' may only be the last segment, got %q", pat)
			}
		case strings.Contains(s, "*"):
			return RulePath{}, fmt.Errorf("'*' must be a whole segment (\"*\" or a final \"**\"), got %q", pat)
		}
	}
	if n := len(segs); segs[n-1] == "**" {
		return RulePath{Segments: segs[:n-1], Rest: true}, nil
	}
	return RulePath{Segments: segs}, nil
}

// AppserviceRegistration is the part of a Synapse appservice registration
// file the rate limiter reads.
type AppserviceRegistration struct {
	ID string `yaml:"id"`
	// ASToken is the token the appservice sends as its access token.
	ASToken string `yaml:"as_token"`
	// SenderLocalpart is the appservice's own user.
	SenderLocalpart string `yaml:"sender_localpart"`
	// RateLimited is Synapse's rate_limited; absent means true.
	RateLimited *bool `yaml:"rate_limited"`
}

// readAppserviceRegistration reads and checks one registration file. Other keys
// of Synapse's format are ignored.
func readAppserviceRegistration(path string) (*AppserviceRegistration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read appservice registration: %v", err)
	}
	var r AppserviceRegistration
	if err := yaml.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("invalid appservice registration %s: %v", path, err)
	}
	if r.ASToken == "" {
		return nil, fmt.Errorf("appservice registration %s has no as_token", path)
	}
	return &r, nil
}
