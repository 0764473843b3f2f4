// Package redisstorage implements certmagic.Storage on Redis (go-redis v9),
// so that several mxedge replicas share ACME accounts, certificates,
// challenge tokens and locks: one replica orders a certificate, every
// replica serves it and can answer its challenges.
//
// Layout under Prefix: each key is a hash at Prefix+"k:"+key with fields
// "v" (value) and "m" (modification time, Unix nanoseconds); the sorted set
// Prefix+"index" holds every key (score 0) for lexicographic listing; a lock
// is the string Prefix+"lock:"+name holding a random token, with a TTL that
// a goroutine refreshes while the lock is held, so that a crashed holder's
// lock expires after LockTTL.
package redisstorage
