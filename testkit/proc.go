package testkit

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// listenTimeout bounds the wait for each listener's "listening" line.
const listenTimeout = 30 * time.Second

// Proc is a running mxedge process whose stderr is kept: every line, and
// the JSON ones decoded as Lines (a "listening" line records its
// listener's address). Its methods are safe for concurrent use.
type Proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed once the process has exited

	mu      sync.Mutex
	cond    *sync.Cond // broadcast on a new line, exit, or a wait's timeout
	lines   []Line
	raw     []string
	addrs   map[string]string // listener → address
	exited  bool
	waitErr error
}

// StartMxedge runs the mxedge binary (see MxedgeBinary) with args, named
// name in failure messages, and waits until each of listeners has logged
// {"msg":"listening","listener":…,"addr":…}. Its environment is the test's
// without MXEDGE_* variables. At the end of the test the process is killed
// by its PID, and its log is printed when the test failed.
func StartMxedge(t testing.TB, name string, args []string, listeners ...string) *Proc {
	t.Helper()
	p := &Proc{name: name, cmd: exec.Command(MxedgeBinary(t), args...), done: make(chan struct{}), addrs: map[string]string{}}
	p.cond = sync.NewCond(&p.mu)
	p.cmd.Env = []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MXEDGE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("mxedge %s: %v", name, err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("mxedge %s log:\n%s", p.name, strings.Join(p.raw, "\n"))
			p.mu.Unlock()
		}
	})
	for _, l := range listeners {
		p.WaitLog(t, listenTimeout, "listener "+l, Msg("listening", "listener", l))
	}
	return p
}

// read keeps the lines of r until EOF, then waits for the process.
func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l Line
		json.Unmarshal(sc.Bytes(), &l)
		p.mu.Lock()
		p.raw = append(p.raw, sc.Text())
		if l != nil {
			p.lines = append(p.lines, l)
			if l.Str("msg") == "listening" {
				p.addrs[l.Str("listener")] = l.Str("addr")
			}
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exited, p.waitErr = true, err
	p.cond.Broadcast()
	p.mu.Unlock()
	close(p.done)
}

// Started returns the time just before the process was executed.
func (p *Proc) Started() time.Time { return p.started }

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Addr returns the address the listener logged ("" when it has not).
func (p *Proc) Addr(listener string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[listener]
}

// Mark returns the number of JSON lines logged so far, for WaitLogAfter
// and FindAfter to look only at the lines that follow.
func (p *Proc) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// WaitLog waits until a line matching match has been logged, at any time
// since the start, and returns it. It fails the test when the process
// exits or timeout passes first; what names the line in that message.
func (p *Proc) WaitLog(t testing.TB, timeout time.Duration, what string, match func(Line) bool) Line {
	t.Helper()
	return p.WaitLogAfter(t, 0, timeout, what, match)
}

// WaitLogAfter is WaitLog for the lines logged after mark (see Mark).
func (p *Proc) WaitLogAfter(t testing.TB, mark int, timeout time.Duration, what string, match func(Line) bool) Line {
	t.Helper()
	timedOut := false
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		timedOut = true
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := mark; ; {
		for ; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				return p.lines[i]
			}
		}
		switch {
		case p.exited:
			t.Fatalf("mxedge %s: waiting for %s: exited (%v)", p.name, what, p.waitErr)
		case timedOut:
			t.Fatalf("mxedge %s: waiting for %s: not logged after %v", p.name, what, timeout)
		}
		p.cond.Wait()
	}
}

// Find returns the lines logged so far that match.
func (p *Proc) Find(match func(Line) bool) []Line { return p.FindAfter(0, match) }

// FindAfter returns the lines logged after mark (see Mark) that match.
func (p *Proc) FindAfter(mark int, match func(Line) bool) []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return find(p.lines[min(mark, len(p.lines)):], match)
}

// Signal sends sig to the process, failing the test on an error.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("mxedge %s: signal %v: %v", p.name, sig, err)
	}
}

// Wait waits for the process to exit and returns how it exited (nil for
// status 0). It fails the test when the process is still running after
// timeout.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("mxedge %s: still running after %v", p.name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Stop sends SIGTERM and waits up to 30 seconds for the process to exit;
// an exit status other than 0 is an error of the test.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Errorf("mxedge %s exit: got %v, want status 0", p.name, err)
	}
}

// Metric reads an unlabelled sample from the ops listener's /metrics.
func (p *Proc) Metric(t testing.TB, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + p.Addr("ops") + "/metrics")
	if err != nil {
		t.Fatalf("mxedge %s /metrics: %v", p.name, err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("mxedge %s /metrics: %s: %v", p.name, name, err)
			}
			return f
		}
	}
	t.Fatalf("mxedge %s /metrics: no sample %s", p.name, name)
	return 0
}
