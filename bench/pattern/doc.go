// Package pattern provides the byte stream the benchmark's media download serves and
// its upload sends: a fixed 1 MiB xorshift block repeated, so both ends can compute
// the SHA-256 of any length without storing the data.
package pattern
