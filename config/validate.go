package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Log levels and formats (log.level, log.format).
const (
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"
	LogFormatJSON = "json"
	LogFormatText = "text"
)

// unixSocketHost is the host of UpstreamURL for a unix: upstream.
const unixSocketHost = "localhost"

// Validate checks c and returns an *Error listing every problem (each with
// its full key, and the file line when c came from Load), or nil. On success
// it fills the parsed forms behind the accessors (UpstreamURL, …); it has no
// other side effect. Load calls it; call it again after changing a Config by
// hand. Not safe for concurrent use with readers of c.
func (c *Config) Validate() error {
	p := &problems{file: c.File, lines: c.lines, sources: c.sources}
	c.validate(p)
	return p.err()
}

// validate checks the core keys, then the sections (tls, rate_limits,
// well_known) through their owners' validators, adding to p. Each rule is
// parsed once, here, into pf; the section validators receive what they need
// of it. The parsed forms are stored in c only when p holds no problem at
// all, so a failed validation leaves c as it was.
func (c *Config) validate(p *problems) {
	var pf parsedForms

	if c.ServerName == "" {
		p.add("server_name", "required (the Matrix server name, as in @user:example.org)")
	} else if strings.ContainsAny(c.ServerName, "/@") {
		p.add("server_name", "must be host[:port] as in user IDs (example.org), not a URL, got %q", c.ServerName)
	} else if err := CheckServerName(c.ServerName); err != nil {
		p.add("server_name", "not a Matrix server name (host[:port]): %v, got %q", err, c.ServerName)
	}
	pf.upstreamURL, pf.upstreamSocket = checkUpstream(p, c.Upstream)
	pf.publicBaseURL = c.checkPublicBaseURL(p)
	pf.pools = c.checkPools(p, pf.upstreamURL, pf.upstreamSocket)
	c.checkListen(p)
	pf.trustedProxies = checkPrefixes(p, "trusted_proxies", c.TrustedProxies)
	pf.adminAllow = checkPrefixes(p, "admin_api.allow_from", c.AdminAPI.AllowFrom)
	for i, pre := range c.Forward.ExtraPrefixes {
		if err := checkPathPrefix(pre); err != nil {
			p.add(indexKey("forward.extra_prefixes", i), "%v, got %q", err, pre)
		} else if strings.HasPrefix("/_synapse/mas/", pre) && strings.HasPrefix(pre, "/_synapse/") || strings.HasPrefix(pre, "/_synapse/mas") {
			p.add(indexKey("forward.extra_prefixes", i), "would expose /_synapse/mas/, the shared-secret API MAS calls on Synapse: it is never public (point MAS at Synapse's internal address), got %q", pre)
		}
	}
	c.checkLimits(p)
	c.checkTimeouts(p)
	switch c.Log.Level {
	case LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError:
	default:
		p.add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case LogFormatJSON, LogFormatText:
	default:
		p.add("log.format", "must be json or text, got %q", c.Log.Format)
	}
	pf.corsOrigins = checkOrigins(p, "cors.allow_origins", c.CORS.AllowOrigins)
	c.checkEdge(p, &pf)
	c.checkWorkers(p, pf.pools)

	c.validateTLS(p, pf.publicBaseURL, &pf.edge)
	c.validateRateLimits(p, &pf)
	c.validateWellKnown(p)
	if len(p.list) == 0 {
		c.setParsed(pf)
	}
}

func indexKey(k string, i int) string { return k + "[" + strconv.Itoa(i) + "]" }

// checkUpstream accepts http(s)://host[:port][/path] without user info,
// query or fragment, or unix:/absolute/path.sock.
func checkUpstream(p *problems, s string) (*url.URL, string) {
	const key = "upstream"
	if s == "" {
		p.add(key, "required: an http(s):// URL or unix:/path/to.sock")
		return nil, ""
	}
	u, err := url.Parse(s)
	if err != nil {
		p.add(key, "must be an http:// or https:// URL or unix:/path/to.sock, got %q", s)
		return nil, ""
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if u.Opaque != "" || u.Host != "" || !strings.HasPrefix(path, "/") {
			p.add(key, "a unix socket must be an absolute path, like unix:/run/synapse.sock, got %q", s)
			return nil, ""
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			p.add(key, "must not hold a query or fragment, got %q", s)
			return nil, ""
		}
		return &url.URL{Scheme: "http", Host: unixSocketHost}, path
	case "http", "https":
	default:
		p.add(key, "must be an http:// or https:// URL or unix:/path/to.sock, got %q", s)
		return nil, ""
	}
	if !checkHTTPURLParts(p, key, s, u) {
		return nil, ""
	}
	return u, ""
}

// checkHTTPURLParts reports at key the first problem of u, an http(s) URL
// parsed from s: no host, user info, a query or fragment, a bad port. It
// returns whether u has none.
func checkHTTPURLParts(p *problems, key, s string, u *url.URL) bool {
	switch {
	case u.Host == "" || u.Hostname() == "":
		p.add(key, "must have a host, got %q", s)
	case u.User != nil:
		p.add(key, "must not hold user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		p.add(key, "must not hold a query or fragment, got %q", s)
	case !validPort(u.Port(), true):
		p.add(key, "port must be a number in 1-65535, got %q", u.Port())
	default:
		return true
	}
	return false
}

// checkPublicBaseURL validates public_baseurl (or its default from
// server_name) and returns it with a path ending in "/".
func (c *Config) checkPublicBaseURL(p *problems) *url.URL {
	const key = "public_baseurl"
	s := c.PublicBaseURL
	if s == "" {
		if c.ServerName == "" || CheckServerName(c.ServerName) != nil {
			return nil // reported under server_name
		}
		s = DefaultPublicBaseURL(c.ServerName)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		p.add(key, "must be an absolute http(s) URL, got %q", s)
		return nil
	}
	if !checkHTTPURLParts(p, key, s, u) {
		return nil
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u
}

// validPort accepts a decimal port in 1-65535, and "" when emptyOK.
func validPort(port string, emptyOK bool) bool {
	if port == "" {
		return emptyOK
	}
	if len(port) > 5 || strings.Trim(port, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(port)
	return n >= 1 && n <= 65535
}

// tlsOn reports whether tls.mode enables the TLS listeners.
func (c *Config) tlsOn() bool { return c.TLS.Mode == TLSModeACME || c.TLS.Mode == TLSModeFiles }

func (c *Config) checkListen(p *problems) {
	type listener struct {
		key, addr string
		active    bool
	}
	ls := []listener{
		{"listen.http", c.Listen.HTTP, true},
		{"listen.https", c.Listen.HTTPS, c.tlsOn()},
		{"listen.federation", c.Listen.Federation, true},
		{"listen.ops", c.Listen.Ops, true},
	}
	type bound struct{ key, host, port string }
	var active []bound
	for _, l := range ls {
		if l.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			p.add(l.key, "must be host:port or :port (e.g. \":8080\", \"127.0.0.1:9100\", \"[::1]:8080\"), got %q", l.addr)
			continue
		}
		if !(port == "0" || validPort(port, false)) {
			p.add(l.key, "port must be a number in 0-65535, got %q", port)
			continue
		}
		if host != "" {
			if a, err := netip.ParseAddr(host); err == nil {
				host = a.Unmap().WithZone("").String()
			} else if CheckServerName(host) != nil || strings.Contains(host, ":") {
				p.add(l.key, "host must be an IP address or a host name, got %q", host)
				continue
			}
		}
		if !l.active || port == "0" {
			continue
		}
		for _, b := range active {
			if b.port == port && (b.host == host || isWildcard(b.host) || isWildcard(host)) {
				p.add(l.key, "address %q is already used by %s", l.addr, b.key)
			}
		}
		active = append(active, bound{l.key, host, port})
	}
	if c.Listen.HTTP == "" && !c.tlsOn() {
		p.add("listen.http", "required while tls.mode is off: nothing else would serve clients")
	}
	if c.Listen.Federation != "" && !c.tlsOn() {
		p.add("listen.federation", "is a TLS listener: needs tls.mode acme or files (or leave it empty)")
	}
}

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

// checkPathPrefix accepts an absolute path prefix without query, fragment,
// percent-escapes, control characters, dot segments or empty segments.
func checkPathPrefix(s string) error {
	if !strings.HasPrefix(s, "/") {
		return fmt.Errorf("must start with \"/\"")
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b <= ' ' || b == 0x7f:
			return fmt.Errorf("must not hold spaces or control characters")
		case b == '?' || b == '#' || b == '%' || b == '\\':
			return fmt.Errorf("must be a plain path (no ?, #, %% or \\)")
		}
	}
	if strings.Contains(s, "//") {
		return fmt.Errorf("must not hold empty segments (//)")
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("must not hold dot segments")
		}
	}
	return nil
}

func (c *Config) checkLimits(p *problems) {
	l := c.Limits
	for _, s := range []struct {
		key string
		v   Size
	}{
		{"limits.max_header_bytes", l.MaxHeaderBytes},
		{"limits.max_body_size", l.MaxBodySize},
		{"limits.max_json_body_size", l.MaxJSONBodySize},
	} {
		if s.v <= 0 {
			p.add(s.key, "must be > 0, got %s", s.v)
		}
	}
	if l.MaxHeaderBytes > 0 && int64(l.MaxHeaderBytes) > 1<<31-1 {
		p.add("limits.max_header_bytes", "must be < 2G, got %s", l.MaxHeaderBytes)
	}
	if l.MaxJSONBodySize > 0 && l.MaxBodySize > 0 && l.MaxJSONBodySize > l.MaxBodySize {
		p.add("limits.max_json_body_size", "must be <= limits.max_body_size (%s), got %s", l.MaxBodySize, l.MaxJSONBodySize)
	}
}

func (c *Config) checkTimeouts(p *problems) {
	t := c.Timeouts
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"timeouts.read_header", t.ReadHeader},
		{"timeouts.idle", t.Idle},
		{"timeouts.upstream_response_header", t.UpstreamResponseHeader},
		{"timeouts.read_body_idle", t.ReadBodyIdle},
		{"timeouts.write_idle", t.WriteIdle},
		{"timeouts.shutdown", t.Shutdown},
		{"timeouts.upstream_idle", t.UpstreamIdle},
		{"timeouts.websocket_idle", t.WebSocketIdle},
	} {
		if d.v < 0 {
			p.add(d.key, "must be >= 0 (0 = none), got %s", d.v.D())
		}
	}
}
