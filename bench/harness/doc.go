// Command harness runs the mxedge benchmark: it starts the imitation homeserver
// (bench/upstream), the anchors (nginx, HAProxy, Caddy from Debian), the plain Go
// reverse proxy (bench/goproxy) and mxedge, each on its own loopback port with its own
// temp prefix, pins every proxy to CPU 0 and the load, the upstream and itself to
// CPU 1, interleaves the targets over several rounds and writes medians, ratios and a
// PNG plot. -mode smoke runs every scenario for about a second against the upstream,
// the Go proxy and mxedge with checked answers, and fails on any failed request or
// checksum mismatch (never on speed).
package main
