package h1

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Pool defaults.
const (
	// DefaultIdleTimeout is how long an idle connection is kept: shorter than
	// the keep-alive of common upstreams (nginx 75 s, Twisted and Go's
	// net/http servers longer), so that mxedge drops a connection before the
	// upstream does and never races its close. Node.js (5 s) and Apache
	// (5 s) upstreams want a shorter one (PoolOptions.IdleTimeout).
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxIdle caps the idle connections kept per pool.
	DefaultMaxIdle = 1024
	// DefaultDialTimeout bounds a connect plus TLS handshake.
	DefaultDialTimeout = 10 * time.Second
	keepAlivePeriod    = 30 * time.Second
)

// PoolOptions configure a Pool. The zero value of each field means its default.
type PoolOptions struct {
	// Network is "tcp" or "unix"; Addr is host:port or the socket path.
	Network, Addr string
	// TLS, when set, wraps every connection in a TLS client (HTTP/1.1 only).
	TLS *tls.Config
	// IdleTimeout is how long an idle connection is kept. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxIdle caps the idle connections. Default DefaultMaxIdle.
	MaxIdle int
	// DialTimeout bounds a connect plus TLS handshake. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Now is the clock for idle expiry. Default time.Now.
	Now func() time.Time
	// Dial replaces the dialer (tests). Default net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Pool is the connection pool to one upstream address (tcp host:port, unix
// socket, or TLS over tcp). Idle connections are a LIFO stack capped at
// MaxIdle, each checked before reuse; busy ones are not capped (thousands of
// long-polls). Idle expiry needs no goroutine per connection: get drops
// expired ones lazily and one timer, armed only while something is idle,
// sweeps the rest. Safe for concurrent use.
type Pool struct {
	o    PoolOptions
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu       sync.Mutex
	idle     []*conn // oldest first
	timer    *time.Timer
	sweeping bool
	closed   bool

	dials atomic.Int64 // connections opened
	busy  atomic.Int64 // exchanges in progress
}

// NewPool returns a pool for o.
func NewPool(o PoolOptions) *Pool {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = DefaultMaxIdle
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pool{o: o, dial: o.Dial}
	if p.dial == nil {
		d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: keepAlivePeriod}
		p.dial = d.DialContext
	}
	return p
}

// Dials returns the number of connections opened so far.
func (p *Pool) Dials() int64 { return p.dials.Load() }

// Busy returns the number of exchanges in progress (a least-connections
// balancer's measure).
func (p *Pool) Busy() int64 { return p.busy.Load() }

// Idle returns the number of idle connections.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// get returns an idle connection that passed the reuse check (reused true),
// or a new one.
func (p *Pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if p.o.Now().Sub(c.idleAt) >= p.o.IdleTimeout {
			// Everything below it is older: expired too.
			for i, o := range p.idle {
				o.close()
				p.idle[i] = nil
			}
			p.idle = p.idle[:0]
			p.mu.Unlock()
			c.close()
			break
		}
		p.mu.Unlock()
		if !c.reusable() {
			c.close()
			continue
		}
		return c, true, nil
	}
	c, err = p.connect(ctx)
	return c, false, err
}

// connect opens a new connection (and completes its TLS handshake).
func (p *Pool) connect(ctx context.Context) (*conn, error) {
	nc, err := p.dial(ctx, p.o.Network, p.o.Addr)
	if err != nil {
		return nil, &ConnectError{err}
	}
	p.dials.Add(1)
	c := newConn(nc)
	if p.o.TLS != nil {
		c.rec = &recordConn{Conn: nc}
		tc := tls.Client(c.rec, p.o.TLS)
		hctx, cancel := context.WithTimeout(ctx, p.o.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, &ConnectError{err}
		}
		c.nc, c.tls = tc, tc
	}
	return c, nil
}

// put returns a connection whose last exchange ended cleanly.
func (p *Pool) put(c *conn) {
	c.releaseBuf()
	c.idleAt = p.o.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.o.MaxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	if !p.sweeping {
		p.sweeping = true
		if p.timer == nil {
			p.timer = time.AfterFunc(p.o.IdleTimeout, p.sweep)
		} else {
			p.timer.Reset(p.o.IdleTimeout)
		}
	}
	p.mu.Unlock()
}

// sweep closes the connections idle longer than IdleTimeout and re-arms the
// timer for the oldest remaining one.
func (p *Pool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	now := p.o.Now()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleAt) >= p.o.IdleTimeout {
		p.idle[i].close()
		i++
	}
	if i > 0 {
		n := copy(p.idle, p.idle[i:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
	}
	if len(p.idle) == 0 {
		p.sweeping = false
		return
	}
	p.timer.Reset(max(p.idle[0].idleAt.Add(p.o.IdleTimeout).Sub(now), time.Second))
}

// Close closes the idle connections and makes the busy ones close when their
// exchange ends.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.close()
	}
	p.idle = nil
	if p.timer != nil {
		p.timer.Stop()
	}
}
