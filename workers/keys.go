package workers

import (
	"strings"

	"github.com/mxedge/mxedge/h1"
)

// FNV-1a, 64 bits: a stable hash, so that every mxedge replica sends a user
// or a room to the same member.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Hash returns the stable 64-bit hash of s.
func Hash(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// hashDecoded hashes seg percent-decoded (so "!r:x" and "%21r%3Ax" are one room).
func hashDecoded(seg string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' && i+2 < len(seg) {
			hi, ok1 := h1.Unhex(seg[i+1])
			lo, ok2 := h1.Unhex(seg[i+2])
			if ok1 && ok2 {
				c = hi<<4 | lo
				i += 2
			}
		}
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// RoomKey returns the hash of the room in the raw path: the segment after
// "rooms", "join" or "knock" (an ID or an alias), decoded; ok is false when
// the path names none.
func RoomKey(raw string) (uint64, bool) {
	var buf [maxSegs]string
	segs := splitPath(raw, &buf)
	for i := 0; i+1 < len(segs); i++ {
		switch segs[i] {
		case "rooms", "join", "knock":
			if i >= 2 { // /_matrix/client/<version>/...
				return hashDecoded(segs[i+1]), true
			}
		}
	}
	return 0, false
}

// OriginKey returns the hash of the origin server named in an X-Matrix
// Authorization header (a federation request); ok is false without one.
func OriginKey(authorization string) (uint64, bool) {
	rest, ok := cutPrefixFold(authorization, "X-Matrix ")
	if !ok {
		return 0, false
	}
	for rest != "" {
		var param string
		param, rest, _ = strings.Cut(rest, ",")
		k, v, _ := strings.Cut(h1.TrimOWS(param), "=")
		if h1.EqualFold(h1.TrimOWS(k), "origin") {
			v = strings.Trim(h1.TrimOWS(v), `"`)
			if v == "" {
				return 0, false
			}
			return Hash(strings.ToLower(v)), true
		}
	}
	return 0, false
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !h1.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// Initial reports whether a request the synchrotron role takes is an
// initial sync, for initial_synchrotron: /sync without since or with
// full_state=true, /events without from, sliding sync without pos, and every
// initialSync.
func Initial(raw, query string) bool {
	switch last := raw[strings.LastIndexByte(raw, '/')+1:]; last {
	case "initialSync":
		return true
	case "sync":
		if strings.Contains(raw, "simplified_msc3575") {
			return !hasParam(query, "pos")
		}
		return !hasParam(query, "since") || paramIs(query, "full_state", "true")
	case "events":
		return !hasParam(query, "from")
	}
	return false
}

// hasParam reports a non-empty query parameter named name (its name raw).
func hasParam(q, name string) bool {
	v, ok := param(q, name)
	return ok && v != ""
}

func paramIs(q, name, want string) bool {
	v, ok := param(q, name)
	return ok && v == want
}

func param(q, name string) (string, bool) {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}
