package ratelimit

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// AccessToken returns the request's access token as Synapse reads it: the
// "Bearer" Authorization header, else the first access_token query parameter
// (deprecated since v1.11, still accepted). It allocates only for a
// percent-encoded query.
func AccessToken(r *http.Request) string {
	// The server canonicalises header keys: index the map directly.
	if v := r.Header["Authorization"]; len(v) > 0 && len(v[0]) > 7 && v[0][:7] == "Bearer " {
		return strings.TrimSpace(v[0][7:])
	}
	if r.URL == nil {
		return ""
	}
	return QueryParam(r.URL.RawQuery, "access_token")
}

// QueryParam returns the first value of name in the raw query, decoded as
// url.ParseQuery and Twisted decode it (keys and values percent-decoded, '+'
// is a space), or "" when absent or undecodable. No allocation unless the
// key or value holds an escape.
func QueryParam(raw, name string) string {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != name {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			dk, err := url.QueryUnescape(k)
			if err != nil || dk != name {
				continue
			}
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return ""
			}
			return dv
		}
		return v
	}
	return ""
}

// AddrKey returns the bucket address of client: IPv4 (IPv4-mapped IPv6
// unmapped) as is, IPv6 masked to ipv6Bits, as 16 bytes (IPv4 in its mapped
// form, which no unmapped IPv6 address can take).
func AddrKey(client netip.Addr, ipv6Bits int) [16]byte {
	client = client.Unmap()
	if client.Is6() && ipv6Bits < 128 {
		if p, err := client.Prefix(ipv6Bits); err == nil {
			client = p.Addr()
		}
	}
	return client.As16()
}

// roomFromPath returns the room id (or alias) segment of a decoded client
// path: the segment after "/rooms/", else after "/join/". "" when absent.
func roomFromPath(p string) string {
	if i := strings.Index(p, "/rooms/"); i >= 0 {
		s := p[i+len("/rooms/"):]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[:j]
		}
		return s
	}
	if i := strings.LastIndex(p, "/join/"); i >= 0 {
		s := p[i+len("/join/"):]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[:j]
		}
		return s
	}
	return ""
}
