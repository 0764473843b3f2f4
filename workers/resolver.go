package workers

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// WhoAmI asks the homeserver who an access token belongs to: the user ID,
// or valid false when the homeserver refused the token (401/403). err is
// set when it could not answer (unreachable, timed out, 5xx).
type WhoAmI func(ctx context.Context, token string) (user string, valid bool, err error)

// Resolver maps access tokens to users, asking the homeserver once per token
// and caching the answer: a user for TTL, a refused token for InvalidTTL, a
// failure not at all (the next request asks again; meanwhile the token is
// hashed). Tokens themselves are not kept: entries are keyed by a seeded
// hash of the token, and no token is ever logged. Bounded by MaxEntries.
// Safe for concurrent use; a cache hit takes a shard's read lock and
// allocates nothing.
type Resolver struct {
	ask                     WhoAmI
	ttl, invalidTTL, timout time.Duration
	max                     int
	now                     func() time.Time
	seed                    maphash.Seed
	shards                  [resolverShards]shard

	hits, misses, failures atomic.Uint64
}

const resolverShards = 32

type shard struct {
	mu sync.RWMutex
	m  map[uint64]*entry
}

// entry is one token's answer; ready is closed once it is known, so that
// concurrent first requests wait for one whoami.
type entry struct {
	ready chan struct{}
	user  uint64 // Hash of the user ID
	id    string // the user ID
	state uint8
	exp   int64 // unix nanoseconds
}

const (
	statePending uint8 = iota
	stateUser
	stateInvalid
	stateFailed
)

// ResolverOptions configure a Resolver.
type ResolverOptions struct {
	TTL, InvalidTTL, Timeout time.Duration
	MaxEntries               int
	Now                      func() time.Time
}

// NewResolver returns a resolver asking ask.
func NewResolver(ask WhoAmI, o ResolverOptions) *Resolver {
	r := &Resolver{ask: ask, ttl: o.TTL, invalidTTL: o.InvalidTTL, timout: o.Timeout, max: o.MaxEntries, now: o.Now, seed: maphash.MakeSeed()}
	if r.now == nil {
		r.now = time.Now
	}
	per := max(r.max/resolverShards, 1)
	for i := range r.shards {
		r.shards[i].m = make(map[uint64]*entry, min(per, 1024))
	}
	return r
}

// Result is what the resolver knows about a token.
type Result uint8

// Results of User.
const (
	// Resolved: the key is the user's.
	Resolved Result = iota
	// Invalid: the homeserver refused the token; the key is the token's.
	Invalid
	// Unresolved: the homeserver could not answer; the key is the token's.
	Unresolved
)

// User returns the balancing key of the user behind token (the Hash of the
// user ID) and the user ID, asking the homeserver on a cache miss; concurrent
// first requests for one token wait for one answer. When the token is invalid
// or the homeserver cannot answer, the key is the token's own hash (a device,
// never a user) and the user is "".
func (r *Resolver) User(ctx context.Context, token string) (uint64, Result, string) {
	th := maphash.String(r.seed, token)
	s := &r.shards[th%resolverShards]
	for {
		s.mu.RLock()
		e := s.m[th]
		s.mu.RUnlock()
		if e != nil {
			select {
			case <-e.ready:
				if e.state != stateFailed && r.now().UnixNano() < e.exp {
					r.hits.Add(1)
					return r.answer(e, token)
				}
				// Expired: ask again below.
			default:
				select { // being asked: wait for that answer
				case <-e.ready:
					return r.answer(e, token)
				case <-ctx.Done():
					return Hash(token), Unresolved, ""
				}
			}
		}
		s.mu.Lock()
		if s.m[th] != e {
			s.mu.Unlock()
			continue // another request got there first: look again
		}
		e = &entry{ready: make(chan struct{})}
		r.makeRoom(s)
		s.m[th] = e
		s.mu.Unlock()
		r.misses.Add(1)
		r.resolve(ctx, s, th, e, token)
		return r.answer(e, token)
	}
}

// resolve asks the homeserver about token and completes e.
func (r *Resolver) resolve(ctx context.Context, s *shard, th uint64, e *entry, token string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timout)
	user, valid, err := r.ask(actx, token)
	cancel()
	switch {
	case err != nil:
		e.state = stateFailed
		r.failures.Add(1)
	case !valid:
		e.state, e.exp = stateInvalid, r.now().Add(r.invalidTTL).UnixNano()
	default:
		e.state, e.user, e.id, e.exp = stateUser, Hash(user), user, r.now().Add(r.ttl).UnixNano()
	}
	close(e.ready)
	if e.state == stateFailed {
		s.mu.Lock()
		if s.m[th] == e {
			delete(s.m, th)
		}
		s.mu.Unlock()
	}
}

func (r *Resolver) answer(e *entry, token string) (uint64, Result, string) {
	switch e.state {
	case stateUser:
		return e.user, Resolved, e.id
	case stateInvalid:
		return Hash(token), Invalid, ""
	}
	return Hash(token), Unresolved, ""
}

// makeRoom keeps a shard within its share of MaxEntries: expired entries go
// first, then arbitrary ones (map order) until a tenth is free. s.mu is held.
func (r *Resolver) makeRoom(s *shard) {
	per := max(r.max/resolverShards, 1)
	if len(s.m) < per {
		return
	}
	now := r.now().UnixNano()
	for k, e := range s.m {
		select {
		case <-e.ready:
			if now >= e.exp {
				delete(s.m, k)
			}
		default:
		}
	}
	for k := range s.m {
		if len(s.m) < per-per/10 {
			break
		}
		delete(s.m, k)
	}
}

// Len returns the cached entries.
func (r *Resolver) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Stats returns cache hits, misses and failed asks.
func (r *Resolver) Stats() (hits, misses, failures uint64) {
	return r.hits.Load(), r.misses.Load(), r.failures.Load()
}
