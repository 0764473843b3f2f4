package certs

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

// TestACMEUnreachable: with the CA down, Start returns at once, one
// attempt fails and is counted, and certmagic backs off (no loop).
func TestACMEUnreachable(t *testing.T) {
	httpLn, httpsLn := listenEdge(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	deadAddr := dead.Addr().String()
	dead.Close()
	c := acmeConfig(&pebble{dir: "https://" + deadAddr + "/dir"}, httpLn, httpsLn, t.TempDir(), config.ChallengeHTTP01)
	start := time.Now()
	e := serveEdge(t, c, httpLn, httpsLn)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("New+Start with the CA down took %v, want it not to wait for the CA", d)
	}
	for deadline := time.Now().Add(20 * time.Second); testutil.ToFloat64(e.m.met.failures) < 1; {
		if time.Now().After(deadline) {
			t.Fatal("no failure counted with the CA down")
		}
		time.Sleep(20 * time.Millisecond) // polling for the attempt
	}
	time.Sleep(2 * time.Second) // a loop would show within this time
	if a, f := testutil.ToFloat64(e.m.met.attempts), testutil.ToFloat64(e.m.met.failures); a != 1 || f != 1 {
		t.Errorf("after 2s: attempts %v, failures %v, want 1 and 1 (next retry after certmagic's 1m back-off)", a, f)
	}
	if n := len(e.logs.Find(testkit.Contains("could not get certificate from issuer"))); n != 1 {
		t.Errorf("error logs for one attempt: got %d, want 1", n)
	}
}

// TestACMERenewalFailureKeepsServing: the CA goes away after issuance of a
// short-lived certificate; the renewal fails and is counted, and the
// current certificate is still served.
func TestACMERenewalFailureKeepsServing(t *testing.T) {
	httpLn, httpsLn := listenEdge(t)
	p := startPebble(t, pebbleOpts{httpPort: port(httpLn), tlsPort: port(httpsLn), validity: 12 * time.Second})
	c := acmeConfig(p, httpLn, httpsLn, t.TempDir(), config.ChallengeHTTP01)
	c.TLS.RenewCheckInterval = config.Duration(time.Second)
	e := serveEdge(t, c, httpLn, httpsLn)
	addr := httpsLn.Addr().String()
	first := waitServed(t, addr, testName, p.root, 60*time.Second)
	p.kill()
	for testutil.ToFloat64(e.m.met.failures) < 1 {
		if time.Now().After(first.NotAfter) {
			t.Fatal("no renewal failure counted before expiry")
		}
		time.Sleep(50 * time.Millisecond) // polling for the renewal attempt
	}
	got := waitServed(t, addr, testName, p.root, time.Second)
	if got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("served serial %v, want the current %v", got.SerialNumber, first.SerialNumber)
	}
}
