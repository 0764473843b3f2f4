// Command upstream imitates a Matrix homeserver for the benchmark harness: small JSON
// answers, held /sync long-polls, a media upload sink that checksums and a streamed
// download. Standard library only.
//
// Routes (all answers carry Synapse-like CORS headers of its own, which proxies replace):
//
//	GET  /_matrix/client/versions                    constant JSON (about 700 bytes)
//	PUT  /_matrix/client/v3/rooms/{room}/send/{type}/{txn}   {"event_id":…}
//	GET  /_matrix/client/v3/sync?timeout=N           held N ms (or until the client goes)
//	POST /_matrix/media/v3/upload                    body streamed into SHA-256: {"sha256":…,"bytes":…}
//	GET  /_matrix/client/v1/media/download/bench/{N} N bytes of the bench pattern, streamed
//	GET  /.well-known/matrix/client                  the same document every proxy serves locally
//	OPTIONS anything                                 204 preflight answer
//	GET  /health                                     200 OK
//	GET  /bench/held                                 number of /sync requests held now
//	GET  /bench/stats                                held, requests, bytes in/out
package main
