// Package upstream holds mxedge's upstream pools: named sets of members
// (http://, https://, unix:) with balancing (round robin, least
// connections), active health checks, passive ejection of failing members,
// and a per-pool connection cap with a short queue. Each member carries its
// requests over an h1.Pool.
//
// A Set is the pools of one configuration. A reload builds a new Set from
// the old one: a pool whose configuration did not change is carried over
// whole (its connections, health state and counters), the others are new;
// the old Set then closes what the new one does not use.
package upstream
