package redisstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/ratelimit"
)

// script decides every bucket of one request, all or nothing.
// KEYS[i]: bucket keys. ARGV[3i-2..3i]: interval µs, tolerance µs, tokens (0 =
// check only). A bucket is its theoretical arrival time in µs on Redis's clock,
// expiring when the bucket is full again. Returns per key 0 (passes) or the
// wait in µs.
const script = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local res = {}
local tats = {}
local ok = true
for i = 1, #KEYS do
  local iv = tonumber(ARGV[3*i-2])
  local tol = tonumber(ARGV[3*i-1])
  local n = tonumber(ARGV[3*i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local check = tat + iv * math.max(n, 1)
  local wait = check - now - tol
  if wait > 0 then
    res[i] = wait
    ok = false
  else
    res[i] = 0
    if n > 0 then tats[i] = check end
  end
end
if ok then
  for i = 1, #KEYS do
    if tats[i] then
      redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1)
    end
  end
end
return res
`

// Store is a ratelimit.Store on Redis. Safe for concurrent use.
type Store struct {
	c       *redis.Client
	script  *redis.Script
	prefix  string
	timeout time.Duration
	macs    sync.Pool // hash.Hash: HMAC-SHA256 with the key secret, or SHA-256
}

var _ ratelimit.Store = (*Store)(nil)

// New returns a Store for cfg. It does not connect: the first decision does
// (and fails over to the Limiter's on_error policy if Redis is not there).
func New(cfg config.RateLimitRedis) (*Store, error) {
	o, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rate_limits.redis.url: %w", err)
	}
	timeout := cfg.Timeout.D()
	if timeout <= 0 {
		timeout = config.DefaultRedisTimeout.D()
	}
	o.DialTimeout = timeout
	o.ReadTimeout = timeout
	o.WriteTimeout = timeout
	o.PoolTimeout = timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1 // a retry doubles the latency; the Limiter falls back instead
	o.DisableIdentity = true
	prefix := cfg.KeyPrefix
	if prefix == "" {
		prefix = config.DefaultRedisKeyPrefix
	}
	s := &Store{c: redis.NewClient(o), script: redis.NewScript(script), prefix: prefix, timeout: timeout}
	secret := []byte(cfg.KeySecret)
	s.macs.New = func() any {
		if len(secret) == 0 {
			return sha256.New()
		}
		return hmac.New(sha256.New, secret)
	}
	return s, nil
}

// Key returns the Redis key of a bucket: prefix, category name, then the
// first 128 bits of HMAC-SHA256(key_secret, kind|address|string) in hex (plain
// SHA-256 without a secret). Raw tokens, accounts and addresses never reach Redis.
func (s *Store) Key(name string, k ratelimit.Key) string {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	var b [17]byte
	b[0] = byte(k.Kind)
	copy(b[1:], k.Addr[:])
	h.Write(b[:])
	h.Write([]byte(k.S))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	s.macs.Put(h)
	return s.prefix + name + ":" + hex.EncodeToString(sum[:16])
}

func micros(d time.Duration) int64 { return int64((d + time.Microsecond - 1) / time.Microsecond) }

// Allow implements ratelimit.Store with one EVALSHA (EVAL once after a Redis
// restart) bounded by the configured timeout.
func (s *Store) Allow(ctx context.Context, reqs []ratelimit.Request, res []ratelimit.Result) error {
	if len(reqs) == 0 {
		return nil
	}
	keys := make([]string, len(reqs))
	args := make([]any, 0, 3*len(reqs))
	for i := range reqs {
		r := &reqs[i]
		keys[i] = s.Key(r.Name, r.Key)
		args = append(args, strconv.FormatInt(micros(r.Limit.Interval()), 10),
			strconv.FormatInt(micros(r.Limit.Tolerance()), 10), strconv.Itoa(r.N))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, err := s.script.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil {
		return err
	}
	if len(v) != len(reqs) {
		return errors.New("redisstore: unexpected script reply")
	}
	for i, w := range v {
		res[i] = ratelimit.Result{Allowed: w <= 0, RetryAfter: time.Duration(w) * time.Microsecond}
	}
	return nil
}

// Ping checks that Redis answers within the timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.c.Ping(ctx).Err()
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.c.Close() }

// Open builds the Limiter for cfg: with rate_limits.store redis it creates
// the shared Store and passes it in o.Store (the Limiter closes it), with
// memory it is ratelimit.New. It is what the command calls.
func Open(cfg config.RateLimits, o ratelimit.Options) (*ratelimit.Limiter, error) {
	if cfg.Store == config.RateLimitStoreRedis {
		st, err := New(cfg.Redis)
		if err != nil {
			return nil, err
		}
		o.Store = st
		l, err := ratelimit.New(cfg, o)
		if err != nil {
			st.Close()
			return nil, err
		}
		return l, nil
	}
	o.Store = nil
	return ratelimit.New(cfg, o)
}
