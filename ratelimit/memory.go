package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const (
	shardBits  = 6
	numShards  = 1 << shardBits
	maxTables  = 256 // Category is a uint8
	sweepEvery = 10 * time.Second
)

// MemoryOptions configures a Memory store.
type MemoryOptions struct {
	// MaxKeys bounds the tracked buckets of all categories together. Default 1000000.
	MaxKeys int
	// Now is the clock. Default: the monotonic clock (time.Since).
	Now func() time.Time
	// SweepEvery is how often a goroutine forgets full buckets. Default 10s;
	// negative: no goroutine (call Sweep yourself).
	SweepEvery time.Duration
}

// Memory is the in-process Store: one table of sharded maps per category,
// each bucket a single int64 (its GCRA theoretical arrival time, nanoseconds
// on the monotonic clock). A bucket that has refilled is deleted by Sweep; the
// number of tracked buckets never exceeds MaxKeys: while the table is full, a
// new key is decided on its category's shared overflow bucket, and tracked
// (possibly throttled) buckets are never evicted. Safe for concurrent use;
// Close stops the sweeping goroutine.
type Memory struct {
	seed      maphash.Seed
	seed2     maphash.Seed
	kindSalt  [8]uint64
	now       func() time.Time // nil: fastClock
	fastClock bool
	base      time.Time
	max       atomic.Int64
	count     atomic.Int64
	tables    [maxTables]atomic.Pointer[table]

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type table struct {
	shards [numShards]shard
	over   overflow
}

type shard struct {
	mu   sync.Mutex
	m    map[uint64]int64
	peak int
	dead bool // table was reset: callers reload the table pointer
	_    [32]byte
}

type overflow struct {
	mu  sync.Mutex
	tat int64
}

var _ Store = (*Memory)(nil)

// NewMemory returns a Memory store and starts its sweeping goroutine.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1000000
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = sweepEvery
	}
	m := &Memory{seed: maphash.MakeSeed(), now: o.Now, stop: make(chan struct{}), done: make(chan struct{})}
	m.seed2 = maphash.MakeSeed()
	for i := range m.kindSalt {
		m.kindSalt[i] = maphash.Comparable(m.seed2, i)
	}
	m.fastClock = o.Now == nil
	if m.fastClock {
		m.base = time.Now()
	} else {
		m.base = o.Now()
	}
	m.max.Store(int64(o.MaxKeys))
	if o.SweepEvery > 0 {
		go m.sweeper(o.SweepEvery)
	} else {
		close(m.done)
	}
	return m
}

func (m *Memory) sweeper(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Close stops the sweeping goroutine and waits for it. Buckets stay usable.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

// SetMaxKeys changes the bound on tracked keys. Buckets already tracked above
// a lowered bound stay until they are full again.
func (m *Memory) SetMaxKeys(n int) { m.max.Store(int64(n)) }

// Tracked returns the number of tracked buckets.
func (m *Memory) Tracked() int64 { return m.count.Load() }

// nanos returns the store's clock: nanoseconds since it was made. With the
// default clock, time.Since reads only the monotonic clock (half of time.Now).
func (m *Memory) nanos() int64 {
	if m.fastClock {
		return int64(time.Since(m.base))
	}
	return int64(m.now().Sub(m.base))
}

func (m *Memory) table(c Category) *table {
	if t := m.tables[c].Load(); t != nil {
		return t
	}
	m.tables[c].CompareAndSwap(nil, new(table))
	return m.tables[c].Load()
}

// Reset forgets every bucket of category c (its limit changed).
func (m *Memory) Reset(c Category) {
	old := m.tables[c].Swap(new(table))
	if old == nil {
		return
	}
	var n int
	for i := range old.shards {
		sh := &old.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.m = nil
		sh.dead = true
		sh.mu.Unlock()
	}
	m.count.Add(-int64(n))
}

// hash is a keyed 64-bit hash of k: the seeds are random per process, so a
// client cannot choose an address or token that collides with a victim's.
func (m *Memory) hash(k *Key) uint64 {
	h := m.kindSalt[k.Kind&7]
	if k.Addr != ([16]byte{}) {
		h ^= maphash.Bytes(m.seed, k.Addr[:])
	}
	if k.S != "" {
		h ^= maphash.String(m.seed2, k.S)
	}
	return h
}

// Allow implements Store. It never fails and does not allocate.
func (m *Memory) Allow(_ context.Context, reqs []Request, res []Result) error {
	m.allow(reqs, res)
	return nil
}

func (m *Memory) allow(reqs []Request, res []Result) {
	now := m.nanos()
	denied := false
	for i := range reqs {
		ok, retry := m.take(&reqs[i], now)
		res[i] = Result{Allowed: ok, RetryAfter: time.Duration(retry)}
		denied = denied || !ok
	}
	if !denied {
		return
	}
	for i := range reqs {
		if res[i].Allowed && reqs[i].N > 0 {
			m.refund(&reqs[i], now)
		}
	}
}

func (m *Memory) take(r *Request, now int64) (bool, int64) {
	h := m.hash(&r.Key)
	for {
		t := m.table(r.Cat)
		sh := &t.shards[h>>(64-shardBits)]
		sh.mu.Lock()
		if sh.dead {
			sh.mu.Unlock()
			continue
		}
		tat, found := sh.m[h]
		if !found {
			if r.N == 0 {
				// An untracked bucket is full: a check always passes.
				sh.mu.Unlock()
				ok, _, retry := gcra(now, r.Limit, 0, now)
				return ok, retry
			}
			ok, newTat, retry := gcra(now, r.Limit, r.N, now)
			if !ok {
				sh.mu.Unlock()
				return false, retry
			}
			if !m.reserve() {
				sh.mu.Unlock()
				return t.over.take(r, now)
			}
			if sh.m == nil {
				sh.m = make(map[uint64]int64)
			}
			sh.m[h] = newTat
			if len(sh.m) > sh.peak {
				sh.peak = len(sh.m)
			}
			sh.mu.Unlock()
			return true, 0
		}
		ok, newTat, retry := gcra(tat, r.Limit, r.N, now)
		if ok && r.N > 0 {
			sh.m[h] = newTat
		}
		sh.mu.Unlock()
		return ok, retry
	}
}

func (o *overflow) take(r *Request, now int64) (bool, int64) {
	o.mu.Lock()
	ok, newTat, retry := gcra(o.tat, r.Limit, r.N, now)
	if ok && r.N > 0 {
		o.tat = newTat
	}
	o.mu.Unlock()
	return ok, retry
}

// reserve counts one more tracked key unless the bound is reached.
func (m *Memory) reserve() bool {
	for {
		n := m.count.Load()
		if n >= m.max.Load() {
			return false
		}
		if m.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// refund gives back the tokens of an allowed request of a refused decision.
func (m *Memory) refund(r *Request, now int64) {
	h := m.hash(&r.Key)
	t := m.table(r.Cat)
	sh := &t.shards[h>>(64-shardBits)]
	back := r.Limit.interval * int64(r.N)
	sh.mu.Lock()
	if tat, found := sh.m[h]; found && !sh.dead {
		tat -= back
		if tat <= now {
			delete(sh.m, h)
			m.count.Add(-1)
		} else {
			sh.m[h] = tat
		}
		sh.mu.Unlock()
		return
	}
	sh.mu.Unlock()
	t.over.mu.Lock()
	t.over.tat -= back
	t.over.mu.Unlock()
}

// Sweep forgets every bucket that has refilled (it is the same as no bucket)
// and shrinks maps that emptied. The goroutine started by NewMemory calls it.
func (m *Memory) Sweep() {
	now := m.nanos()
	for c := range m.tables {
		t := m.tables[c].Load()
		if t == nil {
			continue
		}
		for i := range t.shards {
			sh := &t.shards[i]
			sh.mu.Lock()
			n := 0
			for k, tat := range sh.m {
				if tat <= now {
					delete(sh.m, k)
					n++
				}
			}
			if n > 0 {
				m.count.Add(-int64(n))
			}
			// Go maps never shrink: rebuild one that fell well below its peak.
			if sh.peak >= 1024 && len(sh.m) < sh.peak/4 {
				nm := make(map[uint64]int64, len(sh.m))
				for k, v := range sh.m {
					nm[k] = v
				}
				sh.m = nm
				sh.peak = len(nm)
			}
			sh.mu.Unlock()
		}
	}
}
