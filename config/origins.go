package config

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Origins is cors.allow_origins parsed (Config.CORSOrigins): every origin
// (["*"]), or a list of origins each written as a browser sends it in the
// Origin header. The zero value allows no origin; it is what a Config holds
// before a successful Validate, and cors.New refuses it.
type Origins struct {
	any  bool
	list []string
}

// Any reports whether every origin is allowed (["*"]).
func (o Origins) Any() bool { return o.any }

// List returns the allowed origins in configuration order, normalised by
// parseOrigin ("https://app.example.org", "http://localhost:3000"), without
// duplicates. Empty when Any. Callers must not modify it.
func (o Origins) List() []string { return o.list }

// IsZero reports whether o is the zero value: nothing parsed.
func (o Origins) IsZero() bool { return !o.any && len(o.list) == 0 }

// parseOrigin parses one entry of cors.allow_origins and returns it as a
// browser serialises an origin in the Origin header (RFC 6454): lowercase
// scheme (http or https) and host, the port only when it is not the
// scheme's default, no path. A browser compares the configured value with
// what it sent byte for byte, so a spelling it never sends would silently
// never match; the spelling an admin copies from an address bar,
// "HTTPS://App.Example.org:443/", means https://app.example.org and is
// accepted as that rather than refused. A path other than "/", a query, a
// fragment or user info is refused: CORS grants a whole origin, and
// dropping "/app" silently would allow more than the entry seems to say.
// "null" (what sandboxed documents send), wildcards and hosts that are not
// ASCII (browsers send the xn-- form) are refused too. The error says what
// is wrong; the caller adds the key and the value.
func parseOrigin(s string) (string, error) {
	if s == "null" {
		return "", errors.New(`"null" is not allowed (sandboxed documents and file: pages send it)`)
	}
	if strings.Contains(s, "*") {
		return "", errors.New(`wildcards are not supported in an origin: use ["*"] or exact origins`)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.Hostname() == "":
		return "", errors.New("must be an origin like https://app.example.org")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return "", errors.New(`must be scheme://host[:port] only (no path other than "/", no query, fragment or user info)`)
	case !validPort(u.Port(), true):
		return "", errors.New("port must be a number in 1-65535")
	}
	host := strings.ToLower(u.Hostname())
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "", errors.New("host must be ASCII: write an internationalised name in its xn-- form, as browsers send it")
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port != "" {
		n, _ := strconv.Atoi(port)
		port = strconv.Itoa(n)
		if (u.Scheme == "https" && n == 443) || (u.Scheme == "http" && n == 80) {
			port = ""
		}
	}
	if port == "" {
		return u.Scheme + "://" + host, nil
	}
	return u.Scheme + "://" + host + ":" + port, nil
}

// checkOrigins parses cors.allow_origins: ["*"], or a non-empty list of
// origins (parseOrigin), none of them the same origin as another.
func checkOrigins(p *problems, key string, list []string) Origins {
	if len(list) == 0 {
		p.add(key, `must not be empty: use ["*"] or list the allowed origins`)
		return Origins{}
	}
	if len(list) == 1 && list[0] == "*" {
		return Origins{any: true}
	}
	out := make([]string, 0, len(list))
	first := map[string]int{} // normalised origin → index of its first entry
	ok := true
	for i, s := range list {
		k := indexKey(key, i)
		if s == "*" {
			p.add(k, `"*" must be alone: use ["*"] or list exact origins`)
			ok = false
			continue
		}
		o, err := parseOrigin(s)
		if err != nil {
			p.add(k, "%v, got %q", err, s)
			ok = false
			continue
		}
		if j, dup := first[o]; dup {
			p.add(k, "duplicate of %s (both are %s), got %q", indexKey(key, j), o, s)
			ok = false
			continue
		}
		first[o] = i
		out = append(out, o)
	}
	if !ok {
		return Origins{}
	}
	return Origins{list: out}
}
