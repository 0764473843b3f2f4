// Command goproxy is the "typical Go proxy" reference of the benchmark: a plain
// httputil.ReverseProxy (Rewrite with SetURL and SetXForwarded) in front of the
// upstream, with what a careful admin adds and nothing more: keep-alive to the
// upstream with an idle pool large enough for the load (Go's default of 2 idle
// connections per host would churn connections), the CORS headers replaced, the
// well-known document and OPTIONS preflights answered locally, no access log.
package main
