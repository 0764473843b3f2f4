package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolIdleExpiry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
	}()
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	p := NewPool(PoolOptions{Network: "tcp", Addr: ln.Addr().String(), MaxIdle: 3, Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	defer p.Close()
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	ctx := context.Background()
	var conns []*conn
	for range 4 {
		c, reused, err := p.get(ctx)
		if err != nil || reused {
			t.Fatalf("get: reused %v, %v", reused, err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		advance(time.Second)
		p.put(c)
		if want := min(i+1, 3); p.Idle() != want {
			t.Fatalf("after %d puts: %d idle, want %d (cap 3)", i+1, p.Idle(), want)
		}
	}
	// LIFO: the most recently used comes back first.
	c, reused, _ := p.get(ctx)
	if !reused || c != conns[2] {
		t.Errorf("get returned %p (reused %v), want the last one put %p", c, reused, conns[2])
	}
	p.put(c)
	// The sweeper closes what has been idle longer than the timeout.
	advance(p.o.IdleTimeout - 1500*time.Millisecond)
	p.sweep()
	if got := p.Idle(); got != 1 {
		t.Errorf("after sweep: %d idle, want 1 (the two oldest expired)", got)
	}
	// Get drops expired connections lazily and dials.
	advance(p.o.IdleTimeout)
	if _, reused, _ := p.get(ctx); reused {
		t.Error("get reused an expired connection")
	}
	if got := p.Dials(); got != 5 {
		t.Errorf("%d dials, want 5", got)
	}
	if DefaultIdleTimeout >= 75*time.Second {
		t.Errorf("default idle expiry %v is not below nginx's 75 s keep-alive", DefaultIdleTimeout)
	}
}

func TestTLSPool(t *testing.T) {
	var conns atomic.Int64
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"tls":true}`)
	}))
	hs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	hs.StartTLS()
	defer hs.Close()
	cli := hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cli.ServerName, cli.NextProtos = "example.com", []string{"http/1.1"}
	p := NewPool(PoolOptions{Network: "tcp", Addr: hs.Listener.Addr().String(), TLS: cli})
	defer p.Close()
	for i := range 3 {
		method, body := "GET", ""
		if i == 1 {
			method, body = "POST", `{"a":1}`
		}
		if r := do(t, p, method, "/_matrix/client/versions", body); r.err != nil || r.body != `{"tls":true}` {
			t.Fatalf("request %d: %d %q %v", i, r.status, r.body, r.err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d TLS connections for 3 requests, want 1", n)
	}
	// A certificate nobody vouches for is refused.
	bad := NewPool(PoolOptions{Network: "tcp", Addr: hs.Listener.Addr().String(), TLS: &tlsConfigNoRoots})
	defer bad.Close()
	if r := do(t, bad, "GET", "/", ""); r.err == nil {
		t.Error("untrusted upstream certificate accepted")
	}
}
