package upstream

import (
	"context"
	"io"
	"log/slog"
	"net"
	"reflect"
	"time"

	"github.com/mxedge/mxedge/config"
)

// Options are a Set's dependencies.
type Options struct {
	// Logger receives health and ejection events. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Dial replaces the dialer (tests). Default net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Set is the pools of one configuration. Safe for concurrent use.
type Set struct {
	pools map[string]*Pool
	list  []*Pool // by name
}

// NewSet builds the pools of specs. A pool of old whose configuration is the
// same is carried over whole; the others are built new. NewSet has no effect
// on old: the caller closes old's leftovers with old.CloseUnused(new) once
// the new Set is in use, or discards the new Set with new.CloseUnused(old).
func NewSet(specs []*config.PoolSpec, o Options, old *Set) *Set {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{pools: make(map[string]*Pool, len(specs))}
	for _, spec := range specs {
		var p *Pool
		if old != nil {
			if op := old.pools[spec.Name]; op != nil && sameSpec(op.spec, spec) {
				p = op
			}
		}
		if p == nil {
			p = newPool(spec, o)
		}
		s.pools[spec.Name] = p
		s.list = append(s.list, p)
	}
	return s
}

// sameSpec reports whether two pool configurations are the same.
func sameSpec(a, b *config.PoolSpec) bool {
	return reflect.DeepEqual(a.Source, b.Source) && a.IdleTimeout == b.IdleTimeout &&
		reflect.DeepEqual(a.Members, b.Members) && a.RootCAs.Equal(b.RootCAs)
}

// Pool returns the pool named name, or nil.
func (s *Set) Pool(name string) *Pool { return s.pools[name] }

// Pools returns every pool, sorted by name.
func (s *Set) Pools() []*Pool { return s.list }

// CloseUnused closes the pools of s that keep does not hold (keep may be
// nil: close all).
func (s *Set) CloseUnused(keep *Set) {
	if s == nil {
		return
	}
	for name, p := range s.pools {
		if keep == nil || keep.pools[name] != p {
			p.close()
		}
	}
}
