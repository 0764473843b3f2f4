// Package wellknown serves the Matrix discovery documents under /.well-known/matrix/:
//
//   - /.well-known/matrix/client: {"m.homeserver":{"base_url":…}} built from public_baseurl
//     (without trailing slash, as in the spec's examples) merged with well_known.client extras;
//   - /.well-known/matrix/server: {"m.server":"host[:port]"} from well_known.server (federation
//     delegation); absent when well_known.server is empty;
//   - /.well-known/matrix/support: the MSC1929 document (Matrix v1.10) from well_known.support;
//     absent when well_known.support is null.
//
// New validates the configuration (the same checks as config.Load) and serialises each document
// once; ServeHTTP then only assigns prebuilt header values and writes prebuilt bytes, so it
// allocates nothing per request. Absent documents and unknown paths answer 404 M_NOT_FOUND,
// methods other than GET and HEAD answer 405 with Allow: GET, HEAD, both through the injected
// Matrix error writer. The documents are served for any Host and are never forwarded.
//
// CORS headers are not this package's job: the request chain (package cors) has already put them
// on the response, and answers OPTIONS preflights before the handler is reached.
package wellknown
