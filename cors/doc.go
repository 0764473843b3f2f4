// Package cors puts the Matrix CORS headers on responses under /_matrix/ and
// /.well-known/matrix/ (spec: "Web Browser Clients") and answers OPTIONS preflights.
//
// A response must carry exactly one of each CORS header: a browser rejects
// "Access-Control-Allow-Origin: *, *", which is what a proxy produces when it adds its copy to the
// one Synapse already sent. Policy.Apply therefore removes every Access-Control-* header the
// upstream set (under any key spelling) and sets its own:
//
//	Access-Control-Allow-Origin:   * (or the request's Origin when it is in the configured list)
//	Access-Control-Allow-Methods:  GET, HEAD, POST, PUT, DELETE, OPTIONS
//	Access-Control-Allow-Headers:  X-Requested-With, Content-Type, Authorization
//	Access-Control-Expose-Headers: the upstream's exposed headers + Retry-After, one line
//
// Retry-After is exposed so that browser clients can read it on 429s (Matrix v1.10, MSC4041); it
// is not CORS-safelisted. With a list of origins, Vary: Origin is added to every response, matching
// or not, so that shared caches keep one copy per origin.
//
// Preflight answers OPTIONS with 204, the same headers and Access-Control-Max-Age: 86400; the
// request is never forwarded and no endpoint logic runs (as the spec requires).
//
// Header values are prebuilt at New and the merged Expose-Headers value is cached, so Apply
// allocates nothing for an upstream that exposes nothing or exactly Synapse's
// "Synapse-Trace-Id, Server".
package cors
