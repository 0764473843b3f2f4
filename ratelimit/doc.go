// Package ratelimit enforces Synapse's rc_* rate limits at the edge.
//
// The proxy classifies each request once (proxy/routes.go) into a set of
// Categories; Limiter.Check derives each category's key (client address grouped
// by IPv6 prefix, a hash of the access token, the appservice's puppeted user,
// the login's target account, the room or the invitee) and asks a Store for one
// token from each bucket, all or nothing. Buckets are GCRA token buckets: a
// bucket is a single "theoretical arrival time", so a full bucket is the same as
// no bucket and is forgotten.
//
// Memory is the in-process Store (sharded maps, hard bound on tracked keys, a
// shared overflow bucket per category while the table is full);
// ratelimit/redisstore shares buckets between replicas through one Lua script
// per decision on Redis's clock. With Redis, the Limiter falls back to its
// Memory store (or allows, or denies) while Redis fails, and probes it again
// every second.
//
// docs/RATELIMITS.md maps every rc_* option to what mxedge does.
package ratelimit
