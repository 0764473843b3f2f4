package proxy

import (
	"unicode/utf8"

	"github.com/mxedge/mxedge/h1"
)

// Gate is the coarse security class of a request path: it decides whether a
// request may be forwarded at all and which gate (admin allow-list, federation
// listener) applies. The zero value is GateRefused.
type Gate uint8

// The gates, from the most restrictive. A path falls into the first built-in
// gate whose prefix it carries; forward.extra_prefixes only count when no
// built-in gate matches (see CheckPath).
const (
	GateRefused       Gate = iota // not forwarded: 404 M_UNRECOGNIZED (or 400 when ok is false)
	GateMatrix                    // /_matrix/ except federation and key
	GateFederation                // /_matrix/federation/, /_matrix/key/
	GateSynapseClient             // /_synapse/client/
	GateAdmin                     // /_synapse/admin/ (allowed peers only)
	GateWellKnown                 // /.well-known/matrix/
	GateExtra                     // a forward.extra_prefixes entry, a route or /livekit/
	GateMASHost                   // MAS's own host, forwarded whole to MAS
	GateMASAdmin                  // MAS's admin API on its host (mas.admin_api.allow_from only)
)

// String returns the gate's lower-case name, for logs and tests.
func (g Gate) String() string {
	switch g {
	case GateRefused:
		return "refused"
	case GateMatrix:
		return "matrix"
	case GateFederation:
		return "federation"
	case GateSynapseClient:
		return "synapse_client"
	case GateAdmin:
		return "admin"
	case GateWellKnown:
		return "well_known"
	case GateExtra:
		return "extra"
	case GateMASHost:
		return "mas_host"
	case GateMASAdmin:
		return "mas_admin"
	}
	return "invalid"
}

// pathStackMax is the longest path CheckPath normalises without a heap
// allocation; longer paths are checked the same way on heap buffers.
const pathStackMax = 512

// Features of a raw path that some loose normaliser treats specially. Each
// subset of the features a path has gives one loose view (docs/SECURITY.md).
const (
	pathBackslash = 1 << iota // '\' or %5C: a separator to Windows-minded code
	pathSemicolon             // ';' or %3B: starts ";params" (Tomcat, Jetty)
	pathCut                   // %3F or %23: a re-parser cuts the path there
	pathFeatures              // number of subsets: 1 << 3

	// pathEncodedSlash (%2F) is no view selector, but without it and the
	// features above every loose view equals view B.
	pathEncodedSlash = pathFeatures
)

// CheckPath classifies raw, a request path exactly as received (the
// request-target up to, not including, '?'), and reports whether it is safe to
// forward byte for byte.
//
// The gate is always computed on raw itself. ok is false, and g GateRefused,
// when raw is not an origin-form path ("/..." but not "//", "/\", "/%2F" or
// "/%5C"), carries a control byte or NUL (raw or percent-encoded), a raw '#'
// or '?', a malformed percent escape, percent-encoded or raw bytes that do not
// decode to valid UTF-8 (overlong forms such as %c0%ae included), or when any
// normalised view of it falls into a different gate than raw, with gate
// prefixes compared exactly or ASCII case-insensitively. The views are:
//
//   - B (Twisted, most servers): split on raw '/', each segment percent-decoded
//     once (a decoded '/' stays in its segment), empty segments dropped, "."
//     and ".." resolved;
//   - C (a sloppy intermediary): fully decoded, then split on '/', empty
//     segments dropped, dot segments resolved; and the same with any
//     combination of: '\' as a separator, each segment cut at its first ';',
//     the path cut at the first decoded '?' or '#'.
//
// In every view, a ".." may not remove the first two segments of a path in
// a built-in gate (the gate prefix and, under /_matrix, the API segment:
// "/_matrix/client/../media/" is refused).
//
// The caller answers 400 when ok is false.
//
// extra holds the forward.extra_prefixes entries (each starting with '/').
// A built-in gate wins over an extra prefix, and the reserved roots /_matrix
// and /_synapse are never GateExtra through an extra prefix that is not
// itself under that root: extra "/" does not expose /_synapse/metrics.
//
// Percent escapes are decoded exactly once ("%252e" is "%2e", not "."). Paths
// up to 512 bytes are checked without heap allocation. CheckPath is safe for
// concurrent use.
func CheckPath(raw string, extra []string) (g Gate, ok bool) {
	g, _, ok = checkPath(raw, extra, nil)
	return g, ok
}

// checkPath is CheckPath, returning also the index of the extra prefix raw
// falls under (GateExtra; -1 otherwise). With rc set, every view of a
// /_matrix/ path must also classify like raw (see Classify).
func checkPath(raw string, extra []string, rc *routeCheck) (g Gate, idx int, ok bool) {
	plain, nonASCII, features, valid := pathScan(raw)
	if !valid {
		return GateRefused, -1, false
	}
	g, idx = pathGateKey(raw, extra, false)
	if g2, idx2 := pathGateKey(raw, extra, true); g2 != g || idx2 != idx {
		return GateRefused, -1, false
	}
	if plain {
		// No escapes, backslashes, ';', dot or empty segments: every view
		// equals raw.
		return g, idx, true
	}
	if rc != nil && g == GateMatrix {
		rc.want = Route{Gate: GateMatrix}
		classifyMatrix(&rc.want, rc.method, raw, true)
	} else {
		rc = nil
	}
	if !pathViewsAgree(raw, extra, g, idx, nonASCII, features, rc) {
		return GateRefused, -1, false
	}
	return g, idx, true
}

// pathViewsAgree computes the normalised views of a validated raw path and
// reports whether they all fall into gate g (and decode to valid UTF-8 when
// nonASCII). It is kept out of CheckPath so that the common plain path does
// not pay for zeroing the stack buffers.
//
//go:noinline
func pathViewsAgree(raw string, extra []string, g Gate, idx int, nonASCII bool, features int, rc *routeCheck) bool {
	var (
		stackBuf  [pathStackMax + 1]byte
		stackSegs [pathStackMax/2 + 2]int32
	)
	buf, segs := stackBuf[:], stackSegs[:]
	if len(raw) > pathStackMax {
		buf = make([]byte, len(raw)+1)
		segs = make([]int32, len(raw)/2+2)
	}

	if nonASCII && !utf8.Valid(pathDecodeAll(buf[:0], raw)) {
		return false
	}
	depth := pathGateDepth(g)
	v, low := pathViewSegments(buf[:0], segs[:0], raw)
	if low < depth || !viewAgrees(v, extra, g, idx) || (rc != nil && !rc.agrees(v)) {
		return false
	}
	if features == 0 {
		return true
	}
	for mask := 0; mask < pathFeatures; mask++ {
		if mask&^features != 0 {
			continue // the path lacks a feature this view treats specially
		}
		v, low = pathViewLoose(buf[:0], segs[:0], raw, mask)
		if low < depth || !viewAgrees(v, extra, g, idx) || (rc != nil && !rc.agrees(v)) {
			return false
		}
	}
	return true
}

// viewAgrees reports whether view v falls into gate g (and extra prefix idx),
// its prefixes compared exactly and ASCII case-insensitively.
func viewAgrees(v []byte, extra []string, g Gate, idx int) bool {
	g1, i1 := pathGateKey(v, extra, false)
	g2, i2 := pathGateKey(v, extra, true)
	return g1 == g && g2 == g && i1 == idx && i2 == idx
}

// pathScan validates raw's syntax. plain reports that raw has nothing a
// normaliser would change (no escape, '\', ';', empty segment, segment
// starting with '.', non-ASCII byte); nonASCII that it has bytes >= 0x80,
// raw or escaped, whose decoded form must be checked for UTF-8; features the
// path features it has.
func pathScan(raw string) (plain, nonASCII bool, features int, ok bool) {
	if len(raw) == 0 || raw[0] != '/' {
		return false, false, 0, false // not origin-form: "*", "http://h/p", ""
	}
	if len(raw) > 1 && (raw[1] == '/' || raw[1] == '\\') {
		return false, false, 0, false // "//host/..." is a network-path reference
	}
	if len(raw) > 3 && raw[1] == '%' && (raw[2] == '2' && (raw[3] == 'f' || raw[3] == 'F') ||
		raw[2] == '5' && (raw[3] == 'c' || raw[3] == 'C')) {
		return false, false, 0, false // "/%2F..." and "/%5C..." decode to "//..." to some
	}
	plain = true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			continue // the common case, nothing to note
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return false, false, 0, false // NUL and other control bytes
		case c == '#' || c == '?':
			// Not part of a path as received: a fragment marker is not valid
			// in a request-target, and '?' starts the query the caller split off.
			return false, false, 0, false
		case c == '%':
			if i+2 >= len(raw) || !h1.IsHex(raw[i+1]) || !h1.IsHex(raw[i+2]) {
				return false, false, 0, false // malformed escape
			}
			switch v := unhexValid(raw[i+1])<<4 | unhexValid(raw[i+2]); {
			case v < 0x20 || v == 0x7f:
				return false, false, 0, false // %00, %0a, %0d, %7f...
			case v >= 0x80:
				nonASCII = true
			case v == '\\':
				features |= pathBackslash
			case v == ';':
				features |= pathSemicolon
			case v == '?' || v == '#':
				features |= pathCut
			case v == '/':
				features |= pathEncodedSlash
			}
			plain = false
			i += 2
		case c >= 0x80:
			nonASCII = true
			plain = false
		case c == '\\':
			features |= pathBackslash
			plain = false
		case c == ';':
			features |= pathSemicolon
			plain = false
		case c == '/':
			if i+1 < len(raw) && raw[i+1] == '/' {
				plain = false // empty segment
			}
		case c == '.':
			if raw[i-1] == '/' {
				plain = false // possibly a dot segment (raw[0] is '/', so i > 0)
			}
		}
	}
	return plain, nonASCII, features, true
}

// pathDecodeAll appends raw with every (already validated) escape decoded.
func pathDecodeAll(dst []byte, raw string) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			c = unhexValid(raw[i+1])<<4 | unhexValid(raw[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	return dst
}

// pathViewSegments builds view B of a validated raw path into out: segments
// split on raw '/', each percent-decoded once (a decoded '/' stays inside its
// segment but is written as '/', so gate prefixes see it), empty and "."
// segments dropped, ".." removing the previous segment. A path that ends in a
// separator or a dot segment keeps a trailing '/'. segs is scratch space for
// segment offsets (capacity >= len(raw)/2+2). low is the fewest segments left
// after a ".." (1<<30 when there is none).
func pathViewSegments(out []byte, segs []int32, raw string) (_ []byte, low int) {
	i := 1 // raw[0] == '/'
	dirEnd := false
	low = 1 << 30
	for {
		start := len(out)
		out = append(out, '/')
		atEnd := true
		for i < len(raw) {
			c := raw[i]
			i++
			if c == '/' {
				atEnd = false
				break
			}
			if c == '%' {
				c = unhexValid(raw[i])<<4 | unhexValid(raw[i+1])
				i += 2
			}
			out = append(out, c)
		}
		out, segs, dirEnd = pathEndSegment(out, segs, start, &low)
		if atEnd {
			break
		}
	}
	if dirEnd || len(out) == 0 {
		out = append(out, '/')
	}
	return out, low
}

// pathViewLoose builds a view C of a validated raw path: fully decoded, then
// split on '/' (raw or decoded) and resolved as in pathViewSegments. features
// selects the extra rules: pathBackslash makes '\' a separator, pathSemicolon
// cuts each segment at its first ';', pathCut ends the path at the first
// decoded '?' or '#'. Letter case is kept: callers compare gates both ways.
// low is as for pathViewSegments.
func pathViewLoose(out []byte, segs []int32, raw string, features int) (_ []byte, low int) {
	i := 1
	dirEnd := false
	low = 1 << 30
	for {
		start := len(out)
		out = append(out, '/')
		atEnd := true
		semi := -1
	seg:
		for i < len(raw) {
			c := raw[i]
			i++
			if c == '%' {
				c = unhexValid(raw[i])<<4 | unhexValid(raw[i+1])
				i += 2
			}
			switch c {
			case '/':
				atEnd = false
				break seg
			case '\\':
				if features&pathBackslash != 0 {
					atEnd = false
					break seg
				}
			case '?', '#':
				if features&pathCut != 0 {
					i = len(raw)
					break seg
				}
			case ';':
				if semi < 0 && features&pathSemicolon != 0 {
					semi = len(out)
				}
			}
			out = append(out, c)
		}
		if semi >= 0 {
			out = out[:semi]
		}
		out, segs, dirEnd = pathEndSegment(out, segs, start, &low)
		if atEnd {
			break
		}
	}
	if dirEnd || len(out) == 0 {
		out = append(out, '/')
	}
	return out, low
}

// pathEndSegment resolves the segment written at out[start:] ('/' then its
// bytes): an empty or "." segment is dropped, ".." drops itself and the
// previous segment, anything else is kept and its offset pushed on segs.
// dirEnd reports that the segment was dropped, so that a path ending here
// ends in '/'. After a "..", *low is lowered to the number of segments left.
func pathEndSegment(out []byte, segs []int32, start int, low *int) (_ []byte, _ []int32, dirEnd bool) {
	seg := out[start+1:]
	switch {
	case len(seg) == 0 || len(seg) == 1 && seg[0] == '.':
		return out[:start], segs, true
	case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
		out = out[:start]
		if n := len(segs); n > 0 {
			out = out[:segs[n-1]]
			segs = segs[:n-1]
		}
		*low = min(*low, len(segs))
		return out, segs, true
	}
	return out, append(segs, int32(start)), false
}

// pathGateDepth is the number of leading segments of a path in gate g that
// no ".." may remove: the gate prefix and, under /_matrix, the API segment
// (client, media, federation, key...), so that "/_matrix/client/../media/..."
// cannot change API while keeping its gate. Extra and refused paths are
// protected by the gate comparison alone.
func pathGateDepth(g Gate) int {
	switch g {
	case GateMatrix, GateFederation, GateSynapseClient, GateAdmin, GateWellKnown:
		return 2
	}
	return 0
}

// pathGate returns the gate of path p (origin-form), comparing prefixes
// case-insensitively (ASCII) when fold is set.
func pathGate[T string | []byte](p T, extra []string, fold bool) Gate {
	g, _ := pathGateKey(p, extra, fold)
	return g
}

// pathGateKey is pathGate, and for GateExtra the index of the first extra
// prefix p carries (-1 otherwise): views must agree on which extra prefix
// they fall under, since extra prefixes may lead to different upstreams.
func pathGateKey[T string | []byte](p T, extra []string, fold bool) (Gate, int) {
	switch {
	case pathHasPrefix(p, "/_matrix/", fold):
		if pathHasPrefix(p, "/_matrix/federation/", fold) || pathHasPrefix(p, "/_matrix/key/", fold) {
			return GateFederation, -1
		}
		return GateMatrix, -1
	case pathHasPrefix(p, "/_synapse/client/", fold):
		return GateSynapseClient, -1
	case pathHasPrefix(p, "/_synapse/admin/", fold):
		return GateAdmin, -1
	case pathHasPrefix(p, "/.well-known/matrix/", fold):
		return GateWellKnown, -1
	}
	root := ""
	switch {
	case pathHasRoot(p, "/_synapse", fold):
		root = "/_synapse/"
	case pathHasRoot(p, "/_matrix", fold):
		root = "/_matrix/"
	}
	for i, e := range extra {
		if e == "" || root != "" && !pathHasPrefix(e, root, false) {
			continue
		}
		if pathHasPrefix(p, e, fold) {
			return GateExtra, i
		}
	}
	return GateRefused, -1
}

// pathHasRoot reports whether p's first segment is root's ("/_synapse" or
// "/_synapse/...").
func pathHasRoot[T string | []byte](p T, root string, fold bool) bool {
	return pathHasPrefix(p, root, fold) && (len(p) == len(root) || p[len(root)] == '/')
}

func pathHasPrefix[T string | []byte](s T, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if a == b {
			continue
		}
		if !fold || pathLower(a) != pathLower(b) {
			return false
		}
	}
	return true
}

func pathLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ValidQuery reports whether url.ParseQuery would parse raw (a query without
// the leading '?') without error: every '%' starts a two-hex-digit escape, no
// ';' appears, and there are at most 10000 '&'-separated parameters (the
// net/url default; a GODEBUG=urlmaxqueryparams override is not consulted).
// A query that fails is refused by the proxy rather than forwarded in a form
// other than the one it checked. ValidQuery does not allocate.
func ValidQuery(raw string) bool {
	params := 1
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ';':
			return false
		case '&':
			params++
		case '%':
			if i+2 >= len(raw) || !h1.IsHex(raw[i+1]) || !h1.IsHex(raw[i+2]) {
				return false
			}
			i += 2
		}
	}
	return params <= queryMaxParams
}

// queryMaxParams is net/url's default limit on query parameters.
const queryMaxParams = 10000

// unhexValid returns the value of c, a hex digit pathScan has validated.
func unhexValid(c byte) byte {
	v, _ := h1.Unhex(c)
	return v
}
