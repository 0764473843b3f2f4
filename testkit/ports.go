package testkit

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// PortRange is an inclusive range of loopback TCP ports, for components
// that cannot take port 0 (redis-server, Pebble's validation ports).
type PortRange struct {
	First, Last int
}

// The port ranges of the test areas in ARCHITECTURE.md ("Fixed loopback
// port ranges per area"), split where two test binaries of one area run at
// once (go test runs packages in parallel, and a port picked free by one
// binary may be taken by the other before it binds). 17490-17499 is never
// bound: ratelimit/redisstore uses 17499 as an address where no Redis
// listens. Read-only.
var (
	// CertsPorts (certs 15000-15499) is for the certs tests: Pebble, the
	// validation ports held for it, their Redis.
	CertsPorts = PortRange{15000, 15399}
	// CertsRedisPorts (certs 15000-15499) is for certs/redisstorage.
	CertsRedisPorts = PortRange{15400, 15499}
	// RateLimitPorts (rate limits / Redis 17000-17499) is for
	// ratelimit/redisstore.
	RateLimitPorts = PortRange{17000, 17399}
	// ServePorts (rate limits / Redis 17000-17499) is for the Redis of
	// cmd/mxedge's process-level tests.
	ServePorts = PortRange{17400, 17449}
	// TestkitPorts (rate limits / Redis 17000-17499) is for testkit's own
	// tests.
	TestkitPorts = PortRange{17450, 17489}
)

// FreePort returns a port of r that was free a moment ago (the caller
// binds it later, so it may be taken by then: start again on another port
// when the bind fails). It fails the test when r has no free port.
func FreePort(t testing.TB, r PortRange) int {
	t.Helper()
	ln := listenIn(t, r)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// ReserveListener binds a loopback port of r and returns the listener,
// closed at the end of the test if the caller has not closed it.
func ReserveListener(t testing.TB, r PortRange) net.Listener {
	t.Helper()
	ln := listenIn(t, r)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ReservePorts binds n loopback ports of r and returns them with release,
// which closes them. Holding a port until just before the component that
// needs it at a fixed number starts keeps others' free-port picks off it.
func ReservePorts(t testing.TB, r PortRange, n int) (ports []int, release func()) {
	t.Helper()
	lns := make([]net.Listener, n)
	for i := range lns {
		lns[i] = ReserveListener(t, r)
		ports = append(ports, lns[i].Addr().(*net.TCPAddr).Port)
	}
	return ports, func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
}

// listenIn binds the first free port of r from a random start.
func listenIn(t testing.TB, r PortRange) net.Listener {
	t.Helper()
	n := r.Last - r.First + 1
	start := rand.IntN(n)
	for i := range n {
		port := r.First + (start+i)%n
		ln, err := net.Listen("tcp", loopback(port))
		if err == nil {
			return ln
		}
	}
	t.Fatalf("no free loopback port in %d-%d", r.First, r.Last)
	return nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
