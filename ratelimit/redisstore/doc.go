// Package redisstore shares rate-limit buckets between mxedge replicas through
// Redis: a ratelimit.Store that decides each request with one Lua script (one
// round trip) running GCRA on Redis's own clock (TIME), so replicas with
// skewed clocks share one limit.
//
// Build a Store with New and pass it to ratelimit.New in Options.Store when
// rate_limits.store is redis. Redis Cluster is not supported (one decision
// touches several keys); a single primary or Sentinel-managed primary is.
package redisstore
