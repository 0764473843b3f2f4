package redisstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxedge/mxedge/testkit"
)

func newStorage(t *testing.T, url string, o Options) *Storage {
	t.Helper()
	s, err := New(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStorageContract(t *testing.T) {
	url := testkit.StartRedis(t, testkit.CertsRedisPorts).URL()
	ctx := context.Background()
	s := newStorage(t, url, Options{Prefix: "t1:"})

	if _, err := s.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load missing: got %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat missing: got %v, want fs.ErrNotExist", err)
	}
	if s.Exists(ctx, "nope") {
		t.Fatal("Exists missing: got true")
	}
	before := time.Now()
	for _, k := range []string{"certs/ca/a.example/a.crt", "certs/ca/a.example/a.key", "certs/ca/b.example/b.crt", "acme/x.json", "certsx"} {
		if err := s.Store(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.Load(ctx, "certs/ca/a.example/a.crt")
	if err != nil || string(v) != "v-certs/ca/a.example/a.crt" {
		t.Fatalf("Load: got %q, %v", v, err)
	}
	ki, err := s.Stat(ctx, "certs/ca/a.example/a.key")
	if err != nil || !ki.IsTerminal || ki.Size != int64(len("v-certs/ca/a.example/a.key")) || ki.Modified.Before(before.Add(-time.Second)) {
		t.Fatalf("Stat file: got %+v, %v", ki, err)
	}
	ki, err = s.Stat(ctx, "certs/ca")
	if err != nil || ki.IsTerminal {
		t.Fatalf("Stat dir: got %+v, %v, want directory", ki, err)
	}
	for _, k := range []string{"certs", "certs/ca/a.example", "acme/x.json"} {
		if !s.Exists(ctx, k) {
			t.Errorf("Exists(%q): got false, want true", k)
		}
	}
	if s.Exists(ctx, "cert") {
		t.Error(`Exists("cert"): got true, want false (only a prefix of a name)`)
	}

	tests := []struct {
		path      string
		recursive bool
		want      []string
	}{
		{"certs/ca", false, []string{"certs/ca/a.example", "certs/ca/b.example"}},
		{"certs/ca", true, []string{"certs/ca/a.example/a.crt", "certs/ca/a.example/a.key", "certs/ca/b.example/b.crt"}},
		{"certs", false, []string{"certs/ca"}},
		{"", false, []string{"acme", "certs", "certsx"}},
	}
	for _, tc := range tests {
		got, err := s.List(ctx, tc.path, tc.recursive)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %v): got %v, %v, want %v", tc.path, tc.recursive, got, err, tc.want)
		}
	}

	if err := s.Delete(ctx, "certs/ca/a.example"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certs/ca/a.example/a.crt") || s.Exists(ctx, "certs/ca/a.example") {
		t.Error("Delete dir: keys under it still exist")
	}
	if !s.Exists(ctx, "certs/ca/b.example/b.crt") || !s.Exists(ctx, "certsx") {
		t.Error("Delete dir: deleted a sibling")
	}
	if err := s.Delete(ctx, "never/stored"); err != nil {
		t.Errorf("Delete missing: got %v, want nil", err)
	}
	if err := s.Delete(ctx, "certsx"); err != nil || s.Exists(ctx, "certsx") {
		t.Errorf("Delete file: err %v, still exists %v", err, s.Exists(ctx, "certsx"))
	}
}

func TestLockExclusive(t *testing.T) {
	url := testkit.StartRedis(t, testkit.CertsRedisPorts).URL()
	ctx := context.Background()
	// Two Storages are two processes.
	a := newStorage(t, url, Options{Prefix: "t2:", LockPoll: 10 * time.Millisecond})
	b := newStorage(t, url, Options{Prefix: "t2:", LockPoll: 10 * time.Millisecond})

	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if err := s.Lock(ctx, "issue_cert_x"); err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				time.Sleep(time.Millisecond) // hold the lock a little
				inside.Add(-1)
				if err := s.Unlock(ctx, "issue_cert_x"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := maxInside.Load(); got != 1 {
		t.Fatalf("holders at once: got %d, want 1", got)
	}
}

func TestLockRefreshedWhileHeld(t *testing.T) {
	url := testkit.StartRedis(t, testkit.CertsRedisPorts).URL()
	ctx := context.Background()
	ttl := 300 * time.Millisecond
	a := newStorage(t, url, Options{Prefix: "t3:", LockTTL: ttl, LockPoll: 10 * time.Millisecond})
	b := newStorage(t, url, Options{Prefix: "t3:", LockTTL: ttl, LockPoll: 10 * time.Millisecond})
	if err := a.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	// Held for 4 TTLs: b must not get it meanwhile.
	tctx, cancel := context.WithTimeout(ctx, 4*ttl)
	defer cancel()
	if err := b.Lock(tctx, "l"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock while held: got %v, want deadline exceeded", err)
	}
	if err := a.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > ttl {
		t.Errorf("Lock after Unlock took %v, want < %v", d, ttl)
	}
	b.Unlock(ctx, "l")
}

func TestLockExpiresWhenHolderDies(t *testing.T) {
	url := testkit.StartRedis(t, testkit.CertsRedisPorts).URL()
	ctx := context.Background()
	ttl := 300 * time.Millisecond
	a, err := New(url, Options{Prefix: "t4:", LockTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	b := newStorage(t, url, Options{Prefix: "t4:", LockTTL: ttl, LockPoll: 10 * time.Millisecond})
	if err := a.Lock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	a.Close() // a "crashes": refresher stops, lock not released
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 10*ttl)
	defer cancel()
	if err := b.Lock(tctx, "l"); err != nil {
		t.Fatalf("Lock after holder died: %v", err)
	}
	if d := time.Since(start); d < ttl/2 {
		t.Errorf("got the lock after %v, want about the TTL %v", d, ttl)
	}
	if err := b.RenewLockLease(ctx, "l", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	pttl, _ := b.rdb.PTTL(ctx, b.lockKey("l")).Result()
	if pttl < time.Second {
		t.Errorf("after RenewLockLease: PTTL %v, want > 1s", pttl)
	}
	if err := b.Unlock(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "l"); err == nil {
		t.Error("Unlock of a lock not held: got nil error")
	}
}

func ExampleNew() {
	s, err := New("redis://127.0.0.1:6379/0", Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	fmt.Println(s)
	// Output: redis:mxedge:certmagic:
}
