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
// well_known) through their owners' validators, adding to p. The parsed
// forms are visible to the section validators and kept only when p holds
// no problem at all.
func (c *Config) validate(p *problems) {
	before := len(p.list)
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
	c.checkListen(p)
	pf.trustedProxies = checkPrefixes(p, "trusted_proxies", c.TrustedProxies)
	pf.adminAllow = checkPrefixes(p, "admin_api.allow_from", c.AdminAPI.AllowFrom)
	for i, pre := range c.Forward.ExtraPrefixes {
		if err := checkPathPrefix(pre); err != nil {
			p.add(indexKey("forward.extra_prefixes", i), "%v, got %q", err, pre)
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
	checkOrigins(p, "cors.allow_origins", c.CORS.AllowOrigins)

	old := c.parsed()
	coreOK := len(p.list) == before
	if coreOK {
		c.setParsed(pf)
	}
	c.validateTLS(p)
	c.validateRateLimits(p)
	c.validateWellKnown(p)
	if len(p.list) != 0 {
		c.setParsed(old)
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

// checkPrefixes parses CIDRs; a bare IP is a single-address prefix. Host bits
// are masked ("10.1.2.3/8" is 10.0.0.0/8).
func checkPrefixes(p *problems, key string, list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	ok := true
	for i, s := range list {
		k := indexKey(key, i)
		s = strings.TrimSpace(s)
		var pre netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if pre, err = netip.ParsePrefix(s); err != nil {
				p.add(k, "not a CIDR (like 10.0.0.0/8 or 2001:db8::/32), got %q", s)
				ok = false
				continue
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				p.add(k, "not an IP address or CIDR (like 10.0.0.0/8), got %q", s)
				ok = false
				continue
			}
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		if pre.Addr().Is4In6() {
			p.add(k, "IPv4-mapped IPv6 never matches (clients are unmapped): write the IPv4 form, got %q", s)
			ok = false
			continue
		}
		out = append(out, pre.Masked())
	}
	if !ok {
		return nil
	}
	return out
}

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
	} {
		if d.v < 0 {
			p.add(d.key, "must be >= 0 (0 = none), got %s", d.v.D())
		}
	}
}

// checkOrigins accepts ["*"] or a list of exact origins
// (scheme://host[:port], lowercase, no path).
func checkOrigins(p *problems, key string, list []string) {
	if len(list) == 0 {
		p.add(key, `must not be empty: use ["*"] or list the allowed origins`)
		return
	}
	if len(list) == 1 && list[0] == "*" {
		return
	}
	seen := map[string]bool{}
	for i, o := range list {
		k := indexKey(key, i)
		if o == "*" {
			p.add(k, `"*" must be alone: use ["*"] or list exact origins`)
			continue
		}
		if err := checkOrigin(o); err != nil {
			p.add(k, "%v, got %q", err, o)
			continue
		}
		if seen[o] {
			p.add(k, "duplicate origin %q", o)
		}
		seen[o] = true
	}
}

func checkOrigin(o string) error {
	if strings.Contains(o, "*") {
		return fmt.Errorf("wildcards are not supported in an origin: use [\"*\"] or exact origins")
	}
	u, err := url.Parse(o)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("must be an origin like https://app.example.org")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Path != "" || u.Opaque != "":
		return fmt.Errorf("must be scheme://host[:port] only (no path, not even a trailing /)")
	case strings.ToLower(o) != o:
		return fmt.Errorf("must be lowercase (browsers send origins in lowercase)")
	case !validPort(u.Port(), true):
		return fmt.Errorf("port must be a number in 1-65535")
	}
	return nil
}
