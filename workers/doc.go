// Package workers routes Matrix requests to Synapse's workers with Synapse's
// own rules: the endpoint lists of docs/workers.md, kept as data in
// synapse.yaml (naming the Synapse version they were checked against) and
// compiled at load into a segment matcher (no regular expression on the
// request path). A Router says which role a request belongs to and by what
// it is balanced (user, room, origin server, or one process); a Resolver
// finds the user behind an access token by asking the homeserver
// (/account/whoami), cached, so that a user's syncs stay on one synchrotron
// even with MAS's opaque tokens.
package workers
