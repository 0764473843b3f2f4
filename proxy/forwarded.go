package proxy

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
)

// ClientAddr returns the address mxedge trusts as the client, and the scheme a
// trusted proxy reports, following docs/SECURITY.md ("Forwarding headers").
//
// peer is the socket peer. When it is not in trusted (or is the zero Addr, as
// on a unix socket), ClientAddr returns peer and "" and reads no header.
// When it is trusted:
//
//   - X-Forwarded-For (all field lines, in order, comma-separated, entries
//     trimmed, empty entries skipped) is walked from the right: trusted
//     entries are skipped, the first untrusted one is the client; when every
//     entry is trusted, the leftmost is. Entries may carry a port
//     ("1.2.3.4:5678", "[2001:db8::1]:443") or brackets. An unparsable entry
//     (a name, a zone, garbage) stops the walk: the client is then the last
//     trusted hop, i.e. the entry just right of it, or peer.
//   - Without a non-empty X-Forwarded-For, Forwarded (RFC 7239) is walked the
//     same way on the for= parameter of each element. A "unknown" or
//     obfuscated ("_hidden") node stops the walk and yields peer; an element
//     without for=, with a malformed pair or with an unparsable node yields
//     the last trusted hop.
//
// A forged entry can thus only ever name a hop right of it, never move the
// decision onto an address the client chose past a trusted hop.
//
// proto is the last X-Forwarded-Proto value when present ("" unless it is
// "http" or "https", any case), else the proto= of the rightmost Forwarded
// element; "" when the peer is not trusted or nothing valid was sent. The
// returned strings are constants.
//
// Addresses are returned unmapped (::ffff:192.0.2.1 is 192.0.2.1) and without
// zone. trusted is matched against unmapped addresses, so it should hold IPv4
// prefixes for IPv4 clients. ClientAddr does not allocate for up to 16
// Forwarded elements and is safe for concurrent use.
func ClientAddr(peer netip.Addr, h http.Header, trusted config.Prefixes) (client netip.Addr, proto string) {
	peer = peer.Unmap().WithZone("")
	if !trusted.Contains(peer) {
		return peer, ""
	}
	proto = fwdProto(h)
	xfp := len(h["X-Forwarded-Proto"]) > 0
	client, found := fwdFromXFF(peer, h["X-Forwarded-For"], trusted)
	fwd := h["Forwarded"]
	if len(fwd) == 0 || found && xfp {
		return client, proto
	}
	var stack [16]fwdElement
	elems := fwdParse(stack[:0], fwd)
	if !xfp && len(elems) > 0 {
		proto = fwdProtoValue(elems[len(elems)-1].proto)
	}
	if !found {
		client = fwdFromForwarded(peer, elems, trusted)
	}
	return client, proto
}

// fwdProto returns the last X-Forwarded-Proto value when it is http or https.
func fwdProto(h http.Header) string {
	lines := h["X-Forwarded-Proto"]
	if len(lines) == 0 {
		return ""
	}
	v := lines[len(lines)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return fwdProtoValue(h1.TrimOWS(v))
}

func fwdProtoValue(v string) string {
	switch {
	case strings.EqualFold(v, "https"):
		return "https"
	case strings.EqualFold(v, "http"):
		return "http"
	}
	return ""
}

// fwdFromXFF walks X-Forwarded-For lines from the right. found is false when
// there is no non-empty entry.
func fwdFromXFF(peer netip.Addr, lines []string, trusted config.Prefixes) (client netip.Addr, found bool) {
	last := peer
	for li := len(lines) - 1; li >= 0; li-- {
		s := lines[li]
		for {
			j := strings.LastIndexByte(s, ',')
			entry := h1.TrimOWS(s[j+1:])
			if entry != "" {
				a, ok := fwdParseXFFNode(entry)
				switch {
				case !ok:
					return last, true
				case !trusted.Contains(a):
					return a, true
				}
				last, found = a, true
			}
			if j < 0 {
				break
			}
			s = s[:j]
		}
	}
	return last, found
}

// fwdParseXFFNode parses "ip", "ipv4:port", "[ipv6]" or "[ipv6]:port".
func fwdParseXFFNode(s string) (netip.Addr, bool) {
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 || !fwdPort(s[end+1:]) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	i := strings.IndexByte(s, ':')
	if i < 0 || !fwdPort(s[i:]) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s[:i])
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// fwdPort reports whether s is "" or ":" followed by a decimal port.
func fwdPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 || len(s) > 6 {
		return false
	}
	n := 0
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// fwdElement is one Forwarded element (one hop). for and proto are the raw
// parameter values, unquoted; bad marks a syntax error in the element.
type fwdElement struct {
	node, proto string
	hasFor, bad bool
	pairs       int
}

// fwdParse appends the elements of all Forwarded field lines to elems.
// Empty elements are skipped. A syntax error marks the element bad; the
// parser then resumes after the next ',' outside a quoted string (an
// unterminated quote ends the line).
func fwdParse(elems []fwdElement, lines []string) []fwdElement {
	for _, s := range lines {
		var cur fwdElement
		i := 0
		for {
			i = fwdSkipOWS(s, i)
			// forwarded-pair = token "=" value
			k := i
			for i < len(s) && h1.IsTokenByte(s[i]) {
				i++
			}
			if key := s[k:i]; key != "" {
				cur.pairs++
				if i >= len(s) || s[i] != '=' {
					cur.bad = true
				} else {
					i++
					var val string
					var ok bool
					val, i, ok = fwdValue(s, i)
					if !ok {
						cur.bad = true
					}
					switch {
					case strings.EqualFold(key, "for"):
						if cur.hasFor {
							cur.bad = true // two for= in one element
						}
						cur.node, cur.hasFor = val, true
					case strings.EqualFold(key, "proto"):
						cur.proto = val
					}
				}
			}
			i = fwdSkipOWS(s, i)
			if i >= len(s) {
				break
			}
			switch s[i] {
			case ';':
				i++
				continue
			case ',':
				if cur.pairs > 0 || cur.bad {
					elems = append(elems, cur)
				}
				cur = fwdElement{}
				i++
				continue
			}
			// Garbage: resynchronise at the next ',' outside quotes.
			cur.bad = true
			i = fwdSkipToComma(s, i)
		}
		if cur.pairs > 0 || cur.bad {
			elems = append(elems, cur)
		}
	}
	return elems
}

// fwdValue reads a token or quoted-string at s[i:]. A quoted string holding
// a backslash escape is returned raw and not ok (no valid node needs one).
func fwdValue(s string, i int) (val string, next int, ok bool) {
	if i < len(s) && s[i] == '"' {
		start := i + 1
		ok = true
		for j := start; j < len(s); j++ {
			switch s[j] {
			case '\\':
				ok = false
				j++
			case '"':
				return s[start:j], j + 1, ok
			}
		}
		return s[start:], len(s), false // unterminated
	}
	start := i
	for i < len(s) && h1.IsTokenByte(s[i]) {
		i++
	}
	return s[start:i], i, i > start
}

func fwdSkipToComma(s string, i int) int {
	quoted := false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			return i
		}
	}
	return len(s)
}

func fwdSkipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// fwdFromForwarded walks the elements from the right.
func fwdFromForwarded(peer netip.Addr, elems []fwdElement, trusted config.Prefixes) netip.Addr {
	last := peer
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if e.bad || !e.hasFor {
			return last
		}
		a, kind := fwdParseNode(e.node)
		switch kind {
		case fwdNodeHidden:
			return peer
		case fwdNodeBad:
			return last
		}
		if !trusted.Contains(a) {
			return a
		}
		last = a
	}
	return last
}

const (
	fwdNodeAddr = iota
	fwdNodeHidden
	fwdNodeBad
)

// fwdParseNode parses an RFC 7239 node: nodename [ ":" node-port ], where
// nodename is IPv4, "[" IPv6 "]", "unknown" or an obfuscated "_..." name and
// node-port is a port or an obfuscated "_..." port. An unbracketed IPv6
// address is accepted too (a common deviation).
func fwdParseNode(s string) (netip.Addr, int) {
	if s == "" {
		return netip.Addr{}, fwdNodeBad
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 || !fwdNodePort(s[end+1:]) {
			return netip.Addr{}, fwdNodeBad
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, fwdNodeBad
		}
		return a.Unmap(), fwdNodeAddr
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, fwdNodeBad
		}
		return a.Unmap(), fwdNodeAddr
	}
	name, port := s, ""
	if i := strings.IndexByte(s, ':'); i >= 0 {
		name, port = s[:i], s[i:]
	}
	if !fwdNodePort(port) {
		return netip.Addr{}, fwdNodeBad
	}
	if strings.EqualFold(name, "unknown") || fwdObfuscated(name) {
		return netip.Addr{}, fwdNodeHidden
	}
	a, err := netip.ParseAddr(name)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fwdNodeBad
	}
	return a, fwdNodeAddr
}

// fwdNodePort accepts "", ":port" and an obfuscated ":_name".
func fwdNodePort(s string) bool {
	if len(s) > 1 && s[0] == ':' && s[1] == '_' {
		return fwdObfuscated(s[1:])
	}
	return fwdPort(s)
}

// fwdObfuscated reports whether s is an RFC 7239 obfnode/obfport:
// "_" 1*( ALPHA / DIGIT / "." / "_" / "-").
func fwdObfuscated(s string) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
