// Package certs provides mxedge's TLS certificates: automatic ACME
// certificates through certmagic (tls.mode acme), a PEM chain and key read
// from files and reloaded on change (tls.mode files), or nothing (tls.mode
// off, New returns a nil *Manager).
//
// A Manager hands out one *tls.Config for every TLS listener (https and
// federation) and an http.Handler middleware answering ACME HTTP-01
// challenges on the plain HTTP listener. certmagic never binds listeners of
// its own: its challenge ports are set to those of listen.http and
// listen.https, which mxedge has bound before Start, so certmagic finds them
// in use and lets mxedge's listeners answer (HTTPChallenge for http-01,
// TLSConfig's GetCertificate for tls-alpn-01).
//
// Handshakes for names outside tls.domains are refused and never cause an
// order (no on-demand issuance). Certificates already in storage are served
// at once; missing or expiring ones are obtained in the background with
// certmagic's retries and back-off.
//
// The subpackage redisstorage implements certmagic.Storage on Redis so that
// replicas share accounts, certificates, challenge tokens and locks.
package certs
