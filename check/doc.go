// Package check implements `mxedge check TARGET`, a connectivity tester for a
// Matrix deployment, and `mxedge healthcheck`, the probe used by the container
// HEALTHCHECK.
//
// check runs what a client, a browser and a federating server would do against
// a server name (example.org) or a base URL (https://matrix.example.org): the
// client well-known, /_matrix/client/versions, CORS on responses and on an
// OPTIONS preflight carrying Authorization, the TLS certificates of every
// endpoint, the server well-known (federation delegation) and
// /_matrix/key/v2/server, and the support well-known. For the newer parts of
// a deployment it checks MAS (its discovery document, the exact issuer, the
// metadata a client needs, compat login answered by MAS with the MSC3824
// hint), MatrixRTC (non-empty transports that agree with the well-known's
// rtc_foci, lk-jwt-service's /healthz) and the OpenID userinfo endpoint that
// lk-jwt-service needs. It prints one line per check with ✓ or ✗ and a fix for
// each failure, or JSON with --json, and returns an *ExitError with code 1 when
// any check failed.
//
// --access-token (or MXEDGE_CHECK_ACCESS_TOKEN) adds the checks that need a
// user: whoami, the authenticated transports endpoint and an OpenID round
// trip; every token appears as REDACTED in the report. --no-federation marks a
// client-only deployment: federation delegation and keys are skipped (never
// guessed, so a federating server with a broken port 8448 still fails).
//
// --resolve host:port:addr pins a name to an address as curl does; addr may carry
// its own port (host:443:127.0.0.1:17543), so tests run every endpoint on
// loopback. SRV records (_matrix-fed._tcp) are not looked up: a server name
// without delegation is checked on port 8448.
package check
