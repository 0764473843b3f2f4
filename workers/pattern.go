package workers

import (
	"fmt"
	"strings"

	"github.com/mxedge/mxedge/h1"
)

// A compiled pattern set is a trie over path segments. A node's children are
// literal segments, one wildcard segment (*, not empty), segment prefixes
// (x*), and a "rest" child (**) that consumes one or more segments (a
// trailing empty one included) before its own children. A node where a
// pattern ends holds the pattern's entries.
type node struct {
	lit   map[string]*node
	star  *node
	globs []glob
	rest  *node
	ends  []end
}

type glob struct {
	prefix string
	n      *node
}

// end is a pattern that ends at a node: its rule's priority (lower wins) and
// method restriction.
type end struct {
	prio    int
	getOnly bool
}

// expand turns a pattern with {a,b/c} alternatives into plain patterns.
func expand(p string) ([]string, error) {
	i := strings.IndexByte(p, '{')
	if i < 0 {
		if strings.ContainsAny(p, "}") {
			return nil, fmt.Errorf("unbalanced } in %q", p)
		}
		return []string{p}, nil
	}
	j := strings.IndexByte(p[i:], '}')
	if j < 0 {
		return nil, fmt.Errorf("unbalanced { in %q", p)
	}
	var out []string
	for alt := range strings.SplitSeq(p[i+1:i+j], ",") {
		more, err := expand(p[:i] + alt + p[i+j+1:])
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// add inserts the plain pattern p (starting with '/').
func (n *node) add(p string, e end) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("pattern %q does not start with /", p)
	}
	cur := n
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch {
		case seg == "":
			return fmt.Errorf("pattern %q has an empty segment", p)
		case seg == "**":
			if cur.rest == nil {
				cur.rest = &node{}
			}
			cur = cur.rest
		case seg == "*":
			if cur.star == nil {
				cur.star = &node{}
			}
			cur = cur.star
		case strings.HasSuffix(seg, "*"):
			pre := strings.TrimSuffix(seg, "*")
			var next *node
			for _, g := range cur.globs {
				if g.prefix == pre {
					next = g.n
				}
			}
			if next == nil {
				next = &node{}
				cur.globs = append(cur.globs, glob{pre, next})
			}
			cur = next
		case strings.ContainsAny(seg, "*{}"):
			return fmt.Errorf("pattern %q: %q is not a literal, *, x* or **", p, seg)
		default:
			if cur.lit == nil {
				cur.lit = map[string]*node{}
			}
			next := cur.lit[seg]
			if next == nil {
				next = &node{}
				cur.lit[seg] = next
			}
			cur = next
		}
	}
	cur.ends = append(cur.ends, e)
	return nil
}

// maxSegs bounds the segments looked at; deeper paths match on their first
// maxSegs segments and a trailing ** (which takes the rest).
const maxSegs = 16

// match returns the best (lowest) priority of a pattern matching segs for a
// request of method GET (get) or another, or -1.
func (n *node) match(segs []string, get bool) int {
	best := -1
	n.walk(segs, get, &best)
	return best
}

func (n *node) walk(segs []string, get bool, best *int) {
	if n.rest != nil {
		// ** takes one or more segments: try every split.
		for k := 1; k <= len(segs); k++ {
			n.rest.walk(segs[k:], get, best)
		}
	}
	if len(segs) == 0 {
		for _, e := range n.ends {
			if (get || !e.getOnly) && (*best < 0 || e.prio < *best) {
				*best = e.prio
			}
		}
		return
	}
	seg, rest := segs[0], segs[1:]
	if n.lit != nil {
		if next := n.lit[seg]; next != nil {
			next.walk(rest, get, best)
		} else if strings.IndexByte(seg, '%') >= 0 {
			var buf [64]byte
			if d, ok := decodeSegment(buf[:0], seg); ok {
				if next := n.lit[string(d)]; next != nil {
					next.walk(rest, get, best)
				}
			}
		}
	}
	if n.star != nil && seg != "" {
		n.star.walk(rest, get, best)
	}
	for _, g := range n.globs {
		if seg != "" && strings.HasPrefix(seg, g.prefix) {
			g.n.walk(rest, get, best)
		}
	}
}

// decodeSegment appends seg percent-decoded once (keywords such as "%73ync"
// are "sync", as mxedge's classifier reads them); ok is false for a bad
// escape or a segment too long for dst's room.
func decodeSegment(dst []byte, seg string) ([]byte, bool) {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c == '%' {
			if i+2 >= len(seg) {
				return nil, false
			}
			h, ok1 := h1.Unhex(seg[i+1])
			l, ok2 := h1.Unhex(seg[i+2])
			if !ok1 || !ok2 {
				return nil, false
			}
			c = h<<4 | l
			i += 2
		}
		if len(dst) == cap(dst) {
			return nil, false
		}
		dst = append(dst, c)
	}
	return dst, true
}

// splitPath splits the raw path "/a/b/c" into at most maxSegs segments (the
// last one holding the rest when there are more) without allocating. Empty
// segments are skipped, except a trailing one ("/a/" is "a", ""), which a
// regular expression's "a/" wants.
func splitPath(p string, segs *[maxSegs]string) []string {
	n := 0
	for i := 0; i < len(p) && n < maxSegs; {
		if p[i] == '/' {
			i++
			if i == len(p) && n > 0 && n < maxSegs {
				segs[n] = ""
				n++
			}
			continue
		}
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		if n == maxSegs-1 {
			j = len(p)
		}
		segs[n] = p[i:j]
		n++
		i = j
	}
	return segs[:n]
}
