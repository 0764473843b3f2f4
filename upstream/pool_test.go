package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
)

// echo is a member that answers with its name and counts requests; its
// handler may be replaced.
type echo struct {
	*httptest.Server
	name string
	hits atomic.Int64
	down atomic.Bool // health path answers 503
	hold chan struct{}
}

func newEcho(t *testing.T, name string) *echo {
	t.Helper()
	e := &echo{name: name}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if e.down.Load() {
				w.WriteHeader(503)
			}
			return
		}
		e.hits.Add(1)
		if e.hold != nil {
			<-e.hold
		}
		io.WriteString(w, e.name)
	}))
	t.Cleanup(e.Close)
	return e
}

func spec(t *testing.T, yaml string) []*config.PoolSpec {
	t.Helper()
	c := config.Defaults()
	c.ServerName = "example.org"
	path := t.TempDir() + "/c.yaml"
	if err := writeFile(path, "server_name: example.org\n"+yaml); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.LoadOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Pools()
}

// call sends one request through pool p and returns the member's answer.
func call(t *testing.T, p *Pool) (string, error) {
	t.Helper()
	m, err := p.Acquire(context.Background())
	if err != nil {
		return "", err
	}
	res, err := m.Conns().RoundTrip(context.Background(), &h1.Request{Method: "GET", Path: "/x", Host: "h", Header: http.Header{}})
	defer p.Release(m, err)
	if err != nil {
		return "", err
	}
	defer res.Close()
	var b sink
	res.WriteBody(&b)
	return b.String(), nil
}

type sink struct{ strings.Builder }

func (s *sink) FlushError() error { return nil }

func members(es ...*echo) string {
	var urls []string
	for _, e := range es {
		urls = append(urls, `"`+e.URL+`"`)
	}
	return "[" + strings.Join(urls, ", ") + "]"
}

func TestRoundRobin(t *testing.T) {
	a, b, c := newEcho(t, "a"), newEcho(t, "b"), newEcho(t, "c")
	s := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a, b, c)+"}}\n"), Options{}, nil)
	defer s.CloseUnused(nil)
	p := s.Pool("homeserver")
	got := map[string]int{}
	for range 30 {
		name, err := call(t, p)
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	if got["a"] != 10 || got["b"] != 10 || got["c"] != 10 {
		t.Errorf("round robin over 3 members, 30 requests: %v, want 10 each", got)
	}
}

func TestLeastConn(t *testing.T) {
	a, b := newEcho(t, "a"), newEcho(t, "b")
	a.hold = make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(a.hold) }) }) // before the servers close
	s := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a, b)+", balance: least_conn}}\n"), Options{}, nil)
	defer s.CloseUnused(nil)
	p := s.Pool("homeserver")
	// send starts one request and reports where it went: "a" once a holds
	// it, or b's answer.
	var wg sync.WaitGroup
	send := func() string {
		before := a.hits.Load()
		answer := make(chan string, 1)
		wg.Add(1)
		go func() { defer wg.Done(); name, _ := call(t, p); answer <- name }()
		for {
			select {
			case name := <-answer:
				return name
			case <-time.After(time.Millisecond):
				if a.hits.Load() != before {
					return "a"
				}
			}
		}
	}
	// Until a holds a request (b answers the others at once).
	for send() != "a" {
	}
	// a holds one: every new one goes to b, the least busy.
	for range 5 {
		if name := send(); name != "b" {
			t.Errorf("least_conn picked %q while a holds a request", name)
		}
	}
	release.Do(func() { close(a.hold) })
	wg.Wait()
}

// With max_connections reached, requests wait in the queue up to
// queue_timeout; a full queue or a wait too long is a QueueError (429).
func TestQueue(t *testing.T) {
	a := newEcho(t, "a")
	a.hold = make(chan struct{})
	s := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a)+", max_connections: 2, max_queue: 1, queue_timeout: 200ms}}\n"), Options{}, nil)
	defer s.CloseUnused(nil)
	p := s.Pool("homeserver")
	var wg sync.WaitGroup
	results := make(chan error, 3)
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); _, err := call(t, p); results <- err }()
	}
	for a.hits.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	// One may wait; a second waiting one finds the queue full.
	wg.Add(1)
	go func() { defer wg.Done(); _, err := call(t, p); results <- err }()
	for p.waiting.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	_, err := call(t, p)
	var qe *QueueError
	if !errors.As(err, &qe) || !qe.Full {
		t.Errorf("second waiter: %v, want a full-queue QueueError", err)
	}
	// The waiter times out after 200ms while both slots stay busy.
	if err := <-results; !errors.As(err, &qe) || qe.Full {
		t.Errorf("waiter: %v, want a timeout QueueError", err)
	}
	close(a.hold)
	wg.Wait()
	if got := testutil.ToFloat64(countersOf(s, "full")); got != 1 {
		t.Errorf("rejected full = %v", got)
	}
	// With a free slot, a queued request goes through.
	if name, err := call(t, p); err != nil || name != "a" {
		t.Errorf("after the queue drained: %q %v", name, err)
	}
}

// countersOf returns the queue_rejected counter of the homeserver pool.
func countersOf(s *Set, reason string) prometheus.Collector {
	c := NewCollector(func() *Set { return s })
	return &filtered{c: c, name: "mxedge_upstream_queue_rejected_total", label: reason}
}

type filtered struct {
	c           *Collector
	name, label string
}

func (f *filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }
func (f *filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 100)
	f.c.Collect(all)
	close(all)
	for m := range all {
		if strings.Contains(m.Desc().String(), f.name) && strings.Contains(metricString(m), `"`+f.label+`"`) {
			ch <- m
		}
	}
}

// A member that refuses connections is ejected (max_fails 1) and its share
// goes to the others; it comes back after fail_timeout.
func TestPassiveEjection(t *testing.T) {
	a := newEcho(t, "a")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	var now atomic.Int64
	now.Store(time.Unix(1000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := NewSet(spec(t, "upstreams: {homeserver: {members: [\""+a.URL+"\", \""+deadURL+"\"], passive: {fail_timeout: 10s}}}\n"), Options{Now: clock}, nil)
	defer s.CloseUnused(nil)
	p := s.Pool("homeserver")
	fails := 0
	for range 10 {
		if _, err := call(t, p); err != nil {
			fails++
		}
	}
	if fails != 1 {
		t.Errorf("%d of 10 requests failed, want 1 (the dead member ejected after its first failure)", fails)
	}
	if p.members[1].Available() {
		t.Error("the dead member is still available")
	}
	now.Add(int64(11 * time.Second))
	if !p.members[1].Available() {
		t.Error("the member is not back after fail_timeout")
	}
	// All members out: ErrNoMember at once, without a dial.
	dead2, _ := net.Listen("tcp", "127.0.0.1:0")
	dead2.Close()
	s2 := NewSet(spec(t, "upstreams: {homeserver: {members: [\""+deadURL+"\", \"http://"+dead2.Addr().String()+"\"]}}\n"), Options{Now: clock}, nil)
	defer s2.CloseUnused(nil)
	p2 := s2.Pool("homeserver")
	call(t, p2)
	call(t, p2)
	if _, err := call(t, p2); !errors.Is(err, ErrNoMember) {
		t.Errorf("both members ejected: %v, want ErrNoMember", err)
	}
}

// A pool of one member never ejects it (nothing to fall back to), as nginx.
func TestSingleMemberNeverEjected(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	s := NewSet(spec(t, "upstream: "+deadURL+"\n"), Options{}, nil)
	defer s.CloseUnused(nil)
	p := s.Pool("homeserver")
	for range 3 {
		if _, err := call(t, p); h1.Kind(err) != "refused" {
			t.Fatalf("got %v, want refused (tried each time)", err)
		}
	}
}

func TestActiveHealth(t *testing.T) {
	a, b := newEcho(t, "a"), newEcho(t, "b")
	s := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a, b)+", health: {path: /health, interval: 20ms}}}\n"), Options{}, nil)
	defer s.CloseUnused(nil)
	p := s.Pool("homeserver")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.down.Store(true)
	waitFor("b unhealthy", func() bool { return !p.members[1].Available() })
	for range 6 {
		if name, _ := call(t, p); name != "a" {
			t.Errorf("request went to %q while b is unhealthy", name)
		}
	}
	a.down.Store(true)
	waitFor("a unhealthy", func() bool { return !p.members[0].Available() })
	if _, err := call(t, p); !errors.Is(err, ErrNoMember) {
		t.Errorf("no healthy member: %v, want ErrNoMember", err)
	}
	a.down.Store(false)
	b.down.Store(false)
	waitFor("both healthy", func() bool { return p.members[0].Available() && p.members[1].Available() })
}

// A reload keeps a pool whose configuration did not change (its connections
// and counters) and replaces a changed one.
func TestSetCarryOver(t *testing.T) {
	a, b := newEcho(t, "a"), newEcho(t, "b")
	old := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a)+"}, other: {members: "+members(b)+"}}\n"), Options{}, nil)
	call(t, old.Pool("homeserver"))
	next := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a)+"}, other: {members: "+members(b)+", balance: least_conn}}\n"), Options{}, old)
	if next.Pool("homeserver") != old.Pool("homeserver") {
		t.Error("unchanged pool not carried over")
	}
	if next.Pool("other") == old.Pool("other") {
		t.Error("changed pool carried over")
	}
	old.CloseUnused(next)
	if !old.Pool("other").closed.Load() || next.Pool("homeserver").closed.Load() {
		t.Error("CloseUnused closed the wrong pools")
	}
	if name, err := call(t, next.Pool("homeserver")); name != "a" || err != nil {
		t.Errorf("carried-over pool: %q %v", name, err)
	}
	next.CloseUnused(nil)
}

func TestMetricsLint(t *testing.T) {
	a := newEcho(t, "a")
	s := NewSet(spec(t, "upstreams: {homeserver: {members: "+members(a)+", max_connections: 4}}\n"), Options{}, nil)
	defer s.CloseUnused(nil)
	call(t, s.Pool("homeserver"))
	c := NewCollector(func() *Set { return s })
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	if n := testutil.CollectAndCount(c, "mxedge_upstream_requests_total"); n != 1 {
		t.Errorf("%d request series, want 1", n)
	}
}
