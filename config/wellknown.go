package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Well-known roles for /.well-known/matrix/support contacts (Matrix spec v1.10, MSC1929).
const (
	SupportRoleAdmin    = "m.role.admin"
	SupportRoleSecurity = "m.role.security"
)

// defaultsWellKnown fills the well_known defaults. There are none: every
// document is absent (404) unless configured, and client extras default to none.
func (c *Config) defaultsWellKnown() {}

// ValidateWellKnown checks the well_known section alone and returns an *Error
// naming every problem, or nil. It reads c and changes nothing; wellknown.New
// calls it so that a section changed by hand after Validate gets the same
// checks as one returned by Load before it is served.
func (c *Config) ValidateWellKnown() error {
	p := &problems{file: c.File, lines: c.lines, sources: c.sources}
	c.validateWellKnown(p)
	return p.err()
}

// validateWellKnown checks the well_known section: host[:port] for server,
// JSON-encodable extras for client (m.homeserver comes from public_baseurl,
// m.identity_server needs an absolute base_url) and the MSC1929 rules for support.
func (c *Config) validateWellKnown(p *problems) {
	const base = "well_known"
	if s := c.WellKnown.Server; s != "" {
		if err := CheckServerName(s); err != nil {
			p.add(base+".server", "%v, got %q", err, s)
		}
	}
	validateClientExtras(p, base+".client", c.WellKnown.Client)
	if c.WellKnown.Support != nil {
		validateSupport(p, base+".support", c.WellKnown.Support)
	}
}

func validateClientExtras(p *problems, key string, extras map[string]any) {
	for _, k := range slices.Sorted(maps.Keys(extras)) {
		v := extras[k]
		kk := key + "." + k
		switch k {
		case "":
			p.add(key, "keys must not be empty")
			continue
		case "m.homeserver":
			p.add(kk, "must not be set: it is built from public_baseurl")
			continue
		case "m.identity_server":
			m, ok := v.(map[string]any)
			if !ok {
				p.add(kk, `must be a mapping {"base_url": "https://..."}, got %s`, jsonKind(v))
				continue
			}
			u, ok := m["base_url"].(string)
			if !ok {
				p.add(kk+".base_url", "must be a string URL, got %s", jsonKind(m["base_url"]))
			} else if err := checkHTTPURL(u); err != nil {
				p.add(kk+".base_url", "%v, got %q", err, u)
			}
		}
		checkJSON(p, kk, v)
	}
}

func validateSupport(p *problems, key string, doc map[string]any) {
	rawContacts, hasContacts := doc["contacts"]
	rawPage, hasPage := doc["support_page"]
	if !hasContacts && !hasPage {
		p.add(key, "must have contacts and/or support_page (MSC1929)")
	}
	if hasPage {
		if s, ok := rawPage.(string); !ok {
			p.add(key+".support_page", "must be a string URL, got %s", jsonKind(rawPage))
		} else if err := checkHTTPURL(s); err != nil {
			p.add(key+".support_page", "%v, got %q", err, s)
		}
	}
	if hasContacts {
		contacts, ok := rawContacts.([]any)
		switch {
		case !ok:
			p.add(key+".contacts", "must be a list, got %s", jsonKind(rawContacts))
		case len(contacts) == 0 && !hasPage:
			p.add(key+".contacts", "must not be empty when support_page is absent")
		}
		for i, rc := range contacts {
			validateContact(p, fmt.Sprintf("%s.contacts[%d]", key, i), rc)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		v := doc[k]
		if k == "" {
			p.add(key, "keys must not be empty")
			continue
		}
		checkJSON(p, key+"."+k, v)
	}
}

func validateContact(p *problems, key string, rc any) {
	c, ok := rc.(map[string]any)
	if _, anyKeys := rc.(map[any]any); anyKeys {
		return // checkJSON reports the non-string keys
	}
	if !ok {
		p.add(key, "must be a mapping with role and matrix_id and/or email_address, got %s", jsonKind(rc))
		return
	}
	if r, ok := c["role"]; !ok {
		p.add(key+".role", "is required (%s, %s or a namespaced custom role)", SupportRoleAdmin, SupportRoleSecurity)
	} else if s, ok := r.(string); !ok {
		p.add(key+".role", "must be a string, got %s", jsonKind(r))
	} else if err := checkRole(s); err != nil {
		p.add(key+".role", "%v, got %q", err, s)
	}
	mxid, hasID := c["matrix_id"]
	email, hasEmail := c["email_address"]
	if !hasID && !hasEmail {
		p.add(key, "must have matrix_id and/or email_address")
	}
	if hasID {
		if s, ok := mxid.(string); !ok {
			p.add(key+".matrix_id", "must be a string, got %s", jsonKind(mxid))
		} else if err := CheckUserID(s); err != nil {
			p.add(key+".matrix_id", "%v, got %q", err, s)
		}
	}
	if hasEmail {
		if s, ok := email.(string); !ok {
			p.add(key+".email_address", "must be a string, got %s", jsonKind(email))
		} else if a, err := mail.ParseAddress(s); err != nil || a.Address != s || a.Name != "" {
			p.add(key+".email_address", "must be a bare email address (user@domain), got %q", s)
		}
	}
}

// checkRole accepts the spec roles and custom roles in the common namespaced
// identifier grammar ([a-z][a-z0-9._-]*, at most 255 bytes, not under the
// reserved "m." namespace).
func checkRole(s string) error {
	if s == SupportRoleAdmin || s == SupportRoleSecurity {
		return nil
	}
	if strings.HasPrefix(s, "m.") {
		return fmt.Errorf("unknown spec role: use %s, %s or a namespaced custom role (org.example.role)", SupportRoleAdmin, SupportRoleSecurity)
	}
	if s == "" || len(s) > 255 || s[0] < 'a' || s[0] > 'z' {
		return fmt.Errorf("must be a namespaced identifier (org.example.role)")
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
			return fmt.Errorf("must be a namespaced identifier (lowercase a-z, 0-9, '.', '_', '-')")
		}
	}
	return nil
}

// CheckUserID reports whether s is a Matrix user ID: "@localpart:server_name",
// at most 255 bytes, the localpart non-empty printable ASCII without ':'
// (the spec's historical grammar, which current IDs satisfy), the server name
// as CheckServerName accepts it.
func CheckUserID(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("must be at most 255 bytes")
	}
	if !strings.HasPrefix(s, "@") {
		return fmt.Errorf("must be a Matrix user ID (@user:example.org)")
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" {
		return fmt.Errorf("must be a Matrix user ID (@user:example.org)")
	}
	for i := 0; i < len(local); i++ {
		if local[i] < 0x21 || local[i] > 0x7e {
			return fmt.Errorf("user ID localpart must be printable ASCII")
		}
	}
	if err := CheckServerName(server); err != nil {
		return fmt.Errorf("user ID server name: %v", err)
	}
	return nil
}

// CheckServerName reports whether s is a Matrix server name, host[:port]: a DNS
// name (letters, digits, '-' and '.', labels of 1-63 bytes, at most 255 bytes),
// a dotted IPv4 address or a bracketed IPv6 address, with an optional decimal
// port in 1-65535.
func CheckServerName(s string) error {
	if s == "" {
		return fmt.Errorf("must be host[:port]")
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fmt.Errorf("IPv6 address must be closed with ']'")
		}
		host, port = s[1:end], s[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("must hold an IPv6 address between '[' and ']'")
		}
		if port != "" {
			if port[0] != ':' {
				return fmt.Errorf("only :port may follow ']'")
			}
			port = port[1:]
			if port == "" {
				return fmt.Errorf("port must not be empty after ':'")
			}
		}
	} else {
		if strings.Count(s, ":") > 1 {
			return fmt.Errorf("an IPv6 address must be in brackets ([2001:db8::1]:8448)")
		}
		var hasPort bool
		host, port, hasPort = strings.Cut(s, ":")
		if hasPort && port == "" {
			return fmt.Errorf("port must not be empty after ':'")
		}
		if err := checkHostName(host); err != nil {
			return err
		}
	}
	if port != "" {
		if len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" {
			return fmt.Errorf("port must be a number in 1-65535")
		}
		if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
			return fmt.Errorf("port must be a number in 1-65535")
		}
	}
	return nil
}

func checkHostName(h string) error {
	if h == "" {
		return fmt.Errorf("host must not be empty")
	}
	if len(h) > 255 {
		return fmt.Errorf("host must be at most 255 bytes")
	}
	if strings.Trim(h, "0123456789.") == "" {
		if a, err := netip.ParseAddr(h); err != nil || !a.Is4() {
			return fmt.Errorf("must be a valid IPv4 address or DNS name")
		}
		return nil
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("DNS labels must be 1-63 bytes")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("DNS labels must not start or end with '-'")
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-') {
				return fmt.Errorf("host must be a DNS name (letters, digits, '-', '.'), an IPv4 address or a bracketed IPv6 address")
			}
		}
	}
	return nil
}

// checkHTTPURL accepts an absolute http(s) URL with a host and no user info,
// query or fragment.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("must be an absolute http(s) URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("must be an absolute http(s) URL")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("must be an absolute http(s) URL with a host")
	case u.User != nil:
		return fmt.Errorf("must not hold user info")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Errorf("must not hold a query or fragment")
	}
	return nil
}

// checkJSON reports values that encoding/json cannot encode (YAML mappings
// with non-string keys, .inf/.nan), naming the nested key.
func checkJSON(p *problems, key string, v any) {
	switch v := v.(type) {
	case nil, bool, string, int, int64, uint64, uint, int32, uint32:
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			p.add(key, "must be a finite number (JSON has no Inf/NaN)")
		}
	case []any:
		for i, e := range v {
			checkJSON(p, fmt.Sprintf("%s[%d]", key, i), e)
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			checkJSON(p, key+"."+k, v[k])
		}
	case map[any]any:
		p.add(key, "mapping keys must be strings")
	default:
		if _, err := json.Marshal(v); err != nil {
			p.add(key, "cannot be encoded as JSON: %v", err)
		}
	}
}

// jsonKind names v's JSON type for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case int, int64, uint64, uint, int32, uint32, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
