package testkit

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisReady is what redis-server logs once it accepts connections.
const redisReady = "Ready to accept connections"

// Redis is a redis-server that a test started on a loopback port, without
// persistence (--save "" and --appendonly no) and in a temporary directory.
// It is killed by its PID at the end of the test. A Redis is used by one
// test goroutine.
type Redis struct {
	bin    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    Buffer        // redis-server's output, shown when the test fails
}

// StartRedis runs redis-server on a free port of ports and returns once it
// has logged that it accepts connections. redis-server is taken from PATH
// (see Require). A port taken meanwhile makes it try another.
func StartRedis(t testing.TB, ports PortRange) *Redis {
	t.Helper()
	r := &Redis{bin: Require(t, "redis-server")}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("redis-server on port %d:\n%s", r.port, r.log.String())
		}
	})
	for range 20 {
		r.port = FreePort(t, ports)
		if r.start(t) {
			return r
		}
	}
	t.Fatalf("redis-server: no port of %d-%d could be bound", ports.First, ports.Last)
	return nil
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return loopback(r.port) }

// URL returns the server's URL, database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Stop kills the server by its PID and waits for it to exit, as a crash
// would end it. Stopping a stopped server does nothing.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Restart starts the stopped server again on the same port, empty, and
// returns once it accepts connections. It fails the test when the port was
// taken meanwhile.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	if r.cmd != nil {
		t.Fatal("testkit.Redis.Restart: the server is running")
	}
	if !r.start(t) {
		t.Fatalf("redis-server: restart on port %d failed (port taken?)", r.port)
	}
}

// start runs redis-server on r.port and waits for its ready line. It
// returns false when the server exited first (the port was taken).
func (r *Redis) start(t testing.TB) bool {
	t.Helper()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "notice",
		"--dir", t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			r.log.Write([]byte(sc.Text() + "\n"))
			if !seen && strings.Contains(sc.Text(), redisReady) {
				seen = true
				close(ready)
			}
		}
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-ready:
		r.cmd, r.exited = cmd, exited
		return true
	case <-exited:
		return false
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("redis-server on port %d: no %q line after 10s", r.port, redisReady)
		return false
	}
}
