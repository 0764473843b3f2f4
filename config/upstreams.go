package config

import (
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// HomeserverPool is the pool Matrix traffic goes to. The top-level upstream
// key is the short form of a one-member pool of this name.
const HomeserverPool = "homeserver"

// Balancing policies (upstreams.<name>.balance).
const (
	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
)

// Pool defaults.
const (
	DefaultHealthInterval  = Duration(5 * time.Second)
	DefaultHealthTimeout   = Duration(2 * time.Second)
	DefaultQueueTimeout    = Duration(2 * time.Second)
	DefaultPassiveMaxFails = 1
	DefaultFailTimeout     = Duration(10 * time.Second)
)

// Upstream is one named pool of upstream members (upstreams.<name>).
type Upstream struct {
	// Members are the servers of the pool: http://host:port, https://host:port or
	// unix:/path/to.sock, without path. Required, at least one.
	Members []string `yaml:"members"`
	// Balance is round_robin (default) or least_conn.
	Balance string `yaml:"balance"`
	// Health enables active health checks (a GET of path every interval).
	// Default: none; members are then judged by their answers only (passive).
	Health UpstreamHealth `yaml:"health"`
	// MaxConnections caps the requests in flight to the pool (0 = no cap,
	// default). Beyond it requests wait in a queue; a full queue or a wait
	// over queue_timeout is answered 429 M_LIMIT_EXCEEDED with Retry-After.
	MaxConnections int `yaml:"max_connections"`
	// MaxQueue caps the requests waiting for a connection. Default
	// max_connections.
	MaxQueue int `yaml:"max_queue"`
	// QueueTimeout is how long a request may wait in the queue. Default 2s.
	QueueTimeout Duration `yaml:"queue_timeout"`
	// Passive ejects a member after failures seen on real requests.
	Passive UpstreamPassive `yaml:"passive"`
	// IdleTimeout is how long an idle connection to a member is kept. Default
	// timeouts.upstream_idle.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// TLS configures https:// members.
	TLS UpstreamTLS `yaml:"tls"`
}

// UpstreamHealth configures active health checks.
type UpstreamHealth struct {
	// Path is requested with GET on each member; a 2xx or 3xx answer is
	// healthy. Empty: no active checks.
	Path string `yaml:"path"`
	// Interval between checks. Default 5s.
	Interval Duration `yaml:"interval"`
	// Timeout of one check. Default 2s (and at most interval).
	Timeout Duration `yaml:"timeout"`
}

// UpstreamPassive configures passive ejection, as nginx's max_fails and
// fail_timeout: a member that fails max_fails requests in a row (connection
// refused or reset, timeout, a broken answer) is taken out of the pool for
// fail_timeout, or until an active check finds it healthy. A pool of one
// member never ejects it (nothing to fall back to).
type UpstreamPassive struct {
	// MaxFails in a row eject a member. Default 1; 0 disables ejection.
	MaxFails *int `yaml:"max_fails"`
	// FailTimeout is how long an ejected member stays out. Default 10s.
	FailTimeout Duration `yaml:"fail_timeout"`
}

// UpstreamTLS configures the TLS client of https:// members.
type UpstreamTLS struct {
	// CAFile is a PEM bundle of the CAs trusted for members' certificates.
	// Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name checked in members' certificates. Default: the
	// member's host.
	ServerName string `yaml:"server_name"`
}

// Endpoint is one pool member, parsed.
type Endpoint struct {
	// URL is the member as configured (for logs and metric labels).
	URL string
	// Network is "tcp" or "unix"; Addr is host:port (port filled in) or the
	// socket path.
	Network, Addr string
	// TLS is set for https:// members.
	TLS bool
	// ServerName is the name to verify in the member's certificate.
	ServerName string
	// Host is the member's host:port as written, the Host sent when a client
	// sent none ("localhost" for a unix socket).
	Host string
}

// PoolSpec is a pool as Validate parsed it: consumers build from this and
// never parse the strings again.
type PoolSpec struct {
	Name         string
	Members      []Endpoint
	Balance      string
	HealthPath   string
	Interval     time.Duration
	Timeout      time.Duration
	MaxConns     int
	MaxQueue     int
	QueueTimeout time.Duration
	MaxFails     int
	FailTimeout  time.Duration
	IdleTimeout  time.Duration
	// RootCAs are the roots of ca_file; nil: the system's.
	RootCAs *x509.CertPool
	// Source is the pool's configuration, to tell whether a reload changed it.
	Source Upstream
}

// Pools returns every pool, parsed, sorted by name; the homeserver pool is
// always there. Nil before a successful Validate. Callers must not modify it.
func (c *Config) Pools() []*PoolSpec { return c.pools }

// Pool returns the pool named name, or nil.
func (c *Config) Pool(name string) *PoolSpec {
	for _, p := range c.pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// validPoolName: lower-case letters, digits, '-' and '_', 1-32 characters
// (pool names are metric label values).
func validPoolName(n string) bool {
	if len(n) == 0 || len(n) > 32 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkPools validates upstream and upstreams and returns the parsed pools.
func (c *Config) checkPools(p *problems, upstreamURL *url.URL, upstreamSocket string) []*PoolSpec {
	pools := map[string]Upstream{}
	for name, u := range c.Upstreams {
		pools[name] = u
	}
	_, inFile := p.lines["upstream"]
	_, bySource := p.sources["upstream"]
	if hs, ok := c.Upstreams[HomeserverPool]; ok {
		if inFile || bySource {
			p.add("upstream", "both upstream and upstreams.%s are set: upstream is the short form of upstreams.%s, keep one", HomeserverPool, HomeserverPool)
		}
		pools[HomeserverPool] = hs
	} else if upstreamURL != nil {
		member := c.Upstream
		pools[HomeserverPool] = Upstream{Members: []string{member}}
	} else {
		return nil // upstream itself is wrong: reported there
	}
	var out []*PoolSpec
	ok := true
	names := make([]string, 0, len(pools))
	for name := range pools {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := "upstreams." + name
		if _, fromShort := c.Upstreams[name]; !fromShort {
			key = "upstream"
		}
		spec := c.checkPool(p, key, name, pools[name])
		if spec == nil {
			ok = false
			continue
		}
		out = append(out, spec)
	}
	if !ok {
		return nil
	}
	return out
}

func (c *Config) checkPool(p *problems, key, name string, u Upstream) *PoolSpec {
	before := len(p.list)
	if !validPoolName(name) {
		p.add(key, "pool names are 1-32 characters of a-z, 0-9, '-' and '_', got %q", name)
	}
	spec := &PoolSpec{Name: name, Balance: u.Balance, Source: u}
	mkey := key + ".members"
	if key == "upstream" {
		mkey = "upstream"
	}
	if len(u.Members) == 0 {
		p.add(mkey, "at least one member is required (http://host:port, https://host:port or unix:/path.sock)")
	}
	seen := map[string]bool{}
	for i, m := range u.Members {
		k := mkey
		if key != "upstream" {
			k = indexKey(mkey, i)
		}
		ep, err := parseEndpoint(m)
		if err != "" {
			p.add(k, "%s, got %q", err, m)
			continue
		}
		if seen[ep.Network+" "+ep.Addr] {
			p.add(k, "duplicate member %q", m)
			continue
		}
		seen[ep.Network+" "+ep.Addr] = true
		if u.TLS.ServerName != "" {
			ep.ServerName = u.TLS.ServerName
		}
		spec.Members = append(spec.Members, ep)
	}
	switch u.Balance {
	case "":
		spec.Balance = BalanceRoundRobin
	case BalanceRoundRobin, BalanceLeastConn:
	default:
		p.add(key+".balance", "must be %s or %s, got %q", BalanceRoundRobin, BalanceLeastConn, u.Balance)
	}
	h := u.Health
	spec.HealthPath = h.Path
	spec.Interval, spec.Timeout = DefaultHealthInterval.D(), DefaultHealthTimeout.D()
	if h.Interval != 0 {
		spec.Interval = h.Interval.D()
	}
	if h.Timeout != 0 {
		spec.Timeout = h.Timeout.D()
	}
	if h.Path != "" {
		if !strings.HasPrefix(h.Path, "/") || !visibleASCII(h.Path) {
			p.add(key+".health.path", "must be a path starting with / (visible ASCII), got %q", h.Path)
		}
		if spec.Interval <= 0 {
			p.add(key+".health.interval", "must be > 0, got %s", h.Interval.D())
		}
		if spec.Timeout <= 0 {
			p.add(key+".health.timeout", "must be > 0, got %s", h.Timeout.D())
		}
		spec.Timeout = min(spec.Timeout, spec.Interval)
	} else if h.Interval != 0 || h.Timeout != 0 {
		p.add(key+".health", "interval and timeout need a path to check")
	}
	if u.MaxConnections < 0 {
		p.add(key+".max_connections", "must be >= 0 (0 = no cap), got %d", u.MaxConnections)
	}
	spec.MaxConns = u.MaxConnections
	spec.MaxQueue = u.MaxQueue
	if u.MaxQueue < 0 {
		p.add(key+".max_queue", "must be >= 0, got %d", u.MaxQueue)
	} else if u.MaxQueue == 0 {
		spec.MaxQueue = u.MaxConnections
	}
	spec.QueueTimeout = DefaultQueueTimeout.D()
	if u.QueueTimeout < 0 {
		p.add(key+".queue_timeout", "must be >= 0, got %s", u.QueueTimeout.D())
	} else if u.QueueTimeout != 0 {
		spec.QueueTimeout = u.QueueTimeout.D()
	}
	if (u.MaxQueue != 0 || u.QueueTimeout != 0) && u.MaxConnections == 0 {
		p.add(key+".max_connections", "max_queue and queue_timeout need max_connections > 0")
	}
	spec.MaxFails = DefaultPassiveMaxFails
	if u.Passive.MaxFails != nil {
		spec.MaxFails = *u.Passive.MaxFails
		if spec.MaxFails < 0 {
			p.add(key+".passive.max_fails", "must be >= 0 (0 = never eject), got %d", spec.MaxFails)
		}
	}
	spec.FailTimeout = DefaultFailTimeout.D()
	if u.Passive.FailTimeout < 0 {
		p.add(key+".passive.fail_timeout", "must be > 0, got %s", u.Passive.FailTimeout.D())
	} else if u.Passive.FailTimeout != 0 {
		spec.FailTimeout = u.Passive.FailTimeout.D()
	}
	spec.IdleTimeout = c.Timeouts.UpstreamIdle.D()
	if u.IdleTimeout < 0 {
		p.add(key+".idle_timeout", "must be >= 0, got %s", u.IdleTimeout.D())
	} else if u.IdleTimeout != 0 {
		spec.IdleTimeout = u.IdleTimeout.D()
	}
	if u.TLS.CAFile != "" {
		pem, err := os.ReadFile(u.TLS.CAFile)
		switch {
		case err != nil:
			p.add(key+".tls.ca_file", "cannot read: %v", err)
		default:
			spec.RootCAs = x509.NewCertPool()
			if !spec.RootCAs.AppendCertsFromPEM(pem) {
				p.add(key+".tls.ca_file", "holds no PEM certificate: %s", u.TLS.CAFile)
			}
		}
	}
	if len(p.list) != before {
		return nil
	}
	return spec
}

// parseEndpoint parses one member: http://host[:port], https://host[:port]
// (no path, query, fragment or user info) or unix:/absolute/path.sock. It
// returns a message on error.
func parseEndpoint(s string) (Endpoint, string) {
	ep := Endpoint{URL: s}
	u, err := url.Parse(s)
	if err != nil {
		return ep, "must be http://host:port, https://host:port or unix:/path.sock"
	}
	switch u.Scheme {
	case "unix":
		if u.Opaque != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" {
			return ep, "a unix socket must be an absolute path, like unix:/run/synapse.sock"
		}
		ep.Network, ep.Addr, ep.Host = "unix", u.Path, unixSocketHost
		return ep, ""
	case "http", "https":
	default:
		return ep, "must be http://host:port, https://host:port or unix:/path.sock"
	}
	switch {
	case u.Hostname() == "":
		return ep, "must have a host"
	case u.User != nil:
		return ep, "must not hold user info"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return ep, "must not hold a query or fragment"
	case u.Path != "" && u.Path != "/":
		return ep, "must not hold a path (prefix stripping is a route's job)"
	case !validPort(u.Port(), true):
		return ep, "port must be a number in 1-65535"
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	ep.Network, ep.Addr, ep.Host = "tcp", net.JoinHostPort(u.Hostname(), port), u.Host
	ep.TLS, ep.ServerName = u.Scheme == "https", u.Hostname()
	return ep, ""
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
