package certs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
)

const helperEnv = "MXEDGE_CERTS_REPLICA_CONFIG"

// TestReplicaProcess is not a test: TestReplicasInTwoProcesses runs the
// test binary with helperEnv set to make it an mxedge replica (listeners,
// Manager, Start) in its own process. It prints "READY <https addr>" and
// runs until its stdin closes, then prints "ATTEMPTS <n>".
func TestReplicaProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process for TestReplicasInTwoProcesses")
	}
	var c config.Config
	must(t, json.Unmarshal([]byte(raw), &c))
	httpLn, httpsLn := listenEdge(t)
	c.Listen.HTTP, c.Listen.HTTPS = httpLn.Addr().String(), httpsLn.Addr().String()
	e := serveEdge(t, &c, httpLn, httpsLn)
	fmt.Printf("READY %s\n", httpsLn.Addr())
	io.Copy(io.Discard, os.Stdin)
	fmt.Printf("ATTEMPTS %v\n", testutil.ToFloat64(e.m.met.attempts))
}

// TestReplicasInTwoProcesses: replica A (another process) and replica B
// (this one) share Redis storage; Pebble validates at B's listeners only.
// A orders; B, which has never seen the challenge in memory, answers it
// from the storage; then B starts and serves A's certificate without an
// order. Exactly one order in all.
func TestReplicasInTwoProcesses(t *testing.T) {
	for _, ch := range []string{config.ChallengeHTTP01, config.ChallengeTLSALPN01} {
		t.Run(ch, func(t *testing.T) {
			redisURL := testkit.StartRedis(t, testkit.CertsPorts).URL()
			bHTTP, bHTTPS := listenEdge(t)
			p := startPebble(t, pebbleOpts{httpPort: port(bHTTP), tlsPort: port(bHTTPS)})
			cb := acmeConfig(p, bHTTP, bHTTPS, redisURL, ch)
			b := newEdge(t, cb, bHTTP, bHTTPS)

			ca := *cb
			ca.Listen = config.Listen{}
			raw, err := json.Marshal(&ca)
			must(t, err)
			cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaProcess$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
			stdin, err := cmd.StdinPipe()
			must(t, err)
			stdout, err := cmd.StdoutPipe()
			must(t, err)
			cmd.Stderr = os.Stderr
			must(t, cmd.Start())
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var aAddr string
			for aAddr == "" {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatal("replica A exited before READY")
					}
					if s, found := strings.CutPrefix(l, "READY "); found {
						aAddr = s
					}
				case <-time.After(30 * time.Second):
					t.Fatal("replica A not ready")
				}
			}
			la := waitServed(t, aAddr, testName, p.root, 60*time.Second)
			if got := b.logs.Find(testkit.Attrs("distributed", "true")); len(got) == 0 {
				t.Errorf("B answered no challenge from the shared storage; B's challenge logs: %v", b.logs.Find(testkit.Contains("challenge")))
			}
			b.start(t)
			lb := waitServed(t, bHTTPS.Addr().String(), testName, p.root, 10*time.Second)
			if la.SerialNumber.Cmp(lb.SerialNumber) != 0 {
				t.Errorf("serials: A %v, B %v, want the same certificate", la.SerialNumber, lb.SerialNumber)
			}
			stdin.Close()
			var aAttempts string
			for l := range lines {
				if s, found := strings.CutPrefix(l, "ATTEMPTS "); found {
					aAttempts = s
				}
			}
			if bAtt := testutil.ToFloat64(b.m.met.attempts); aAttempts != "1" || bAtt != 0 || p.issuedCount() != 1 {
				t.Errorf("orders: attempts A %s, B %v, pebble issued %d; want 1, 0, 1", aAttempts, bAtt, p.issuedCount())
			}
		})
	}
}
