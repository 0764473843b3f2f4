package redisstorage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"
)

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

// Defaults.
const (
	// DefaultPrefix is the key prefix used when Options.Prefix is empty.
	DefaultPrefix = "mxedge:certmagic:"
	// DefaultLockTTL is the lock expiry used when Options.LockTTL is 0.
	DefaultLockTTL = 30 * time.Second
	// DefaultLockPoll is how often a waiting Lock retries when Options.LockPoll is 0.
	DefaultLockPoll = 250 * time.Millisecond
)

// Options configures a Storage. The zero value uses the defaults.
type Options struct {
	// Prefix is prepended to every Redis key. Default DefaultPrefix.
	Prefix string
	// LockTTL is how long a lock outlives a holder that stopped refreshing
	// it (crashed). A held lock is refreshed every LockTTL/3. Default 30s.
	LockTTL time.Duration
	// LockPoll is how often Lock retries a lock held by someone else. Default 250ms.
	LockPoll time.Duration
}

// Storage is a certmagic.Storage on Redis. It is safe for concurrent use
// by several goroutines and several processes. Close stops lock refreshers
// and closes the client.
type Storage struct {
	rdb     redis.UniversalClient
	prefix  string
	lockTTL time.Duration
	poll    time.Duration

	mu    sync.Mutex
	locks map[string]*heldLock // name → lock held by this Storage
}

type heldLock struct {
	token string
	stop  chan struct{}
	done  chan struct{}
}

// New returns a Storage on the Redis at rawURL (redis://[user:pass@]host:port/db
// or rediss://). It does not contact Redis; use Check for that.
func New(rawURL string, o Options) (*Storage, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return NewWithClient(redis.NewClient(opt), o), nil
}

// NewWithClient returns a Storage using rdb, which Close closes.
func NewWithClient(rdb redis.UniversalClient, o Options) *Storage {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.LockTTL <= 0 {
		o.LockTTL = DefaultLockTTL
	}
	if o.LockPoll <= 0 {
		o.LockPoll = DefaultLockPoll
	}
	return &Storage{rdb: rdb, prefix: o.Prefix, lockTTL: o.LockTTL, poll: o.LockPoll, locks: map[string]*heldLock{}}
}

// Close stops the refreshers of locks still held (without releasing them:
// they expire after LockTTL) and closes the client.
func (s *Storage) Close() error {
	s.mu.Lock()
	for name, l := range s.locks {
		close(l.stop)
		<-l.done
		delete(s.locks, name)
	}
	s.mu.Unlock()
	return s.rdb.Close()
}

// String identifies the storage in certmagic's logs (without credentials).
func (s *Storage) String() string {
	return "redis:" + s.prefix
}

func (s *Storage) dataKey(key string) string { return s.prefix + "k:" + key }
func (s *Storage) indexKey() string          { return s.prefix + "index" }
func (s *Storage) lockKey(name string) string {
	return s.prefix + "lock:" + name
}

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	key = normKey(key)
	if key == "" {
		return errors.New("redisstorage: empty key")
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.dataKey(key), "v", value, "m", strconv.FormatInt(time.Now().UnixNano(), 10))
		p.ZAdd(ctx, s.indexKey(), redis.Z{Member: key})
		return nil
	})
	return err
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	key = normKey(key)
	v, err := s.rdb.HGet(ctx, s.dataKey(key), "v").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return v, err
}

// Delete deletes key and, when key is a "directory", every key under it.
// Deleting a missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	key = normKey(key)
	keys, err := s.under(ctx, key)
	if err != nil {
		return err
	}
	keys = append(keys, key)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, s.dataKey(k))
		}
		members := make([]any, len(keys))
		for i, k := range keys {
			members[i] = k
		}
		p.ZRem(ctx, s.indexKey(), members...)
		return nil
	})
	return err
}

// Exists reports whether key is a stored key or a prefix ("directory") of one.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	key = normKey(key)
	n, err := s.rdb.Exists(ctx, s.dataKey(key)).Result()
	if err == nil && n > 0 {
		return true
	}
	keys, err := s.rdb.ZRangeByLex(ctx, s.indexKey(), dirRange(key, 1)).Result()
	return err == nil && len(keys) > 0
}

// List returns the keys directly under path, or every key under it
// (terminal keys only) when recursive.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	path = normKey(path)
	keys, err := s.under(ctx, path)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	if recursive {
		return keys, nil
	}
	base := ""
	if path != "" {
		base = path + "/"
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range keys {
		rest := strings.TrimPrefix(k, base)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		child := base + rest
		if !seen[child] {
			seen[child] = true
			out = append(out, child)
		}
	}
	return out, nil
}

// Stat describes key: a terminal key with its size and modification time,
// or a "directory" when keys exist under it.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = normKey(key)
	vals, err := s.rdb.HMGet(ctx, s.dataKey(key), "v", "m").Result()
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if vals[0] != nil {
		v, _ := vals[0].(string)
		ms, _ := vals[1].(string)
		ns, _ := strconv.ParseInt(ms, 10, 64)
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, ns), Size: int64(len(v)), IsTerminal: true}, nil
	}
	keys, err := s.rdb.ZRangeByLex(ctx, s.indexKey(), dirRange(key, 1)).Result()
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// under returns every stored key strictly under dir ("" = all keys).
func (s *Storage) under(ctx context.Context, dir string) ([]string, error) {
	return s.rdb.ZRangeByLex(ctx, s.indexKey(), dirRange(dir, 0)).Result()
}

// dirRange is the lexicographic range of keys under dir; count 0 = all.
func dirRange(dir string, count int64) *redis.ZRangeBy {
	if dir == "" {
		return &redis.ZRangeBy{Min: "-", Max: "+", Count: count}
	}
	// '/'+1 == '0': every key starting with dir+"/" sorts in [dir/, dir0).
	return &redis.ZRangeBy{Min: "[" + dir + "/", Max: "(" + dir + "0", Count: count}
}

func normKey(k string) string {
	return strings.Trim(k, "/")
}

// Lua scripts for token-checked lock refresh and release.
var (
	refreshScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
	releaseScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
)

// Lock acquires the named lock, waiting (polling every LockPoll) while
// another holder has it, until ctx is done. A held lock is refreshed in the
// background until Unlock; if this process dies, it expires after LockTTL.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		t := time.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// TryLock acquires the named lock if it is free and reports whether it did.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	_, mine := s.locks[name]
	s.mu.Unlock()
	if mine {
		// certmagic locks are not reentrant; a second holder in this process waits.
		return false, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	token := hex.EncodeToString(b[:])
	ok, err := s.rdb.SetNX(ctx, s.lockKey(name), token, s.lockTTL).Result()
	if err != nil || !ok {
		return false, err
	}
	l := &heldLock{token: token, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	if _, mine := s.locks[name]; mine {
		// lost a race with another goroutine of this process that got the
		// lock after our check: impossible, since SETNX succeeded for us.
		s.mu.Unlock()
		return false, fmt.Errorf("redisstorage: lock %q held twice", name)
	}
	s.locks[name] = l
	s.mu.Unlock()
	go s.refresh(name, l)
	return true, nil
}

// refresh extends the lock's TTL every LockTTL/3 until stopped.
func (s *Storage) refresh(name string, l *heldLock) {
	defer close(l.done)
	t := time.NewTicker(s.lockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.lockTTL/3)
			refreshScript.Run(ctx, s.rdb, []string{s.lockKey(name)}, l.token, s.lockTTL.Milliseconds())
			cancel()
		}
	}
}

// Unlock releases the named lock held by this Storage.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l, ok := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("redisstorage: lock %q not held", name)
	}
	close(l.stop)
	<-l.done
	n, err := releaseScript.Run(ctx, s.rdb, []string{s.lockKey(name)}, l.token).Int()
	if err != nil {
		return fmt.Errorf("redisstorage: unlock %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("redisstorage: lock %q had expired", name)
	}
	return nil
}

// RenewLockLease extends a held lock to at least leaseDuration from now
// (certmagic calls it before each obtain attempt).
func (s *Storage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	s.mu.Lock()
	l, ok := s.locks[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("redisstorage: lock %q not held", name)
	}
	if leaseDuration < s.lockTTL {
		leaseDuration = s.lockTTL
	}
	n, err := refreshScript.Run(ctx, s.rdb, []string{s.lockKey(name)}, l.token, leaseDuration.Milliseconds()).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("redisstorage: lock %q lost", name)
	}
	return nil
}
