package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

// fakeWhoAmI answers like a homeserver: "bad" is refused, "down" fails,
// "slow" waits for release, anything else belongs to "@<token-before-dash>".
type fakeWhoAmI struct {
	mu      sync.Mutex
	asked   map[string]int
	release chan struct{}
}

func newFake() *fakeWhoAmI {
	return &fakeWhoAmI{asked: map[string]int{}, release: make(chan struct{})}
}

func (f *fakeWhoAmI) ask(ctx context.Context, token string) (string, bool, error) {
	f.mu.Lock()
	f.asked[token]++
	f.mu.Unlock()
	switch token {
	case "bad":
		return "", false, nil
	case "down":
		return "", false, errors.New("503")
	case "slow":
		select {
		case <-f.release:
		case <-ctx.Done():
			return "", false, ctx.Err()
		}
	}
	user := token
	for i := range token {
		if token[i] == '-' {
			user = token[:i]
			break
		}
	}
	return "@" + user + ":example.org", true, nil
}

func (f *fakeWhoAmI) count(token string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[token]
}

func newTestResolver(f *fakeWhoAmI, clock *testkit.Clock, max int) *Resolver {
	return NewResolver(f.ask, ResolverOptions{
		TTL: time.Hour, InvalidTTL: 10 * time.Second, Timeout: time.Second, MaxEntries: max, Now: clock.Now,
	})
}

func TestResolverCachesUsers(t *testing.T) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	r := newTestResolver(f, clock, 1000)
	k1, res, user := r.User(t.Context(), "alice-1")
	if res != Resolved || user != "@alice:example.org" || k1 != Hash("@alice:example.org") {
		t.Fatalf("alice-1: got (%x, %v, %q), want alice's key, Resolved", k1, res, user)
	}
	if k2, _, _ := r.User(t.Context(), "alice-2"); k2 != k1 {
		t.Errorf("alice's second device: key %x, want her key %x", k2, k1)
	}
	for range 5 {
		r.User(t.Context(), "alice-1")
	}
	if n := f.count("alice-1"); n != 1 {
		t.Errorf("whoami asked %d times within the TTL, want 1", n)
	}
	clock.Add(time.Hour)
	r.User(t.Context(), "alice-1")
	if n := f.count("alice-1"); n != 2 {
		t.Errorf("whoami asked %d times after the TTL, want 2", n)
	}
	hits, misses, failures := r.Stats()
	if hits != 5 || misses != 3 || failures != 0 {
		t.Errorf("stats: hits %d misses %d failures %d, want 5 3 0", hits, misses, failures)
	}
}

// A refused token is remembered for InvalidTTL and keyed by itself, never as
// a user; a failure is not remembered.
func TestResolverInvalidAndFailed(t *testing.T) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	r := newTestResolver(f, clock, 1000)
	for range 3 {
		key, res, user := r.User(t.Context(), "bad")
		if res != Invalid || user != "" || key != Hash("bad") {
			t.Fatalf("bad: got (%x, %v, %q), want the token's hash, Invalid, no user", key, res, user)
		}
	}
	if n := f.count("bad"); n != 1 {
		t.Errorf("refused token asked %d times within InvalidTTL, want 1", n)
	}
	clock.Add(10 * time.Second)
	r.User(t.Context(), "bad")
	if n := f.count("bad"); n != 2 {
		t.Errorf("refused token asked %d times after InvalidTTL, want 2", n)
	}
	for range 3 {
		key, res, user := r.User(t.Context(), "down")
		if res != Unresolved || user != "" || key != Hash("down") {
			t.Fatalf("down: got (%x, %v, %q), want the token's hash, Unresolved", key, res, user)
		}
	}
	if n := f.count("down"); n != 3 {
		t.Errorf("failing whoami asked %d times, want 3 (failures are not cached)", n)
	}
	if _, _, failures := r.Stats(); failures != 3 {
		t.Errorf("failures %d, want 3", failures)
	}
}

// Concurrent first requests for one token wait for one whoami.
func TestResolverOneQuestionPerToken(t *testing.T) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	r := newTestResolver(f, clock, 1000)
	const n = 50
	var wg sync.WaitGroup
	var resolved atomic.Int32
	for range n {
		wg.Go(func() {
			if _, res, _ := r.User(t.Context(), "slow"); res == Resolved {
				resolved.Add(1)
			}
		})
	}
	// Every request is either asking or waiting once whoami was asked and
	// the cache holds the pending entry; release the answer then.
	for f.count("slow") == 0 {
		time.Sleep(time.Millisecond)
	}
	close(f.release)
	wg.Wait()
	if got := f.count("slow"); got != 1 {
		t.Errorf("whoami asked %d times for %d concurrent requests, want 1", got, n)
	}
	if resolved.Load() != n {
		t.Errorf("%d of %d requests resolved", resolved.Load(), n)
	}
}

// A request whose context ends while waiting for another's answer gets the
// token's hash at once.
func TestResolverWaiterCancelled(t *testing.T) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	r := newTestResolver(f, clock, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.User(context.Background(), "slow")
	}()
	for f.count("slow") == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if key, res, _ := r.User(ctx, "slow"); res != Unresolved || key != Hash("slow") {
		t.Errorf("cancelled waiter: got (%x, %v), want the token's hash, Unresolved", key, res)
	}
	close(f.release)
	<-done
}

// The cache stays within MaxEntries however many tokens are seen.
func TestResolverBounded(t *testing.T) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	const max = 3200
	r := newTestResolver(f, clock, max)
	for i := range 20 * max {
		r.User(t.Context(), fmt.Sprintf("u%d-x", i))
	}
	if n := r.Len(); n > max || n < max/2 {
		t.Errorf("cache holds %d entries after %d tokens, want at most %d (and not emptied)", n, 20*max, max)
	}
}

// A cache hit allocates nothing.
func TestResolverHitAllocs(t *testing.T) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	r := newTestResolver(f, clock, 1000)
	ctx := t.Context()
	r.User(ctx, "alice-1")
	if a := testing.AllocsPerRun(100, func() { r.User(ctx, "alice-1") }); a != 0 {
		t.Errorf("cache hit: %.1f allocations, want 0", a)
	}
}

func BenchmarkResolverHit(b *testing.B) {
	f, clock := newFake(), testkit.NewClock(time.Unix(1e9, 0))
	r := newTestResolver(f, clock, 100000)
	ctx := context.Background()
	tokens := make([]string, 1024)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("mat_%032d-%d", i, i)
		r.User(ctx, tokens[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.User(ctx, tokens[i&1023])
	}
}
