// Package metrics holds mxedge's Prometheus metrics and the ops HTTP handler
// (/metrics, /healthz, /readyz on listen.ops).
//
// Every metric is registered on a prometheus.Registerer passed in by the caller;
// nothing is global. Route classes are passed to New as their label values
// (proxy.ClassNames) and addressed by index afterwards, so a request can never
// create a series that New did not foresee: the request metrics are bounded by
// classes × 7 methods × status codes seen.
//
// The per-request calls (Begin, End, Upstream) take no lock and allocate nothing
// beyond what client_golang itself does: children are resolved once in New, and
// the (class, method, code) counters are created on first use and cached in fixed
// arrays of atomic pointers.
//
// The reference table of every mxedge metric, including those registered by the
// ratelimit and certs packages, is docs/METRICS.md.
package metrics
