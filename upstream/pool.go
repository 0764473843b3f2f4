package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
)

// ErrNoMember is returned by Acquire when no member of the pool is healthy:
// the request is answered 502 at once.
var ErrNoMember = errors.New("upstream: no healthy member")

// QueueError is returned by Acquire when the pool is at max_connections and
// the request cannot wait (the queue is full) or waited queue_timeout: the
// request is answered 429 so that clients back off.
type QueueError struct {
	// Full is true when the queue was full, false when the wait timed out.
	Full bool
	// RetryAfter is a fair wait before trying again.
	RetryAfter time.Duration
}

func (e *QueueError) Error() string {
	if e.Full {
		return "upstream: pool queue full"
	}
	return "upstream: timed out in the pool queue"
}

// Pool is one named pool. Safe for concurrent use.
type Pool struct {
	name    string
	spec    *config.PoolSpec
	members []*Member
	log     *slog.Logger
	now     func() time.Time

	rr        atomic.Uint64
	slots     chan struct{} // nil: no cap
	waiting   atomic.Int64
	ejectable bool // more than one member and max_fails > 0

	queueFull, queueTimeout atomic.Uint64

	stop     context.CancelFunc // the health checker's
	checking sync.WaitGroup
	closed   atomic.Bool
}

// Member is one server of a pool.
type Member struct {
	pool  *Pool
	ep    config.Endpoint
	conns *h1.Pool

	id           uint64       // stable hash of the member's URL, for rendezvous hashing
	up           atomic.Bool  // the last active check (true without checks)
	ejectedUntil atomic.Int64 // unix nanoseconds; 0: not ejected
	fails        atomic.Int32 // failures in a row

	requests, ejections atomic.Uint64
	failures            [numKinds]atomic.Uint64
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Members returns the pool's members (for readiness and metrics).
func (p *Pool) Members() []*Member { return p.members }

// Endpoint returns the member as configured.
func (m *Member) Endpoint() config.Endpoint { return m.ep }

// Conns returns the member's connection pool.
func (m *Member) Conns() *h1.Pool { return m.conns }

// Available reports whether the member takes requests: its last active
// check passed (or there are none) and it is not ejected.
func (m *Member) Available() bool {
	if !m.up.Load() {
		return false
	}
	until := m.ejectedUntil.Load()
	return until == 0 || m.pool.now().UnixNano() >= until
}

func newPool(spec *config.PoolSpec, o Options) *Pool {
	p := &Pool{name: spec.Name, spec: spec, log: o.Logger.With("pool", spec.Name), now: o.Now}
	p.ejectable = len(spec.Members) > 1 && spec.MaxFails > 0
	if spec.MaxConns > 0 {
		p.slots = make(chan struct{}, spec.MaxConns)
	}
	for _, ep := range spec.Members {
		po := h1.PoolOptions{Network: ep.Network, Addr: ep.Addr, IdleTimeout: spec.IdleTimeout, Now: o.Now, Dial: o.Dial}
		if ep.TLS {
			po.TLS = &tls.Config{ServerName: ep.ServerName, RootCAs: spec.RootCAs, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
		}
		m := &Member{pool: p, ep: ep, conns: h1.NewPool(po), id: memberID(ep.URL)}
		m.up.Store(true)
		p.members = append(p.members, m)
	}
	if spec.HealthPath != "" {
		ctx, cancel := context.WithCancel(context.Background())
		p.stop = cancel
		p.checking.Add(1)
		go p.checkHealth(ctx)
	}
	return p
}

// Acquire waits for a connection slot (when max_connections caps the pool)
// and picks an available member by the pool's balancing. The caller must
// call Release with the same member once the exchange is over.
func (p *Pool) Acquire(ctx context.Context) (*Member, error) {
	return p.acquire(ctx, false, 0)
}

// AcquireKey is Acquire with a sticky choice: among the available members,
// the one key ranks highest by rendezvous hashing (highest random weight),
// so that a user or a room stays on one member, and adding or losing a
// member moves only that member's share of keys.
func (p *Pool) AcquireKey(ctx context.Context, key uint64) (*Member, error) {
	return p.acquire(ctx, true, key)
}

func (p *Pool) acquire(ctx context.Context, keyed bool, key uint64) (*Member, error) {
	if p.slots != nil {
		if err := p.waitSlot(ctx); err != nil {
			return nil, err
		}
	}
	var m *Member
	if keyed {
		m = p.pickKey(key)
	} else {
		m = p.pick()
	}
	if m == nil {
		p.freeSlot()
		return nil, ErrNoMember
	}
	m.requests.Add(1)
	return m, nil
}

// pickKey is the rendezvous choice of AcquireKey, or nil when no member is
// available.
func (p *Pool) pickKey(key uint64) *Member {
	var best *Member
	var bestScore uint64
	for _, m := range p.members {
		if !m.Available() {
			continue
		}
		if s := mix64(key ^ m.id); best == nil || s > bestScore {
			best, bestScore = m, s
		}
	}
	return best
}

// Available reports whether some member of the pool takes requests.
func (p *Pool) Available() bool {
	for _, m := range p.members {
		if m.Available() {
			return true
		}
	}
	return false
}

// memberID is the FNV-1a hash of a member's URL: stable across processes
// and replicas, so every mxedge ranks members alike.
func memberID(url string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(url))
	return h.Sum64()
}

// mix64 is SplitMix64's finaliser: a well-spread score from key ^ member.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// waitSlot takes a slot at once, or waits in the queue.
func (p *Pool) waitSlot(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if p.waiting.Add(1) > int64(p.spec.MaxQueue) {
		p.waiting.Add(-1)
		p.queueFull.Add(1)
		return &QueueError{Full: true, RetryAfter: p.spec.QueueTimeout}
	}
	defer p.waiting.Add(-1)
	t := time.NewTimer(p.spec.QueueTimeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-t.C:
		p.queueTimeout.Add(1)
		return &QueueError{RetryAfter: p.spec.QueueTimeout}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pool) freeSlot() {
	if p.slots != nil {
		<-p.slots
	}
}

// pick returns an available member by the pool's balancing, or nil.
func (p *Pool) pick() *Member {
	n := len(p.members)
	if n == 1 {
		if m := p.members[0]; m.Available() {
			return m
		}
		return nil
	}
	start := int(p.rr.Add(1) % uint64(n))
	var best *Member
	var bestBusy int64
	for i := range n {
		m := p.members[(start+i)%n]
		if !m.Available() {
			continue
		}
		if p.spec.Balance != config.BalanceLeastConn {
			return m
		}
		if busy := m.conns.Busy(); best == nil || busy < bestBusy {
			best, bestBusy = m, busy
		}
	}
	return best
}

// Release ends an exchange with m: it frees the slot and feeds passive
// health: err (nil when the upstream answered) is counted against the member
// when it is the upstream's fault (refused, reset, timeout, protocol), and
// max_fails of those in a row eject it for fail_timeout.
func (p *Pool) Release(m *Member, err error) {
	p.freeSlot()
	k := kindOf(err)
	if k == kindNone {
		m.fails.Store(0)
		return
	}
	if k == kindClient {
		return
	}
	m.failures[k].Add(1)
	if !p.ejectable {
		return
	}
	if m.fails.Add(1) >= int32(p.spec.MaxFails) {
		m.fails.Store(0)
		m.ejectedUntil.Store(p.now().Add(p.spec.FailTimeout).UnixNano())
		m.ejections.Add(1)
		p.log.Warn("upstream member ejected", "member", m.ep.URL, "for", p.spec.FailTimeout.String(), "error", err.Error())
	}
}

// close stops the health checks and closes idle connections; busy ones
// close when their exchange ends.
func (p *Pool) close() {
	if !p.closed.CompareAndSwap(false, true) {
		return
	}
	if p.stop != nil {
		p.stop()
		p.checking.Wait()
	}
	for _, m := range p.members {
		m.conns.Close()
	}
}
