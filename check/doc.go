// Package check implements `mxedge check TARGET`, a connectivity tester for a
// Matrix deployment, and `mxedge healthcheck`, the probe used by the container
// HEALTHCHECK.
//
// check runs what a client, a browser and a federating server would do against
// a server name (example.org) or a base URL (https://matrix.example.org): the
// client well-known, /_matrix/client/versions, CORS on responses and on an
// OPTIONS preflight carrying Authorization, the TLS certificates of every
// endpoint, the server well-known (federation delegation) and
// /_matrix/key/v2/server, and the support well-known. It prints one line per
// check with ✓ or ✗ and a fix for each failure, or JSON with --json, and returns
// an *ExitError with code 1 when any check failed.
//
// --resolve host:port:addr pins a name to an address as curl does; addr may carry
// its own port (host:443:127.0.0.1:17543), so tests run every endpoint on
// loopback. SRV records (_matrix-fed._tcp) are not looked up: a server name
// without delegation is checked on port 8448.
package check
