package ratelimit

import (
	"context"
	"math"
	"strconv"
	"time"
)

// Store holds token buckets. Memory is the in-process Store;
// ratelimit/redisstore shares buckets between processes.
type Store interface {
	// Allow decides reqs all or nothing: each res[i] tells whether reqs[i]
	// alone would pass and, if not, how long until it would. Buckets change
	// only when every request with N > 0 passes. len(res) == len(reqs).
	// An error means no decision was made (res is undefined).
	// Allow is safe for concurrent use.
	Allow(ctx context.Context, reqs []Request, res []Result) error
	// Close releases the store's resources.
	Close() error
}

// KeyKind says what a Key identifies.
type KeyKind uint8

// Key kinds.
const (
	KeyIP      KeyKind = iota + 1 // Addr: client address (IPv6 masked to the configured prefix)
	KeyToken                      // S: access token (hashed by the store, never kept raw)
	KeyIPToken                    // Addr and S: address and access token
	KeyUser                       // S: a user id (appservice puppet, invitee)
	KeyAccount                    // S: a login's target account (lower-cased localpart or 3pid)
	KeyRoom                       // S: a room id
)

// Key identifies one bucket within a category. The zero value is no key.
// S may alias request memory: stores hash it and do not keep it.
type Key struct {
	Kind KeyKind
	Addr [16]byte
	S    string
}

// Limit is a bucket's shape, precomputed for the hot path. The zero value is
// not usable; use NewLimit.
type Limit struct {
	interval int64 // nanoseconds per token
	tol      int64 // burst * interval: how far the bucket may run ahead of now
}

// NewLimit returns the limit refilling perSecond tokens a second up to burst
// tokens. perSecond must be > 0 and burst >= 1 (config validation checks).
func NewLimit(perSecond, burst float64) Limit {
	iv := math.Round(1e9 / perSecond)
	if iv < 1 {
		iv = 1
	}
	return Limit{interval: int64(iv), tol: int64(math.Round(burst * iv))}
}

// Interval returns the time one token takes to refill.
func (l Limit) Interval() time.Duration { return time.Duration(l.interval) }

// Tolerance returns burst × Interval: the capacity as time.
func (l Limit) Tolerance() time.Duration { return time.Duration(l.tol) }

// Request asks one bucket for N tokens (N = 0: only check that one would pass).
type Request struct {
	Cat   Category
	Name  string // category label ("rc_message", "rule:<name>"): shared stores key buckets by it; the Memory store ignores it
	Key   Key
	Limit Limit
	N     int
}

// Result is one request's answer: Allowed, or RetryAfter until it would be.
type Result struct {
	Allowed    bool
	RetryAfter time.Duration
}

// gcra decides n tokens from a bucket whose theoretical arrival time is tat,
// at now (all nanoseconds). It returns whether it passes, the new tat to store
// (when n > 0 and allowed) and, when refused, the exact wait until it would pass.
func gcra(tat int64, l Limit, n int, now int64) (ok bool, newTat int64, retry int64) {
	if tat < now {
		tat = now
	}
	k := int64(n)
	if k < 1 {
		k = 1
	}
	check := tat + l.interval*k
	if d := check - now - l.tol; d > 0 {
		return false, tat, d
	}
	if n == 0 {
		return true, tat, 0
	}
	return true, check, 0
}

// RetryAfterMillis returns the retry_after_ms value for a wait: d rounded up
// to whole milliseconds (a client waiting that long is sure to pass).
func RetryAfterMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// RetryAfterHeader returns the Retry-After header value for retry_after_ms ms:
// whole seconds rounded up, at least 1 for a positive wait.
func RetryAfterHeader(ms int64) string {
	if ms <= 0 {
		return "0"
	}
	return strconv.FormatInt((ms+999)/1000, 10)
}
